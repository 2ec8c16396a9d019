"""What every answer-writing backend shares, whatever its server (rag/adapters/ollama.py,
openai_compat.py, llamacpp.py): the same guarantees, written once.

    ModelServer      the base of the Generator adapters: streaming read in a worker thread
                     under the connect, first-token and idle deadlines; reasoning kept apart
                     (a server's own field, or <think>...</think> inlined in the text);
                     the prompt's size from the server's tokenizer, else learned from what
                     it reported; the first-token deadline grown with the prompt at the
                     speed measured on earlier answers
    ThinkSplitter    separates <think>...</think> from the answer as the text streams
    think_request    the reasoning setting in the form a model accepts

Reasoning tokens count as progress for the deadlines: a model that thinks for a minute
before answering is working, not stalled.
"""

from __future__ import annotations

import math
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from functools import lru_cache
from typing import Any, TypeVar

from rag.errors import GenerationFailed, GenerationTimeout
from rag.settings import LlmSettings
from rag.types import Message, Thinking, Usage

T = TypeVar("T")
Piece = str | Thinking | Usage

OPEN_THINK, CLOSE_THINK = "<think>", "</think>"
# Characters per token before anything was measured: real tokenizers give 3.5-4.5 for
# English prose and ~3 for French or code; 2.5 overestimates all of them.
UNMEASURED_CHARS_PER_TOKEN = 2.5
MESSAGE_OVERHEAD_TOKENS = 8  # role markers and separators of the chat template, per message
# The first-token deadline gives the prompt this many times the time it took on average.
PROMPT_TIME_MARGIN = 3.0


class ThinkSplitter:
    """Text deltas in, answer text and Thinking out: `<think>...</think>` (inlined by some
    servers and models, e.g. DeepSeek-R1 distills through a plain chat template) is
    reasoning, even when a tag is split across deltas."""

    def __init__(self) -> None:
        self._held = ""
        self._thinking = False

    def feed(self, text: str) -> list[str | Thinking]:
        self._held += text
        out: list[str | Thinking] = []
        while self._held:
            tag = CLOSE_THINK if self._thinking else OPEN_THINK
            at = self._held.find(tag)
            if at >= 0:
                self._emit(out, self._held[:at])
                self._held = self._held[at + len(tag) :]
                self._thinking = not self._thinking
                continue
            # Keep back what could be the start of a tag split across deltas.
            keep = _partial_suffix(self._held, tag)
            self._emit(out, self._held[: len(self._held) - keep])
            self._held = self._held[len(self._held) - keep :]
            break
        return out

    def flush(self) -> list[str | Thinking]:
        out: list[str | Thinking] = []
        self._emit(out, self._held)
        self._held = ""
        return out

    def _emit(self, out: list[str | Thinking], text: str) -> None:
        if text:
            out.append(Thinking(text) if self._thinking else text)


def _partial_suffix(text: str, tag: str) -> int:
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


def think_request(level: str, can_think: bool | None, levels_only: bool) -> bool | str | None:
    """What to send for the `llm.think` setting: None (send nothing: the model's default),
    True/False, or a level. `can_think`: the server says the model reasons (None: it does
    not say). `levels_only`: the model takes levels and cannot switch reasoning off
    (gpt-oss)."""
    if level == "auto" or can_think is False:
        return None
    if levels_only:
        return "low" if level == "off" else level
    return level != "off"


_END = object()


def with_deadlines(
    start: Callable[[], Iterator[T]], first_timeout: float, idle_timeout: float
) -> Iterator[T]:
    """Items of `start()`, read in a worker thread; GenerationTimeout when the first item
    takes longer than `first_timeout` or any later one longer than `idle_timeout`. The
    caller stops waiting at the deadline; the thread ends at the client's read timeout."""
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

    threading.Thread(target=pump, name="model-stream", daemon=True).start()
    timeout, what = first_timeout, f"no answer within {first_timeout:.0f} s"
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


