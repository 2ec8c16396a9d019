"""Signed links that open a cited file: made for one user, checked when opened.

The key is made once per data directory (owner-readable only) and also seeds the session
key (ui/service/sessions.py derives its own from it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from rag.types import Passage
from ui.service.errors import NotFound


class FileLinks:
    def __init__(self, key: bytes, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._ttl_s = ttl_s
        self._clock = clock

    def make(self, user: str, passage: Passage) -> str:
        """A link to the passage's file (at the page of its cited sentence, for PDFs) for
        `user` only."""
        anchor = f"#page={passage.page}" if passage.page is not None else ""
        return self.for_document(user, passage.document_id) + anchor

    def for_document(self, user: str, document_id: str) -> str:
        """A link to a document's file for `user` only (a link shown again, renewed)."""
        expires = int(self._clock() + self._ttl_s)
        token = self._sign(f"{user}\n{document_id}\n{expires}")
        name = base64.urlsafe_b64encode(user.encode()).decode().rstrip("=")
        return f"/files/{document_id}?u={name}&e={expires}&s={token}"

    def user_of(self, document_id: str, user: str, expires: str, signature: str) -> str:
        """The user an authentic, unexpired link was made for; NotFound otherwise."""
        try:
            name = base64.urlsafe_b64decode(user + "=" * (-len(user) % 4)).decode()
            deadline = int(expires)
        except ValueError as exc:
            raise NotFound("no such file") from exc
        expected = self._sign(f"{name}\n{document_id}\n{deadline}")
        authentic = hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))
        if not authentic or deadline < self._clock():
            raise NotFound("no such file")
        return name

    def _sign(self, message: str) -> str:
        digest = hmac.new(self._key, message.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def secret_key(path: Path) -> bytes:
    """The server's signing key: made once per data directory, owner-readable only."""
    if path.exists() and len(key := path.read_bytes()) >= 32:
        return key
    path.unlink(missing_ok=True)  # empty or cut short: a weak key is worse than a new one
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key
