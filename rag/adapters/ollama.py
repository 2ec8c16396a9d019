"""Answer writing through Ollama: llama-index's Ollama integration on the official client.

The integration speaks the chat API; this adapter adds what a user notices: a per-request
`num_ctx`, a connect timeout, a first-token and an idle-stream timeout, and errors that say
what to do. The stream is read in a worker thread so a stalled server can never hang the
caller: the caller stops waiting at the deadline, and the thread ends at httpx's read
timeout.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any, TypeVar

import httpx
import ollama
from llama_index.core.base.llms.types import ChatMessage, ChatResponse
from llama_index.llms.ollama import Ollama

from rag.errors import (
    GenerationFailed,
    GenerationTimeout,
    GeneratorError,
    GeneratorUnavailable,
    ModelNotFound,
)
from rag.settings import LlmSettings
from rag.types import Message, Usage

T = TypeVar("T")


class OllamaGenerator:
    """The Generator port on an Ollama server."""

    def __init__(self, settings: LlmSettings) -> None:
        if not settings.model:
            raise ValueError("no model configured")
        self._settings = settings
        self.model: str = settings.model

    @cached_property
    def _client(self) -> ollama.Client:
        s = self._settings
        timeout = httpx.Timeout(
            connect=s.connect_timeout_s,
            read=max(s.first_token_timeout_s, s.idle_timeout_s),
            write=s.connect_timeout_s,
            pool=s.connect_timeout_s,
        )
        return ollama.Client(host=s.host, timeout=timeout)

    def _llm(self, num_ctx: int) -> Ollama:
        s = self._settings
        return Ollama(
            model=self.model,
            base_url=s.host,
            temperature=s.temperature,
            context_window=num_ctx,
            keep_alive=s.keep_alive,
            client=self._client,
            additional_kwargs={"num_predict": s.max_answer_tokens},
        )

    @cached_property
    def _model_context_length(self) -> int | None:
        with self._translated_errors():
            info = self._client.show(self.model)
        for key, value in (info.modelinfo or {}).items():
            if key.endswith(".context_length"):
                return int(value)
        return None

    def check(self) -> None:
        """Raise a GeneratorError unless the server answers and has the model (readiness)."""
        with self._translated_errors():
            listed = self._client.list()
        names = {m.model for m in listed.models if m.model}
        if self.model not in names and f"{self.model}:latest" not in names:
            raise self._not_pulled()

    def _not_pulled(self) -> ModelNotFound:
        return ModelNotFound(
            f"the model {self.model!r} is not available on the Ollama server at "
            f"{self._settings.host}: run `ollama pull {self.model}` there"
        )

    def context_limit(self) -> int:
        """The largest num_ctx to ask for: the model's own length, capped by the settings."""
        own = self._model_context_length
        cap = self._settings.max_context_tokens
        return min(own, cap) if own else cap

    def complete(self, messages: Sequence[Message], num_ctx: int) -> str:
        """The whole reply at once (used to rewrite follow-up questions)."""
        return "".join(t for t in self.stream(messages, num_ctx) if isinstance(t, str))

    def stream(self, messages: Sequence[Message], num_ctx: int) -> Iterator[str | Usage]:
        """Text deltas as they come, then one Usage."""
        chat = [ChatMessage(role=m.role, content=m.content) for m in messages]
        responses = _with_deadlines(
            lambda: self._llm(num_ctx).stream_chat(chat),
            self._settings.first_token_timeout_s,
            self._settings.idle_timeout_s,
        )
        last: ChatResponse | None = None
        with self._translated_errors():
            for response in responses:
                last = response
                if response.delta:
                    yield response.delta
        raw: dict[str, Any] = dict(last.raw or {}) if last is not None else {}
        if not raw.get("done"):
            raise GenerationFailed("the model server closed the answer stream before the end")
        yield Usage(raw.get("prompt_eval_count"), raw.get("eval_count"), raw.get("done_reason"))

    # -- error translation --------------------------------------------------------------
    @contextmanager
    def _translated_errors(self) -> Iterator[None]:
        host = self._settings.host
        try:
            yield
        except GeneratorError:
            raise
        except ollama.ResponseError as exc:
            if exc.status_code == 404 or "not found" in str(exc.error).lower():
                raise self._not_pulled() from exc
            raise GenerationFailed(f"the Ollama server reported an error: {exc.error}") from exc
        except (ConnectionError, httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise GeneratorUnavailable(f"no Ollama server answers at {host}") from exc
        except httpx.TimeoutException as exc:
            raise GenerationTimeout(f"the Ollama server at {host} stopped responding") from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise GenerationFailed(
                f"the connection to the Ollama server at {host} broke: {exc}"
            ) from exc


_END = object()


def _with_deadlines(
    start: Callable[[], Iterator[T]], first_timeout: float, idle_timeout: float
) -> Iterator[T]:
    """Items of `start()`, read in a worker thread; GenerationTimeout when the first item
    takes longer than `first_timeout` or any later one longer than `idle_timeout`."""
    items: queue.Queue[Any] = queue.Queue()
    abandoned = threading.Event()

    def pump() -> None:
        try:
            for item in start():
                if abandoned.is_set():
                    return
                items.put(item)
            items.put(_END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            items.put(exc)

    threading.Thread(target=pump, name="ollama-stream", daemon=True).start()
    timeout, what = first_timeout, f"no answer within {first_timeout:g} s"
    try:
        while True:
            try:
                item = items.get(timeout=timeout)
            except queue.Empty:
                raise GenerationTimeout(
                    f"the model server stopped: {what} (CITADEL_LLM__FIRST_TOKEN_TIMEOUT_S / "
                    "CITADEL_LLM__IDLE_TIMEOUT_S)"
                ) from None
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
            timeout, what = idle_timeout, f"nothing received for {idle_timeout:g} s"
    finally:
        abandoned.set()
