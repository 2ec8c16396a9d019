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
    "upload",
    "delete",
    "reingest",
    "retry",
    "download",
    "feedback",
    "feedback_export",
    "admin",
    "denied",
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
    ) -> list[AuditEntry]:
        """Newest first."""
        clauses, params = [], []
        if actor:
            clauses.append("actor = ?")
            params.append(actor)
        if action:
            clauses.append("action = ?")
            params.append(action)
        if since:
            clauses.append("at >= ?")
            params.append(since)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
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
