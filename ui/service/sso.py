"""What single sign-on hands to Citadel, whichever protocol carried it: a user known to a
provider (an OpenID Connect provider, or an LDAP / Active Directory directory) with the
groups it gives them, and the settings' rules that turn those groups into Citadel teams and
the administrator role.

Memberships are derived again at every login, so a group taken away at the provider takes
the team away at the user's next login (see the README, "Single sign-on").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from rag.errors import CitadelError

Source = Literal["oidc", "ldap"]


class SsoRefused(CitadelError):
    """The provider or Citadel's rules refuse this login; the message says why, for the
    person at the login page."""


class ProviderUnavailable(CitadelError):
    """The identity provider or the directory cannot be reached or answers nonsense now."""


@dataclass(frozen=True)
class Identity:
    source: Source
    subject: str  # stable at the provider: "issuer|sub", or the directory DN
    name: str  # the Citadel user name
    groups: frozenset[str]


@dataclass(frozen=True)
class Grant:
    """What an identity may do in Citadel."""

    admin: bool
    teams: frozenset[str]


def grant(identity: Identity, teams: Mapping[str, Sequence[str]], admin_group: str | None) -> Grant:
    """The teams (and role) the identity's groups give. Groups are compared exactly, as
    the provider spells them: a mapping rule is a security rule, not a guess. Refused
    (SsoRefused) when no group gives access."""
    admin = admin_group is not None and admin_group in identity.groups
    given = frozenset(team for group in identity.groups for team in teams.get(group, ()))
    if not admin and not given:
        raise SsoRefused(
            "your account is in none of the groups that give access to Citadel: ask an "
            "administrator to add you to one"
        )
    return Grant(admin, given)


def as_groups(value: object) -> frozenset[str]:
    """A groups claim or attribute, whatever its shape (a list, one string, nothing)."""
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, Iterable):
        return frozenset(str(v) for v in value if isinstance(v, str | int))
    return frozenset()
