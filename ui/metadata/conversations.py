"""Each user's saved conversations: what the web UI showed, so that a reload or a new login
finds them again. Every query names the owner: one user's conversations are never read,
renamed or deleted through another's.

A turn is kept as the web UI rendered it (the question, the answer's HTML, already
escaped, and its text for follow-ups); links to files in it are re-signed when shown again
(ui/service/links.py), and the file route checks access when one is opened.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from ui.metadata.database import Database, now_iso

MAX_TITLE_CHARS = 120
MAX_TURNS_KEPT = 50  # the web UI shows at most this many
MAX_CONVERSATIONS = 200  # per user: the oldest go first


@dataclass(frozen=True)
class ConversationInfo:
    id: str
    title: str
    updated_at: str


def new_conversation_id() -> str:
    return secrets.token_urlsafe(12)


class ConversationStore:
    def __init__(self, db: Database, max_per_user: int = MAX_CONVERSATIONS) -> None:
        self._db = db
        self._max_per_user = max_per_user

    def save(
        self, owner: str, conversation_id: str, title: str, turns: list[dict[str, Any]]
    ) -> bool:
        """Create or update `owner`'s conversation; False (nothing written) when the id is
        another user's."""
        at = now_iso()
        body = json.dumps(turns[-MAX_TURNS_KEPT:], ensure_ascii=False)
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT owner FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
            if row is not None and row["owner"] != owner:
                return False
            if row is None:
                conn.execute(
                    "INSERT INTO conversations (id, owner, title, created_at, updated_at, turns)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (conversation_id, owner, _title(title), at, at, body),
                )
                conn.execute(
                    "DELETE FROM conversations WHERE owner = ? AND id NOT IN (SELECT id FROM "
                    "conversations WHERE owner = ? ORDER BY updated_at DESC, rowid DESC LIMIT ?)",
                    (owner, owner, self._max_per_user),
                )
            else:
                conn.execute(
                    "UPDATE conversations SET turns = ?, updated_at = ? WHERE id = ? AND owner = ?",
                    (body, at, conversation_id, owner),
                )
        return True

    def owned_by(self, owner: str) -> list[ConversationInfo]:
        rows = self._db.query(
            "SELECT id, title, updated_at FROM conversations WHERE owner = ? "
            "ORDER BY updated_at DESC, rowid DESC",
            (owner,),
        )
        return [ConversationInfo(r["id"], r["title"], r["updated_at"]) for r in rows]

    def turns(self, owner: str, conversation_id: str) -> list[dict[str, Any]] | None:
        rows = self._db.query(
            "SELECT turns FROM conversations WHERE id = ? AND owner = ?", (conversation_id, owner)
        )
        return list(json.loads(rows[0]["turns"])) if rows else None

    def rename(self, owner: str, conversation_id: str, title: str) -> bool:
        with self._db.transaction() as conn:
            done = conn.execute(
                "UPDATE conversations SET title = ? WHERE id = ? AND owner = ?",
                (_title(title), conversation_id, owner),
            )
            return done.rowcount == 1

    def delete(self, owner: str, conversation_id: str) -> bool:
        with self._db.transaction() as conn:
            done = conn.execute(
                "DELETE FROM conversations WHERE id = ? AND owner = ?", (conversation_id, owner)
            )
            return done.rowcount == 1


def _title(title: str) -> str:
    words = " ".join(title.split())
    return (
        (words[: MAX_TITLE_CHARS - 1] + "…")
        if len(words) > MAX_TITLE_CHARS
        else words or "Untitled"
    )
