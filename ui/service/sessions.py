"""Browser sessions: a signed cookie naming the user, with an expiry, an id and a
fingerprint of the user's password hash, so that changing a password ends every session of
that user, and logging out ends this one on the server too (a copied cookie stops working).

Citadel owns its login (rather than Gradio's in-memory one) so that one session serves the
web UI, the links that open cited files, and the audit log's client address; sessions
expire and survive a restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Protocol

COOKIE = "citadel_session"


class EndedSessions(Protocol):
    """Where ended session ids are kept until the sessions would have expired anyway."""

    def end_session(self, session_id: str, expires: float) -> None: ...

    def session_ended(self, session_id: str) -> bool: ...


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    def __init__(
        self,
        key: bytes,
        ttl_s: float,
        fingerprint: Callable[[str], str | None],
        ended: EndedSessions,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`fingerprint(name)`: a value that changes when the user's password does (None:
        no such enabled user)."""
        self._key = hashlib.sha256(b"citadel-session\x00" + key).digest()  # not the link key
        self._ttl = ttl_s
        self._fingerprint = fingerprint
        self._ended = ended
        self._clock = clock

    @property
    def ttl_s(self) -> float:
        return self._ttl

    def issue(self, name: str) -> str:
        fingerprint = self._fingerprint(name)
        if fingerprint is None:
            raise ValueError(f"no enabled user {name!r}")
        expires = int(self._clock() + self._ttl)
        body = f"{_b64(name.encode())}.{expires}.{secrets.token_urlsafe(12)}"
        return f"{body}.{self._sign(body, fingerprint)}"

    def user(self, cookie: str | None) -> str | None:
        """The user a cookie names, if it is authentic, unexpired, not ended and current."""
        parsed = self._parse(cookie)
        return parsed[0] if parsed else None

    def end(self, cookie: str | None) -> None:
        """Log out: this session stops working, wherever its cookie was copied to."""
        parsed = self._parse(cookie)
        if parsed:
            _, session_id, expires = parsed
            self._ended.end_session(session_id, expires)

    def _parse(self, cookie: str | None) -> tuple[str, str, int] | None:
        if not cookie or len(cookie) > 512 or cookie.count(".") != 3:
            return None
        encoded, expires, session_id, signature = cookie.split(".")
        try:
            name = _unb64(encoded).decode()
            deadline = int(expires)
        except ValueError:
            return None
        if deadline < self._clock():
            return None
        fingerprint = self._fingerprint(name)
        if fingerprint is None:
            return None
        expected = self._sign(f"{encoded}.{expires}.{session_id}", fingerprint)
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            return None
        if self._ended.session_ended(session_id):
            return None
        return name, session_id, deadline

    def _sign(self, body: str, fingerprint: str) -> str:
        message = f"{body}\x00{fingerprint}".encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())
