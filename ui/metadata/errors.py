"""The metadata database's errors (the whole tree is drawn in ui/service/errors.py)."""

from __future__ import annotations

from rag.errors import CitadelError


class AccountError(CitadelError):
    """A user or team operation that cannot be done (the message says why)."""


class LoginLocked(CitadelError):
    """Too many failed logins for this account; try again later."""


class InvalidFeedback(CitadelError):
    """A rating or comment that cannot be kept."""


class MetadataUnavailable(CitadelError):
    """The metadata database cannot be read or written now (locked by another process, its
    disk full or read-only); nothing was changed, and the message says what to do."""
