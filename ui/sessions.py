"""Browser sessions: a signed cookie naming the user, with an expiry and a fingerprint of
the user's password hash, so that changing a password ends every session of that user.

Citadel owns its login (rather than Gradio's in-memory one) so that one session serves the
web UI, the links that open cited files, and the audit log's client address; sessions
expire and survive a restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable

COOKIE = "citadel_session"


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`fingerprint(name)`: a value that changes when the user's password does (None:
        no such enabled user)."""
        self._key = hashlib.sha256(b"citadel-session\x00" + key).digest()  # not the link key
        self._ttl = ttl_s
        self._fingerprint = fingerprint
        self._clock = clock

    @property
    def ttl_s(self) -> float:
        return self._ttl

    def issue(self, name: str) -> str:
        fingerprint = self._fingerprint(name)
        if fingerprint is None:
            raise ValueError(f"no enabled user {name!r}")
        expires = int(self._clock() + self._ttl)
        body = f"{_b64(name.encode())}.{expires}"
        return f"{body}.{self._sign(body, fingerprint)}"

    def user(self, cookie: str | None) -> str | None:
        """The user a cookie names, if it is authentic, unexpired and still current."""
        if not cookie or len(cookie) > 512 or cookie.count(".") != 2:
            return None
        encoded, expires, signature = cookie.split(".")
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
        expected = self._sign(f"{encoded}.{expires}", fingerprint)
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            return None
        return name

    def _sign(self, body: str, fingerprint: str) -> str:
        message = f"{body}\x00{fingerprint}".encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())
