"""Which team owns each collection, and the starter questions shown for it.

The store holds the vectors; this table says who may read them. A collection with no
owning team is visible to administrators only.
"""

from __future__ import annotations

import json

from ui.metadata.database import Database, now_iso
from ui.metadata.errors import AccountError

MAX_STARTERS = 8
MAX_STARTER_CHARS = 300


class Catalog:
    def __init__(self, db: Database) -> None:
        self._db = db

    def owners(self) -> dict[str, str | None]:
        """Every registered collection with its team (None: administrators only)."""
        rows = self._db.query(
            "SELECT c.name, t.name AS team FROM collections c "
            "LEFT JOIN teams t ON t.id = c.team_id ORDER BY c.name"
        )
        return {r["name"]: r["team"] for r in rows}

    def readable_by(self, teams: frozenset[str]) -> set[str]:
        return {name for name, team in self.owners().items() if team is not None and team in teams}

    def assign(self, collection: str, team: str | None) -> None:
        """Give the collection to `team` (registering it if new); None: administrators only."""
        with self._db.transaction() as conn:
            team_id = None
            if team is not None:
                row = conn.execute("SELECT id FROM teams WHERE name = ?", (team,)).fetchone()
                if row is None:
                    raise AccountError(f"no team {team!r}")
                team_id = row["id"]
            conn.execute(
                "INSERT INTO collections (name, team_id, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET team_id = excluded.team_id",
                (collection, team_id, now_iso()),
            )

    def register(self, collection: str) -> None:
        """Make a collection known (e.g. created by an upload) without changing its owner."""
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO collections (name, created_at) VALUES (?, ?)",
                (collection, now_iso()),
            )

    def forget(self, collection: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM collections WHERE name = ?", (collection,))

    def starters(self, collection: str) -> list[str]:
        rows = self._db.query("SELECT starters FROM collections WHERE name = ?", (collection,))
        return list(json.loads(rows[0]["starters"])) if rows else []

    def set_starters(self, collection: str, questions: list[str]) -> list[str]:
        cleaned = [q.strip() for q in questions if q.strip()]
        if len(cleaned) > MAX_STARTERS:
            raise AccountError(f"at most {MAX_STARTERS} starter questions per collection")
        if any(len(q) > MAX_STARTER_CHARS for q in cleaned):
            raise AccountError(f"a starter question has at most {MAX_STARTER_CHARS} characters")
        self.register(collection)
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE collections SET starters = ? WHERE name = ?",
                (json.dumps(cleaned), collection),
            )
        return cleaned
