"""The files of each collection that could not be ingested, with the reason, as the library
shows them. Every ingestion records its outcomes here, the server's jobs and `citadel
ingest` alike: a file that fails is listed, and leaves the list once it goes in (or is gone).
"""

from __future__ import annotations

from ingest.report import FileOutcome
from ui.metadata.database import Database, now_iso

LISTED = ("failed", "skipped")  # the outcomes that need the user's attention


class IngestFailures:
    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, collection: str, outcomes: list[FileOutcome], complete: bool = False) -> None:
        """`complete`: the outcomes cover the whole collection (a sync), so a failure of a
        file that is not among them is of a file that no longer exists."""
        with self._db.transaction() as conn:
            if complete:
                listed = {o.source for o in outcomes}
                for row in conn.execute(
                    "SELECT source FROM ingest_failures WHERE collection = ?", (collection,)
                ).fetchall():
                    if row["source"] not in listed:
                        conn.execute(
                            "DELETE FROM ingest_failures WHERE collection = ? AND source = ?",
                            (collection, row["source"]),
                        )
            for outcome in outcomes:
                if outcome.status in LISTED:
                    conn.execute(
                        "INSERT OR REPLACE INTO ingest_failures (collection, source, reason, at) "
                        "VALUES (?, ?, ?, ?)",
                        (collection, outcome.source, outcome.reason, now_iso()),
                    )
                else:
                    conn.execute(
                        "DELETE FROM ingest_failures WHERE collection = ? AND source = ?",
                        (collection, outcome.source),
                    )

    def of(self, collection: str) -> list[dict[str, str]]:
        rows = self._db.query(
            "SELECT source, reason, at FROM ingest_failures WHERE collection = ? ORDER BY source",
            (collection,),
        )
        return [{"source": r["source"], "reason": r["reason"], "at": r["at"]} for r in rows]
