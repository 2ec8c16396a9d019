"""The server's metadata database (SQLite under the data directory): users, teams, API keys,
collection ownership, the audit log, feedback and ingestion failures.

One connection guarded by a lock: the server's request threads share it, and SQLite's WAL
mode lets `citadel audit` read while the server writes.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ui.metadata.errors import MetadataUnavailable

BUSY_TIMEOUT_MS = 5000  # how long a write waits for another process's lock

# Each entry upgrades the schema by one version (PRAGMA user_version); never edit a shipped one.
_MIGRATIONS = [
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'member')),
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    CREATE TABLE teams (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE COLLATE NOCASE,
        created_at TEXT NOT NULL
    );
    CREATE TABLE memberships (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        team_id INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
        PRIMARY KEY (user_id, team_id)
    );
    CREATE TABLE collections (
        name TEXT PRIMARY KEY,
        team_id INTEGER REFERENCES teams(id) ON DELETE SET NULL,
        starters TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL
    );
    CREATE TABLE api_keys (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        prefix TEXT NOT NULL UNIQUE,
        key_hash TEXT NOT NULL,
        label TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        last_used_at TEXT,
        revoked INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE login_failures (
        name TEXT NOT NULL COLLATE NOCASE,
        at REAL NOT NULL
    );
    CREATE INDEX login_failures_name ON login_failures(name, at);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        collection TEXT,
        detail TEXT NOT NULL DEFAULT '{}',
        client TEXT
    );
    CREATE INDEX audit_at ON audit(at);
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        collections TEXT NOT NULL,
        question TEXT NOT NULL,
        answer TEXT NOT NULL,
        sources TEXT NOT NULL,
        rating INTEGER NOT NULL CHECK (rating IN (-1, 1)),
        comment TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE ingest_failures (
        collection TEXT NOT NULL,
        source TEXT NOT NULL,
        reason TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (collection, source)
    );
    """,
    """
    CREATE TABLE ended_sessions (
        id TEXT PRIMARY KEY,
        expires REAL NOT NULL
    );
    """,
    """
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        title TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        turns TEXT NOT NULL
    );
    CREATE INDEX conversations_by_owner ON conversations (owner, updated_at);
    """,
    # Single sign-on: where an account comes from ('local', 'oidc', 'ldap') and who it is
    # there (the provider's issuer and subject, or the directory DN), so that a provider's
    # user never takes over a local account, nor one of another provider, by its name.
    """
    ALTER TABLE users ADD COLUMN source TEXT NOT NULL DEFAULT 'local';
    ALTER TABLE users ADD COLUMN external_id TEXT;
    CREATE UNIQUE INDEX users_external ON users (source, external_id);
    """,
    """
    CREATE TABLE folder_sources (
        id INTEGER PRIMARY KEY,
        collection TEXT NOT NULL,
        path TEXT NOT NULL,
        added_by TEXT NOT NULL,
        added_at TEXT NOT NULL,
        synced_at TEXT,
        seconds REAL,
        counts TEXT NOT NULL DEFAULT '{}',
        failures TEXT NOT NULL DEFAULT '[]',
        error TEXT NOT NULL DEFAULT '',
        UNIQUE (collection, path)
    );
    """,
]


def _unavailable(path: Path, exc: sqlite3.OperationalError) -> MetadataUnavailable | None:
    """What to tell the person when the database cannot be used now; None for the errors that
    are bugs (a bad statement), which keep their traceback."""
    name = getattr(exc, "sqlite_errorname", "")
    # Named by its file: the folder would tell an unauthenticated client where data lives.
    path = Path(path.name)
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return MetadataUnavailable(
            f"the metadata database {path} is locked by another process (waited "
            f"{BUSY_TIMEOUT_MS / 1000:g} s); nothing was changed: try again, and if it stays "
            "locked, stop the process that holds it"
        )
    if name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR"):
        return MetadataUnavailable(
            f"could not write the metadata database {path} ({exc}): is its disk full? "
            "Nothing was changed; free some space and try again"
        )
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")):
        return MetadataUnavailable(
            f"cannot write the metadata database {path} ({exc}): its folder or disk is "
            "read-only, or not writable by this user"
        )
    return None


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MetadataUnavailable(f"cannot create {path.parent}: {exc.strerror}") from exc
        with self._explained():
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            with self._explained():
                self._conn.row_factory = sqlite3.Row
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA foreign_keys=ON")
                self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                self._migrate()
        except BaseException:
            self._conn.close()
            raise
        # Password hashes and the audit log: owner only, the WAL files included.
        for part in (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm"))):
            if part.exists():
                with contextlib.suppress(OSError):  # read-only: nothing will be written
                    part.chmod(0o600)

    @contextmanager
    def _explained(self) -> Iterator[None]:
        """SQLite's failures that are not bugs (locked, full, read-only) as a message saying
        what to do: a traceback ending in "database is locked" helps no one."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            explained = _unavailable(self.path, exc)
            if explained is None:
                raise
            raise explained from exc

    def _migrate(self) -> None:
        with self.transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._explained():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                # SQLite has already rolled back after some failures (a full disk).
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock, self._explained():
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
