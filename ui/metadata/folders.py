"""The folders attached to collections, which the server keeps in sync, and what each one's
last sync did: when, how long, its counts and the files that could not go in (with why).

Paths are stored as given once checked (absolute, resolved): a document of the folder
carries the same path as its `root`, which is how a sync knows its own documents.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from ui.metadata.database import Database, now_iso
from ui.metadata.errors import AccountError


@dataclass(frozen=True)
class FolderSource:
    id: int
    collection: str
    path: str
    added_by: str
    added_at: str
    synced_at: str | None = None  # when the last sync ended (UTC ISO 8601); None: never
    seconds: float | None = None  # how long it took
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)  # {source, status, reason}
    error: str = ""  # why the last sync did not run at all (the folder unreachable...)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "collection": self.collection,
            "path": self.path,
            "added_by": self.added_by,
            "added_at": self.added_at,
            "synced_at": self.synced_at,
            "seconds": self.seconds,
            "counts": self.counts,
            "failures": self.failures,
            "error": self.error,
        }


def _source(row: sqlite3.Row) -> FolderSource:
    return FolderSource(
        row["id"],
        row["collection"],
        row["path"],
        row["added_by"],
        row["added_at"],
        row["synced_at"],
        row["seconds"],
        json.loads(row["counts"]),
        json.loads(row["failures"]),
        row["error"],
    )


class FolderSources:
    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, collection: str, path: str, actor: str) -> FolderSource:
        with self._db.transaction() as conn:
            taken = conn.execute(
                "SELECT 1 FROM folder_sources WHERE collection = ? AND path = ?",
                (collection, path),
            ).fetchone()
            if taken:
                raise AccountError(f"{path} is already attached to {collection!r}")
            cursor = conn.execute(
                "INSERT INTO folder_sources (collection, path, added_by, added_at) "
                "VALUES (?, ?, ?, ?)",
                (collection, path, actor, now_iso()),
            )
            source_id = cursor.lastrowid
        found = self.get(int(source_id or 0))
        assert found is not None  # just written
        return found

    def get(self, source_id: int) -> FolderSource | None:
        rows = self._db.query("SELECT * FROM folder_sources WHERE id = ?", (source_id,))
        return _source(rows[0]) if rows else None

    def all(self) -> list[FolderSource]:
        rows = self._db.query("SELECT * FROM folder_sources ORDER BY collection, path")
        return [_source(r) for r in rows]

    def remove(self, source_id: int) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM folder_sources WHERE id = ?", (source_id,))

    def record_sync(
        self,
        source_id: int,
        seconds: float,
        counts: dict[str, int],
        failures: list[dict[str, str]],
        error: str = "",
    ) -> None:
        """What a sync did (or why it could not run: `error`, the counts then empty)."""
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE folder_sources SET synced_at = ?, seconds = ?, counts = ?, "
                "failures = ?, error = ? WHERE id = ?",
                (
                    now_iso(),
                    round(seconds, 3),
                    json.dumps(counts),
                    json.dumps(failures, ensure_ascii=False),
                    error,
                    source_id,
                ),
            )
