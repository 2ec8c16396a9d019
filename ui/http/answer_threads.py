"""The threads an answer's blocking work runs on in the HTTP front ends (REST, /v1).

An answer waits in line, searches, then waits on the model token after token: seconds to a
minute of a blocked thread. On Starlette's shared thread pool (40 threads), 45 answers
being written or waiting left no thread for any other route. Here they run on threads of
their own, as many as answers may be written or wait (`AnswerSlots.threads`), so the
other routes keep the shared pool.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from rag.types import Delta, Thinking
from ui.service.workspace import Answered

T = TypeVar("T")
_END = object()


class AnswerThreads:
    def __init__(self, size: int) -> None:
        self._size = size
        self._limiter: anyio.CapacityLimiter | None = None

    def _tokens(self) -> anyio.CapacityLimiter:
        # Made on first use: a limiter belongs to the running event loop.
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self._size)
        return self._limiter

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._tokens())

    async def iterate(self, items: Iterator[T]) -> AsyncGenerator[T, None]:
        """`items`, each drawn on one of these threads; closed (on one too) however the
        reader stops, so that what it holds (a model's stream, an answer slot) is let go."""
        try:
            while (item := await self.run(next, items, _END)) is not _END:
                yield item
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await self.run(close)


def final_answer(events: Iterator[Delta | Thinking | Answered]) -> Answered:
    """The checked answer at the end of `events`, which are closed after it (their answer
    slot is freed now, not whenever they are collected)."""
    try:
        return next(e for e in events if isinstance(e, Answered))
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


class ClosingStreamingResponse(StreamingResponse):
    """A stream whose body is closed as soon as it ends, however it ends. Starlette cancels
    the sending when the client goes away but leaves the body suspended where it was; what
    it holds (an answer slot, the model's stream) was let go only when the garbage collector
    got to it: a waiting client that left kept its place in line for minutes."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await close()
