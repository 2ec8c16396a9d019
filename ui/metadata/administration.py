"""Account administration, audited: the REST API (as the signed-in admin) and the command
line (as `cli:<os user>`) change users, teams and keys through these methods only, so
every change leaves the same audit entry whoever makes it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ui.metadata.accounts import Accounts
from ui.metadata.audit import AuditLog
from ui.metadata.errors import AccountError


class Administration:
    def __init__(
        self, accounts: Accounts, audit: AuditLog, actor: str, client: str | None = None
    ) -> None:
        self._accounts = accounts
        self._audit = audit
        self._actor = actor
        self._client = client

    def _record(self, op: str, **detail: Any) -> None:
        self._audit.record(self._actor, "admin", None, self._client, op=op, **detail)

    def add_user(self, name: str, password: str, role: str, teams: Sequence[str] = ()) -> None:
        unknown = [t for t in teams if not self._accounts.team_exists(t)]
        if unknown:  # checked first: no user is created half-way
            raise AccountError(f"no team {unknown[0]!r}")
        self._accounts.add_user(name, password, role)
        for team in teams:
            self._accounts.add_member(team, name)
        self._record("user_add", user=name, role=role, teams=list(teams))

    def set_password(self, name: str, password: str) -> None:
        self._accounts.set_password(name, password)
        self._record("user_passwd", user=name)

    def set_disabled(self, name: str, disabled: bool) -> None:
        """Disable (no login, no API key, sessions end) or enable an account."""
        if disabled and name == self._actor:
            raise AccountError("you cannot disable your own account")
        self._accounts.set_disabled(name, disabled)
        self._record("user_disable" if disabled else "user_enable", user=name)

    def set_teams(self, name: str, teams: Sequence[str]) -> None:
        """Make `name` a member of exactly `teams` (each change audited as one membership)."""
        unknown = [t for t in teams if not self._accounts.team_exists(t)]
        if unknown:  # checked first: nothing is changed half-way
            raise AccountError(f"no team {unknown[0]!r}")
        current = {u.name: set(u.teams) for u in self._accounts.users()}
        if name not in current:
            raise AccountError(f"no user {name!r}")
        wanted = set(teams)
        for team in sorted(wanted - current[name]):
            self.set_member(team, name)
        for team in sorted(current[name] - wanted):
            self.set_member(team, name, member=False)

    def remove_user(self, name: str) -> None:
        self._accounts.remove_user(name)
        self._record("user_remove", user=name)

    def create_key(self, user: str, label: str = "") -> str:
        secret = self._accounts.create_key(user, label)
        self._record("key_create", user=user, prefix=secret[:12])
        return secret

    def revoke_key(self, user: str, prefix: str) -> None:
        self._accounts.revoke_key(user, prefix)
        self._record("key_revoke", user=user, prefix=prefix)

    def add_team(self, name: str) -> None:
        self._accounts.add_team(name)
        self._record("team_add", team=name)

    def set_member(self, team: str, user: str, member: bool = True) -> None:
        if member:
            self._accounts.add_member(team, user)
        else:
            self._accounts.remove_member(team, user)
        self._record("member_add" if member else "member_remove", team=team, user=user)