class ModelServer(ABC):
    """The Generator port on a model server. Subclasses open the stream and translate
    their library's errors; this class gives every provider the same guarantees."""

    provider = "model server"

    def __init__(self, settings: LlmSettings, model: str) -> None:
        self._settings = settings
        self.model = model
        self._chars_per_token: float | None = None  # learned from the server's counts
        self._prompt_tokens_per_s: float | None = None  # learned from its timings
        self._lock = threading.Lock()
        self._tokens = lru_cache(maxsize=4096)(self._count_uncached)

    # -- what a subclass provides --------------------------------------------------------
    @abstractmethod
    def check(self) -> None:
        """Raise a GeneratorError unless the server answers and has the model."""

    @abstractmethod
    def _server_context_length(self) -> int | None:
        """The model's context length as the server reports it, if it does."""

    @abstractmethod
    def _open(
        self, messages: Sequence[Message], num_ctx: int, answer_tokens: int | None = None
    ) -> Iterator[Piece]:
        """The server's stream: text, reasoning it reports apart, then one Usage."""

    def reply_room(self, answer_tokens: int | None = None) -> int:
        """Tokens the model may write: the answer (`answer_tokens`, at most the setting's)
        and its reasoning."""
        cap = self._settings.max_answer_tokens
        return min(answer_tokens or cap, cap) + self.reasoning_room()

    @abstractmethod
    def _translated_errors(self) -> AbstractContextManager[None]:
        """Library errors turned into Citadel's GeneratorError family."""

    def _tokenize(self, text: str) -> int | None:
        """Tokens of `text` by the server's own tokenizer, where it offers one."""
        return None

    # -- the port ------------------------------------------------------------------------
    def context_limit(self) -> int:
        """The largest context to ask for: the model's own length, capped by the settings."""
        own = self._server_context_length()
        cap = self._settings.max_context_tokens
        return min(own, cap) if own else cap

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for `text` as a message of a chat."""
        return int(self._tokens(text)) + MESSAGE_OVERHEAD_TOKENS

    def _count_uncached(self, text: str) -> int:
        counted = self._tokenize(text)
        if counted is not None:
            return counted
        ratio = self._chars_per_token or UNMEASURED_CHARS_PER_TOKEN
        return math.ceil(len(text) / ratio)

    def timeouts(self) -> dict[str, float]:
        """The HTTP client's: connecting, and reading up to the longer of the deadlines (the
        deadlines themselves are kept by `with_deadlines`, which stops waiting first)."""
        s = self._settings
        read = max(s.first_token_timeout_s, s.idle_timeout_s)
        return {
            "connect": s.connect_timeout_s,
            "read": read,
            "write": s.connect_timeout_s,
            "pool": s.connect_timeout_s,
        }

    def first_token_timeout(self, prompt_tokens: int) -> float:
        """The setting's allowance (loading the model...), plus the prompt's own time at the
        speed measured on earlier answers, with a margin."""
        base = self._settings.first_token_timeout_s
        speed = self._prompt_tokens_per_s
        return base + (PROMPT_TIME_MARGIN * prompt_tokens / speed if speed else 0.0)

    def stream(
        self, messages: Sequence[Message], num_ctx: int, answer_tokens: int | None = None
    ) -> Iterator[Piece]:
        """Answer text as it comes, Thinking apart from it, then one Usage."""
        prompt_tokens = sum(self.count_tokens(m.content) for m in messages)
        pieces = with_deadlines(
            lambda: self._open(messages, num_ctx, answer_tokens),
            self.first_token_timeout(prompt_tokens),
            self._settings.idle_timeout_s,
        )
        splitter = ThinkSplitter()
        usage: Usage | None = None
        with self._translated_errors():
            for piece in pieces:
                if isinstance(piece, Usage):
                    usage = piece
                elif isinstance(piece, Thinking):
                    yield piece
                else:
                    yield from splitter.feed(piece)
        yield from splitter.flush()
        if usage is None:
            raise GenerationFailed("the model server closed the answer stream before the end")
        self._learn(messages, usage)
        yield usage

    def complete(self, messages: Sequence[Message], num_ctx: int) -> str:
        """The whole answer at once, without its reasoning (used to rewrite follow-ups)."""
        return "".join(p for p in self.stream(messages, num_ctx) if isinstance(p, str))

    def _learn(self, messages: Sequence[Message], usage: Usage) -> None:
        """What the server reported about this prompt makes the next estimates right."""
        with self._lock:
            if usage.prompt_tokens and usage.prompt_seconds:
                speed = usage.prompt_tokens / usage.prompt_seconds
                known = self._prompt_tokens_per_s
                self._prompt_tokens_per_s = speed if known is None else 0.7 * known + 0.3 * speed
            overhead = MESSAGE_OVERHEAD_TOKENS * len(messages)
            if usage.prompt_tokens and usage.prompt_tokens > overhead:
                chars = sum(len(m.content) for m in messages)
                ratio = chars / (usage.prompt_tokens - overhead)
                # 10% fewer characters per token than measured: the estimate errs long.
                measured = max(1.0, 0.9 * ratio)
                if measured != self._chars_per_token:
                    self._chars_per_token = measured
                    self._tokens.cache_clear()

    def reasoning_room(self) -> int:
        """Context kept for reasoning: when a level is asked for (a server that does not
        say whether its model reasons gets none otherwise)."""
        s = self._settings
        return s.reasoning_tokens if s.think in ("low", "medium", "high") else 0

    def close(self) -> None:  # noqa: B027 (a server Citadel did not start: nothing to stop)
        """Let go of the server; only the embedded one has something to stop."""

    @property
    def measured_prompt_speed(self) -> float | None:
        """Prompt tokens read per second, as measured on earlier answers."""
        return self._prompt_tokens_per_s
