"""Thumbs up/down on answers, kept with the question, the answer and its sources.

Approved answers export as a question set for `citadel eval` (the same JSONL format as
../shared/eval): each one says which documents (and PDF page) hold the answer, so the
team's real questions become a regression test for retrieval.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ui.metadata.database import Database, now_iso
from ui.metadata.errors import InvalidFeedback

MAX_COMMENT_CHARS = 2000


@dataclass(frozen=True)
class SourceRef:
    """A cited source as feedback keeps it (the text may change; the reference stays)."""

    n: int
    collection: str
    document_id: str
    source: str
    location: str
    pages: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "collection": self.collection,
            "document_id": self.document_id,
            "source": self.source,
            "location": self.location,
            "pages": list(self.pages),
        }


@dataclass(frozen=True)
class FeedbackEntry:
    id: int
    at: str
    actor: str
    collections: list[str]
    question: str
    answer: str
    sources: list[dict[str, Any]]
    rating: int
    comment: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "user": self.actor,
            "collections": self.collections,
            "question": self.question,
            "answer": self.answer,
            "sources": self.sources,
            "rating": self.rating,
            "comment": self.comment,
        }


class FeedbackStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self,
        actor: str,
        collections: list[str],
        question: str,
        answer: str,
        sources: list[SourceRef],
        rating: int,
        comment: str = "",
    ) -> int:
        if rating not in (-1, 1):
            raise InvalidFeedback("rating must be 1 (thumbs up) or -1 (thumbs down)")
        if len(comment) > MAX_COMMENT_CHARS:
            raise InvalidFeedback(f"comment too long: at most {MAX_COMMENT_CHARS} characters")
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO feedback (at, actor, collections, question, answer, sources, rating, "
                "comment) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    now_iso(),
                    actor,
                    json.dumps(collections),
                    question,
                    answer,
                    json.dumps([s.to_json() for s in sources]),
                    rating,
                    comment.strip(),
                ),
            )
            return int(cursor.lastrowid or 0)

    def entries(self, rating: int | None = None) -> list[FeedbackEntry]:
        where, params = ("WHERE rating = ?", (rating,)) if rating else ("", ())
        rows = self._db.query(f"SELECT * FROM feedback {where} ORDER BY id", params)  # noqa: S608
        return [
            FeedbackEntry(
                r["id"],
                r["at"],
                r["actor"],
                json.loads(r["collections"]),
                r["question"],
                r["answer"],
                json.loads(r["sources"]),
                r["rating"],
                r["comment"],
            )
            for r in rows
        ]

    def export_questions(self) -> list[dict[str, Any]]:
        """Approved answers as `citadel eval` questions: sources are the cited documents
        (paths inside the collection), page the first cited PDF page."""
        items = []
        for entry in self.entries(rating=1):
            sources = list(dict.fromkeys(s["source"] for s in entry.sources))
            if not sources:
                continue  # an approved refusal says nothing about where answers live
            pages = [p for s in entry.sources for p in s.get("pages", [])]
            items.append(
                {
                    "id": f"fb-{entry.id}",
                    "question": entry.question,
                    "answers": [],
                    "sources": sources,
                    "page": pages[0] if pages else None,
                    "kind": "feedback",
                    "collections": entry.collections,
                    "comment": entry.comment,
                }
            )
        return items
