"""The audit log: who asked what, which documents were shown, uploads, deletions, logins.

Append-only from the server's point of view; `citadel audit` reads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ui.metadata.database import Database, now_iso

ACTIONS = (
    "login",
    "login_failed",
    "ask",
    "search",
    "passage",
    "mcp",
    "upload",
    "delete",
    "reingest",
    "retry",
    "download",
    "feedback",
    "feedback_export",
    "admin",
    "folder_sync",
    "denied",
    "failed",
)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    action: str
    collection: str | None
    detail: dict[str, Any]
    client: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "collection": self.collection,
            "detail": self.detail,
            "client": self.client,
        }


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
        self,
        actor: str,
        action: str,
        collection: str | None = None,
        client: str | None = None,
        **detail: Any,
    ) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO audit (at, actor, action, collection, detail, client) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (now_iso(), actor, action, collection, json.dumps(detail), client),
            )

    def entries(
        self,
        limit: int = 100,
        actor: str | None = None,
        action: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> list[AuditEntry]:
        """Newest first; `since` and `until` are ISO moments (`until` excluded)."""
        where, params = _where(actor, action, since, until)
        rows = self._db.query(
            f"SELECT * FROM audit {where} ORDER BY id DESC LIMIT ?",  # noqa: S608 (fixed clauses)
            (*params, limit),
        )
        return [
            AuditEntry(
                r["id"],
                r["at"],
                r["actor"],
                r["action"],
                r["collection"],
                json.loads(r["detail"]),
                r["client"],
            )
            for r in rows
        ]

    def count(
        self,
        actor: str | None = None,
        action: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> int:
        """How many entries match (as `entries` filters them)."""
        where, params = _where(actor, action, since, until)
        rows = self._db.query(f"SELECT count(*) FROM audit {where}", tuple(params))  # noqa: S608
        return int(rows[0][0])


def _where(
    actor: str | None, action: str | None, since: str | None, until: str | None
) -> tuple[str, list[str]]:
    clauses, params = [], []
    for clause, value in (
        ("actor = ?", actor),
        ("action = ?", action),
        ("at >= ?", since),
        ("at < ?", until),
    ):
        if value:
            clauses.append(clause)
            params.append(value)
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params
