"""The metadata database: SQLite under the data directory, one module per table group.

    database        the connection, transactions and schema migrations
    accounts        users, teams, memberships, API keys, login failures, ended sessions
    administration  audited changes to accounts (the REST API and the CLI both use it)
    audit           the audit log
    catalog         which team owns each collection, and its starter questions
    feedback        thumbs up/down on answers, exported as an evaluation set
    conversations   each user's saved conversations (the web UI's history)
    failures        files that could not be ingested, per collection
    folders         folders attached to collections, kept in sync, and their last sync
    errors          this room's errors

`Metadata.open` builds them all over one database, for the server (the Workspace) and the
command line, which read and write the same file.
"""

from __future__ import annotations

from dataclasses import dataclass

from rag.settings import Settings
from ui.metadata.accounts import Accounts
from ui.metadata.audit import AuditLog
from ui.metadata.catalog import Catalog
from ui.metadata.conversations import ConversationStore
from ui.metadata.database import Database
from ui.metadata.failures import IngestFailures
from ui.metadata.feedback import FeedbackStore
from ui.metadata.folders import FolderSources


@dataclass(frozen=True)
class Metadata:
    db: Database
    accounts: Accounts
    catalog: Catalog
    audit: AuditLog
    feedback: FeedbackStore
    failures: IngestFailures
    conversations: ConversationStore
    folders: FolderSources

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
            ConversationStore(db),
            FolderSources(db),
        )

    def close(self) -> None:
        self.db.close()
