"""The server's errors, and the whole tree a front end may have to show.

    CitadelError (rag/errors.py: settings, questions, embedder, store, model server)
    ├── NotFound            unknown, or not the caller's: the two are never told apart
    ├── Forbidden           the caller's role does not allow the operation
    ├── NothingToSearch     the caller's collections hold no documents yet
    ├── RateLimited         too many requests from one user or address (retry_after_s)
    ├── UploadRejected      an uploaded file refused (name, size, type, content)
    ├── SsoRefused          ui/service/sso.py: single sign-on refused (no group, disabled…)
    ├── ProviderUnavailable ui/service/sso.py: the OIDC provider or the directory is down
    ├── FolderRejected      ui/service/folder_sync.py: a folder that cannot be attached
    ├── FolderUnreachable   ingest/mirror.py: a synced folder unreadable now (nothing pruned)
    ├── AccountError        ui/metadata/errors.py: a user or team change that cannot be done
    ├── LoginLocked         ui/metadata/errors.py: too many failed logins of an account
    ├── InvalidFeedback     ui/metadata/errors.py: a rating or comment that cannot be kept
    └── MetadataUnavailable ui/metadata/errors.py: the database locked, its disk full...

How each one is answered over HTTP (status, OpenAI error type and code) is one table:
ui/http/errors.py.
"""

from __future__ import annotations

import math

from rag.errors import CitadelError
from rag.text import escape_invisible


class NotFound(CitadelError):
    """Unknown, or not the caller's: the two are never told apart."""


class Forbidden(CitadelError):
    """The caller's role does not allow the operation (not about any one object)."""


class NothingToSearch(CitadelError):
    """The caller's collections hold no documents yet."""


class RateLimited(CitadelError):
    """Too many requests from one key; retry after `retry_after_s` seconds."""

    def __init__(self, retry_after_s: float, message: str | None = None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(
            message or f"too many uploads: try again in {max(1, math.ceil(retry_after_s))} s"
        )

    def __reduce__(self) -> tuple[type[RateLimited], tuple[float, str]]:
        return (type(self), (self.retry_after_s, str(self)))


class UploadRejected(CitadelError):
    """The upload is refused; the message is shown to the user as is.

    Unprintable characters of the message (a hostile file name's) are escaped.
    """

    def __init__(self, message: str) -> None:
        super().__init__(escape_invisible(message))
