"""Answers written at once, per server and per user; the rest wait in line, in order.

A model writes slowly (seconds to a minute an answer on CPU) and, with one model server,
one answer at a time or a few. Unbounded, 45 questions asked at once held 45 threads of
the server's shared pool for as long as the model took, and every other route (`GET
/api/me`, the documents list) waited behind them for 17 s. So:

- at most `running` answers are being written at once (`server.max_concurrent_answers`);
- one user has at most `per_user` answers running or waiting (more: 429 at once), so one
  script cannot fill the line;
- at most `waiting` more wait, first come first served (more: 429 at once); each waiting
  ticket knows its place in line, which the front ends show.

Front ends run the answers' work on their own threads (`threads`), never on the pool the
other routes share.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterator

from ui.service.errors import RateLimited

# A place in line freed by one answer is taken within the time of one answer: the client is
# told to try again after that.
RETRY_AFTER_S = 30.0


class Ticket:
    """One answer's place: waiting, then running, then released (idempotent)."""

    def __init__(self, slots: AnswerSlots, user: str) -> None:
        self._slots = slots
        self.user = user
        self.running = False
        self.released = False

    @property
    def position(self) -> int:
        """Answers ahead of this one in line (0: running, or next to run)."""
        return self._slots.position(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until this answer may be written (True), or `timeout` passes (False)."""
        return self._slots.wait(self, timeout)

    def release(self) -> None:
        self._slots.release(self)


class AnswerSlots:
    def __init__(self, running: int, per_user: int, waiting: int) -> None:
        self.running_limit = running
        self.per_user = per_user
        self.waiting_limit = waiting
        self._lock = threading.Condition()
        self._line: deque[Ticket] = deque()
        self._running = 0
        self._held: Counter[str] = Counter()  # running or waiting, per user

    @property
    def threads(self) -> int:
        """Threads the answers' work may occupy: every running and waiting answer."""
        return self.running_limit + self.waiting_limit

    def admit(self, user: str) -> Ticket:
        """A place for `user`'s answer, running at once if a slot is free, else in line; or
        RateLimited when the user already has `per_user` answers or the line is full."""
        with self._lock:
            if self._held[user] >= self.per_user:
                raise RateLimited(
                    RETRY_AFTER_S,
                    f"{self._held[user]} of your answers are already being written or "
                    "waiting: wait for one to finish",
                )
            if self._running >= self.running_limit and len(self._line) >= self.waiting_limit:
                raise RateLimited(
                    RETRY_AFTER_S,
                    f"the server is writing {self._running} answers and {len(self._line)} "
                    "more are waiting: try again in a moment",
                )
            ticket = Ticket(self, user)
            self._held[user] += 1
            self._line.append(ticket)
            self._promote()
            return ticket

    def position(self, ticket: Ticket) -> int:
        with self._lock:
            if ticket.running or ticket.released:
                return 0
            return self._line.index(ticket)

    def wait(self, ticket: Ticket, timeout: float | None) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: ticket.running or ticket.released, timeout)

    def release(self, ticket: Ticket) -> None:
        with self._lock:
            if ticket.released:
                return
            ticket.released = True
            self._held[ticket.user] -= 1
            if self._held[ticket.user] <= 0:
                del self._held[ticket.user]
            if ticket.running:
                self._running -= 1
            else:
                self._line.remove(ticket)
            self._promote()

    def counts(self) -> tuple[int, int]:
        """(running, waiting) now."""
        with self._lock:
            return self._running, len(self._line)

    def _promote(self) -> None:
        """Start the first in line while slots are free; wake every waiter (positions moved)."""
        while self._line and self._running < self.running_limit:
            first = self._line.popleft()
            first.running = True
            self._running += 1
        self._lock.notify_all()


def places_in_line(ticket: Ticket, every_s: float = 0.5) -> Iterator[int]:
    """While `ticket` waits for its turn: its place in line, each time it changes (first at
    once). Ends when the answer may be written."""
    shown: int | None = None
    while not ticket.wait(0 if shown is None else every_s):
        place = ticket.position
        if place != shown:
            shown = place
            yield place
