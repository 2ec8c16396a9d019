"""Limits every front end shares: what one user may send, and how often.

RateLimiter         units per key (a user, an address) in any sliding minute
MAX_QUESTION_CHARS  the longest question a front end accepts in a request body (the
                    retrieval limit, retrieval.max_query_chars, is checked by the service)
MAX_FILES_PER_UPLOAD  files in one upload request (REST or web UI), at most
files_per_upload    ... and never more than one user may upload in a minute
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from ui.service.errors import RateLimited

MAX_QUESTION_CHARS = 4000
MAX_FILES_PER_UPLOAD = 50
WINDOW_S = 60.0


def files_per_upload(uploads_per_minute: int) -> int:
    """Files one upload request may carry: an upload the per-minute allowance could never
    admit would only be refused whole (50 files against 30 a minute was)."""
    return min(MAX_FILES_PER_UPLOAD, uploads_per_minute)


class RateLimiter:
    """At most `per_minute` units per key in any sliding 60 s window; thread-safe."""

    _SWEEP_KEYS = 1024  # beyond this many keys, forget the ones with nothing in the window

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        what: str = "uploads",
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self._what = what  # named in the message: "too many <what>"
        self._per_minute = per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._spent: dict[str, deque[tuple[float, int]]] = {}

    def check(self, key: str, cost: int = 1) -> None:
        """Count `cost` units for `key`, or raise RateLimited (counting nothing)."""
        if cost < 1:
            raise ValueError("cost must be at least 1")
        if cost > self._per_minute:
            raise RateLimited(
                WINDOW_S,
                f"{cost} {self._what} at once are more than the {self._per_minute} allowed per "
                "minute: send fewer at a time",
            )
        self._take(key, cost, spend=True)

    def ensure_room(self, key: str) -> None:
        """Raise RateLimited if `key` could not spend one unit now, spending nothing: lets a
        request be turned away before its body is received."""
        self._take(key, 1, spend=False)

    def _take(self, key: str, cost: int, spend: bool) -> None:
        with self._lock:
            now = self._clock()
            if len(self._spent) > self._SWEEP_KEYS:
                self._sweep(now)
            spent = self._spent.setdefault(key, deque())
            _expire(spent, now)
            used = sum(units for _, units in spent)
            excess = used + cost - self._per_minute
            if excess > 0:
                wait = _wait_for(spent, excess, now)
                raise RateLimited(
                    wait, f"too many {self._what}: try again in {max(1, math.ceil(wait))} s"
                )
            if spend:
                spent.append((now, cost))

    def _sweep(self, now: float) -> None:
        for key in list(self._spent):
            _expire(self._spent[key], now)
            if not self._spent[key]:
                del self._spent[key]


def _expire(spent: deque[tuple[float, int]], now: float) -> None:
    while spent and spent[0][0] <= now - WINDOW_S:
        spent.popleft()


def _wait_for(spent: deque[tuple[float, int]], excess: int, now: float) -> float:
    """Seconds until the oldest entries leave the window and free `excess` units."""
    freed = 0
    for at, units in spent:
        freed += units
        if freed >= excess:
            return at + WINDOW_S - now
    return WINDOW_S  # unreachable: the window holds more than `excess` units
