"""Who may read which collection: the isolation rule, in one place.

A member reads the collections owned by their teams; an administrator reads every
collection, stored or registered. Anything else a caller names (unknown, or another team's)
is `NotFound` with the same message, so a probe cannot tell "exists but not yours" from
"does not exist". The result is the filter of every store query: the front ends never
decide what a user may see.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ui.metadata.accounts import Caller
from ui.metadata.catalog import Catalog
from ui.service.errors import Forbidden, NotFound

LOCAL_ADMIN = Caller("local", admin=True, teams=frozenset())  # authentication off (loopback)


def require_admin(caller: Caller, what: str) -> None:
    if not caller.admin:
        raise Forbidden(f"only administrators may {what}")


def readable(caller: Caller, catalog: Catalog, stored: Iterable[str]) -> list[str]:
    """The collections `caller` may read, given the names the store holds."""
    if caller.admin:
        return sorted(set(stored) | set(catalog.owners()))
    return sorted(catalog.readable_by(caller.teams))


def resolve(readable_names: Sequence[str], requested: Sequence[str] | None) -> list[str]:
    """The collections a request may touch: those asked for (each must be readable), or
    all readable ones when none are named."""
    if not requested:
        return list(readable_names)
    names = list(dict.fromkeys(requested))
    if any(n not in readable_names for n in names):
        raise NotFound("no such collection")
    return names
