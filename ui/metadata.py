"""The metadata services over the one SQLite database of a data directory: accounts, the
collection catalog, the audit log, feedback and ingestion failures. Built here for both the
server (the Workspace) and the command line, which read and write the same database."""

from __future__ import annotations

from dataclasses import dataclass

from rag.settings import Settings
from ui.accounts import Accounts
from ui.audit import AuditLog
from ui.catalog import Catalog
from ui.database import Database
from ui.failures import IngestFailures
from ui.feedback import FeedbackStore


@dataclass(frozen=True)
class Metadata:
    db: Database
    accounts: Accounts
    catalog: Catalog
    audit: AuditLog
    feedback: FeedbackStore
    failures: IngestFailures

    @classmethod
    def open(cls, settings: Settings) -> Metadata:
        db = Database(settings.metadata_path)
        s = settings.server
        return cls(
            db,
            Accounts(db, s.login_attempts, s.login_lockout_s),
            Catalog(db),
            AuditLog(db),
            FeedbackStore(db),
            IngestFailures(db),
        )

    def close(self) -> None:
        self.db.close()
