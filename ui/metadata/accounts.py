"""Users, teams, memberships and API keys.

Passwords are hashed with Argon2id (argon2-cffi's defaults follow RFC 9106's recommendation).
API keys are 256-bit random secrets: a SHA-256 of the key is enough to store them (a slow
KDF protects guessable secrets, not random ones) and keeps every API request fast.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from collections.abc import Collection
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ui.metadata.database import Database, now_iso
from ui.metadata.errors import AccountError, LoginLocked

ROLES = ("admin", "member")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD_CHARS = 10
KEY_PREFIX = "ctl_"


@dataclass(frozen=True)
class Caller:
    """Who is asking: every permission decision starts from this."""

    name: str
    admin: bool
    teams: frozenset[str]


@dataclass(frozen=True)
class UserInfo:
    name: str
    role: str
    teams: tuple[str, ...]
    disabled: bool
    created_at: str
    source: str = "local"  # 'oidc', 'ldap': single sign-on sets its role and teams


def check_name(kind: str, name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise AccountError(
            f"invalid {kind} name {name!r}: 1-64 characters, letters, digits and . _ @ -, "
            "starting with a letter or digit"
        )
    return name


class Accounts:
    def __init__(
        self,
        db: Database,
        max_failures: int = 5,
        lockout_s: float = 300.0,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self._db = db
        self._hasher = hasher or PasswordHasher()
        self._max_failures = max_failures
        self._lockout_s = lockout_s
        # Verifying against this keeps an unknown user's login as slow as a known one's,
        # so timing does not tell which accounts exist.
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))

    # -- users ---------------------------------------------------------------------------
    def add_user(self, name: str, password: str, role: str = "member") -> None:
        check_name("user", name)
        if role not in ROLES:
            raise AccountError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
        self._check_password(password)
        with self._db.transaction() as conn:
            if conn.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone():
                raise AccountError(f"user {name!r} already exists")
            conn.execute(
                "INSERT INTO users (name, password_hash, role, created_at) VALUES (?, ?, ?, ?)",
                (name, self._hasher.hash(password), role, now_iso()),
            )

    def set_password(self, name: str, password: str) -> None:
        self._check_password(password)
        if self.source(name) not in (None, "local"):
            raise AccountError(
                f"{name!r} signs in through single sign-on: their password is the provider's"
            )
        with self._db.transaction() as conn:
            done = conn.execute(
                "UPDATE users SET password_hash = ? WHERE name = ?",
                (self._hasher.hash(password), name),
            ).rowcount
        if not done:
            raise AccountError(f"no user {name!r}")

    def set_role(self, name: str, role: str) -> None:
        if role not in ROLES:
            raise AccountError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
        with self._db.transaction() as conn:
            if not conn.execute("UPDATE users SET role = ? WHERE name = ?", (role, name)).rowcount:
                raise AccountError(f"no user {name!r}")

    def set_disabled(self, name: str, disabled: bool) -> None:
        with self._db.transaction() as conn:
            changed = conn.execute(
                "UPDATE users SET disabled = ? WHERE name = ?", (int(disabled), name)
            ).rowcount
        if not changed:
            raise AccountError(f"no user {name!r}")

    def remove_user(self, name: str) -> None:
        with self._db.transaction() as conn:
            if not conn.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount:
                raise AccountError(f"no user {name!r}")
            # Conversations are kept by user name: a later account of that name (a single
            # sign-on user's first login, say) must not find the removed user's.
            conn.execute("DELETE FROM conversations WHERE owner = ?", (name,))

    def users(self) -> list[UserInfo]:
        rows = self._db.query(
            "SELECT u.name, u.role, u.disabled, u.created_at, u.source, "
            "group_concat(t.name, '\n') AS teams "
            "FROM users u LEFT JOIN memberships m ON m.user_id = u.id "
            "LEFT JOIN teams t ON t.id = m.team_id GROUP BY u.id ORDER BY u.name"
        )
        return [
            UserInfo(
                r["name"],
                r["role"],
                tuple(sorted(r["teams"].split("\n"))) if r["teams"] else (),
                bool(r["disabled"]),
                r["created_at"],
                r["source"],
            )
            for r in rows
        ]

    def has_users(self) -> bool:
        return bool(self._db.query("SELECT 1 FROM users LIMIT 1"))

    def caller(self, name: str) -> Caller | None:
        """The enabled user `name` with their teams, or None."""
        rows = self._db.query(
            "SELECT u.name, u.role, t.name AS team FROM users u "
            "LEFT JOIN memberships m ON m.user_id = u.id LEFT JOIN teams t ON t.id = m.team_id "
            "WHERE u.name = ? AND u.disabled = 0",
            (name,),
        )
        if not rows:
            return None
        teams = frozenset(r["team"] for r in rows if r["team"])
        return Caller(rows[0]["name"], rows[0]["role"] == "admin", teams)

    def account_name(self, name: str) -> str | None:
        """The account's own spelling of `name` (names match whatever their case), or None."""
        rows = self._db.query("SELECT name FROM users WHERE name = ?", (name,))
        return str(rows[0]["name"]) if rows else None

    def session_fingerprint(self, name: str) -> str | None:
        """Changes whenever the user's password does (sessions are bound to it); None for
        an unknown or disabled user."""
        rows = self._db.query(
            "SELECT password_hash FROM users WHERE name = ? AND disabled = 0", (name,)
        )
        if not rows:
            return None
        return hashlib.sha256(rows[0]["password_hash"].encode()).hexdigest()[:32]

    def end_session(self, session_id: str, expires: float) -> None:
        """A logged-out session, remembered until it would have expired anyway."""
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM ended_sessions WHERE expires < ?", (time.time(),))
            conn.execute(
                "INSERT OR REPLACE INTO ended_sessions (id, expires) VALUES (?, ?)",
                (session_id, expires),
            )

    def session_ended(self, session_id: str) -> bool:
        rows = self._db.query("SELECT 1 FROM ended_sessions WHERE id = ?", (session_id,))
        return bool(rows)

    # -- login ---------------------------------------------------------------------------
    def login(self, name: str, password: str, clock: float | None = None) -> Caller | None:
        """The caller if the password is right; None otherwise. Raises LoginLocked after
        too many recent failures (the lock holds even for the right password). Only local
        accounts have a password here: those of single sign-on log in there."""
        now = time.time() if clock is None else clock
        self.check_locked(name, now)
        rows = self._db.query(
            "SELECT password_hash FROM users WHERE name = ? AND disabled = 0 AND source = 'local'",
            (name,),
        )
        stored = rows[0]["password_hash"] if rows else self._dummy_hash
        try:
            self._hasher.verify(stored, password)
            ok = bool(rows)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        if not ok:
            self.record_failure(name, now)
            return None
        if self._hasher.check_needs_rehash(stored):
            self.set_password(name, password)
        self.clear_failures(name)
        return self.caller(name)

    def check_locked(self, name: str, now: float | None = None) -> None:
        """LoginLocked when `name` failed to log in too often lately (any way of logging in)."""
        since = (time.time() if now is None else now) - self._lockout_s
        failures = self._db.query(
            "SELECT count(*) FROM login_failures WHERE name = ? AND at > ?", (name, since)
        )[0][0]
        if failures >= self._max_failures:
            raise LoginLocked(
                f"too many failed logins for this account; try again in "
                f"{int(self._lockout_s // 60) or 1} min"
            )

    def record_failure(self, name: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._db.transaction() as conn:
            conn.execute("INSERT INTO login_failures (name, at) VALUES (?, ?)", (name, now))
            conn.execute("DELETE FROM login_failures WHERE at < ?", (now - self._lockout_s,))

    def clear_failures(self, name: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM login_failures WHERE name = ?", (name,))

    def source(self, name: str) -> str | None:
        """Where the account `name` comes from ('local', 'oidc', 'ldap'), or None."""
        rows = self._db.query("SELECT source FROM users WHERE name = ?", (name,))
        return str(rows[0]["source"]) if rows else None

    def sync_external(
        self, source: str, external_id: str, name: str, admin: bool, teams: Collection[str]
    ) -> Caller | None:
        """The account of a single sign-on user, created at their first login, with the
        role and teams their provider gives now (teams are created when missing): a team
        taken away there is taken away here. None when the account is disabled.
        AccountError when `name` is a local account or another provider's user."""
        check_name("user", name)
        for team in teams:
            check_name("team", team)
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT id, source, external_id, disabled FROM users WHERE name = ?", (name,)
            ).fetchone()
            if row is not None and (row["source"], row["external_id"]) != (source, external_id):
                raise AccountError(
                    f"the user name {name!r} belongs to another Citadel account: an "
                    "administrator must rename or remove that account first"
                )
            if row is not None and row["disabled"]:
                return None
            role = "admin" if admin else "member"
            if row is None:
                renamed = conn.execute(
                    "SELECT name FROM users WHERE source = ? AND external_id = ?",
                    (source, external_id),
                ).fetchone()
                if renamed is not None:  # the provider now names them otherwise
                    raise AccountError(
                        f"this {source} user is Citadel's account {renamed['name']!r}, which "
                        f"their provider now names {name!r}: an administrator must remove "
                        "that account (or the provider give the old name back)"
                    )
                # No password works for this account: its password is the provider's.
                unusable = "!" + source + ":" + secrets.token_hex(16)
                user_id = conn.execute(
                    "INSERT INTO users (name, password_hash, role, created_at, source, "
                    "external_id) VALUES (?, ?, ?, ?, ?, ?)",
                    (name, unusable, role, now_iso(), source, external_id),
                ).lastrowid
            else:
                user_id = row["id"]
                conn.execute("UPDATE users SET role = ? WHERE id = ?", (role, user_id))
            conn.execute("DELETE FROM memberships WHERE user_id = ?", (user_id,))
            for team in sorted(set(teams)):
                conn.execute(
                    "INSERT OR IGNORE INTO teams (name, created_at) VALUES (?, ?)",
                    (team, now_iso()),
                )
                conn.execute(
                    "INSERT OR IGNORE INTO memberships (user_id, team_id) "
                    "SELECT ?, id FROM teams WHERE name = ?",
                    (user_id, team),
                )
        return self.caller(name)

    # -- teams ---------------------------------------------------------------------------
    def add_team(self, name: str) -> None:
        check_name("team", name)
        with self._db.transaction() as conn:
            if conn.execute("SELECT 1 FROM teams WHERE name = ?", (name,)).fetchone():
                raise AccountError(f"team {name!r} already exists")
            conn.execute("INSERT INTO teams (name, created_at) VALUES (?, ?)", (name, now_iso()))

    def remove_team(self, name: str) -> None:
        with self._db.transaction() as conn:
            if not conn.execute("DELETE FROM teams WHERE name = ?", (name,)).rowcount:
                raise AccountError(f"no team {name!r}")

    def teams(self) -> dict[str, list[str]]:
        """Each team with its members."""
        rows = self._db.query(
            "SELECT t.name AS team, u.name AS user FROM teams t "
            "LEFT JOIN memberships m ON m.team_id = t.id LEFT JOIN users u ON u.id = m.user_id "
            "ORDER BY t.name, u.name"
        )
        teams: dict[str, list[str]] = {}
        for r in rows:
            teams.setdefault(r["team"], [])
            if r["user"]:
                teams[r["team"]].append(r["user"])
        return teams

    def add_member(self, team: str, user: str) -> None:
        with self._db.transaction() as conn:
            user_id, team_id = self._ids(conn, user, team)
            conn.execute(
                "INSERT OR IGNORE INTO memberships (user_id, team_id) VALUES (?, ?)",
                (user_id, team_id),
            )

    def remove_member(self, team: str, user: str) -> None:
        with self._db.transaction() as conn:
            user_id, team_id = self._ids(conn, user, team)
            conn.execute(
                "DELETE FROM memberships WHERE user_id = ? AND team_id = ?", (user_id, team_id)
            )

    def team_exists(self, name: str) -> bool:
        return bool(self._db.query("SELECT 1 FROM teams WHERE name = ?", (name,)))

    # -- API keys ------------------------------------------------------------------------
    def create_key(self, user: str, label: str = "") -> str:
        """A new API key for `user`, shown once: only its hash is kept."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._db.transaction() as conn:
            row = conn.execute("SELECT id FROM users WHERE name = ?", (user,)).fetchone()
            if row is None:
                raise AccountError(f"no user {user!r}")
            conn.execute(
                "INSERT INTO api_keys (user_id, prefix, key_hash, label, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (row["id"], secret[:12], _key_hash(secret), label[:100], now_iso()),
            )
        return secret

    def keys(self, user: str) -> list[dict[str, object]]:
        """The user's keys (never the secrets), oldest first."""
        return [{k: v for k, v in key.items() if k != "user"} for key in self._keys(user)]

    def all_keys(self) -> list[dict[str, object]]:
        """Every user's keys (never the secrets), newest first."""
        return self._keys(None)[::-1]

    def _keys(self, user: str | None) -> list[dict[str, object]]:
        """The keys of `user` (None: everyone's), oldest first."""
        rows = self._db.query(
            "SELECT u.name AS user, k.prefix, k.label, k.created_at, k.last_used_at, k.revoked "
            "FROM api_keys k JOIN users u ON u.id = k.user_id "
            "WHERE ? IS NULL OR u.name = ? ORDER BY k.id",
            (user, user),
        )
        return [
            {
                "user": r["user"],
                "prefix": r["prefix"],
                "label": r["label"],
                "created_at": r["created_at"],
                "last_used_at": r["last_used_at"],
                "revoked": bool(r["revoked"]),
            }
            for r in rows
        ]

    def revoke_key(self, user: str, prefix: str) -> None:
        with self._db.transaction() as conn:
            done = conn.execute(
                "UPDATE api_keys SET revoked = 1 WHERE prefix = ? AND user_id = "
                "(SELECT id FROM users WHERE name = ?)",
                (prefix, user),
            ).rowcount
        if not done:
            raise AccountError(f"no key {prefix!r} for user {user!r}")

    def caller_for_key(self, secret: str) -> Caller | None:
        if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
            return None
        rows = self._db.query(
            "SELECT k.id, k.key_hash, u.name FROM api_keys k JOIN users u ON u.id = k.user_id "
            "WHERE k.prefix = ? AND k.revoked = 0 AND u.disabled = 0",
            (secret[:12],),
        )
        if not rows or not hmac.compare_digest(rows[0]["key_hash"], _key_hash(secret)):
            return None
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE api_keys SET last_used_at = ? WHERE id = ?", (now_iso(), rows[0]["id"])
            )
        return self.caller(rows[0]["name"])

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _check_password(password: str) -> None:
        if len(password) < MIN_PASSWORD_CHARS:
            raise AccountError(f"password too short: at least {MIN_PASSWORD_CHARS} characters")
        if len(password) > 1024:
            raise AccountError("password too long: at most 1024 characters")

    @staticmethod
    def _ids(conn: sqlite3.Connection, user: str, team: str) -> tuple[int, int]:
        u = conn.execute("SELECT id FROM users WHERE name = ?", (user,)).fetchone()
        if u is None:
            raise AccountError(f"no user {user!r}")
        t = conn.execute("SELECT id FROM teams WHERE name = ?", (team,)).fetchone()
        if t is None:
            raise AccountError(f"no team {team!r}")
        return int(u["id"]), int(t["id"])


def _key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
