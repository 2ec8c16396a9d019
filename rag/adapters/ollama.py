"""Answers from an Ollama server: llama-index's Ollama integration on the official client.

The integration speaks the chat API; this adapter adds what a user notices (the rest of the
guarantees are rag/generation.py's): one `num_ctx` per model unless a prompt needs more
(Ollama reloads the model whenever it changes), the model's context length and reasoning
capability from /api/show, reasoning in the form the model takes (gpt-oss: a level; other
thinking models: on or off), and errors that say what to do.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any

import httpx
import ollama
from llama_index.core.base.llms.types import ChatMessage
from llama_index.llms.ollama import Ollama

from rag.errors import (
    GenerationFailed,
    GenerationTimeout,
    GeneratorError,
    GeneratorUnavailable,
    ModelNotFound,
)
from rag.generation import ModelServer, Piece, think_request
from rag.settings import LlmSettings
from rag.types import Message, Thinking, Usage

# Models that take reasoning levels and cannot switch reasoning off.
_LEVELS_ONLY_FAMILIES = ("gptoss", "gpt-oss")


class OllamaGenerator(ModelServer):
    """The Generator port on an Ollama server."""

    provider = "Ollama"

    def __init__(self, settings: LlmSettings) -> None:
        if not settings.model:
            raise ValueError("no model configured")
        super().__init__(settings, settings.model)
        self._num_ctx = 0  # the context asked for so far: kept unless a prompt needs more

    @cached_property
    def _client(self) -> ollama.Client:
        return ollama.Client(host=self._settings.host, timeout=httpx.Timeout(**self.timeouts()))

    @cached_property
    def _shown(self) -> Any:
        with self._translated_errors():
            return self._client.show(self.model)

    def _server_context_length(self) -> int | None:
        for key, value in (self._shown.modelinfo or {}).items():
            if key.endswith(".context_length"):
                return int(value)
        return None

    @property
    def _can_think(self) -> bool | None:
        capabilities = self._shown.capabilities
        return None if capabilities is None else "thinking" in capabilities

    @property
    def _levels_only(self) -> bool:
        family = (self._shown.details.family if self._shown.details else "") or ""
        name = self.model.lower()
        return family.lower() in _LEVELS_ONLY_FAMILIES or name.startswith("gpt-oss")

    def check(self) -> None:
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

    def _llm(self, num_ctx: int, answer_tokens: int | None) -> Ollama:
        s = self._settings
        think = think_request(s.think, self._can_think, self._levels_only)
        return Ollama(
            model=self.model,
            base_url=s.host,
            temperature=s.temperature,
            context_window=num_ctx,
            keep_alive=s.keep_alive,
            client=self._client,
            thinking=think,
            additional_kwargs={"num_predict": self.reply_room(answer_tokens)},
        )

    def reasoning_room(self) -> int:
        """Ollama says whether the model reasons: room for it unless reasoning is off."""
        s = self._settings
        thinks = self._can_think and s.think != "off"
        return s.reasoning_tokens if thinks or self._levels_only else 0

    def _open(
        self, messages: Sequence[Message], num_ctx: int, answer_tokens: int | None = None
    ) -> Iterator[Piece]:
        # One context size per model: Ollama reloads the model whenever num_ctx changes.
        self._num_ctx = max(self._num_ctx, num_ctx)
        chat = [ChatMessage(role=m.role, content=m.content) for m in messages]
        last: dict[str, Any] = {}
        for response in self._llm(self._num_ctx, answer_tokens).stream_chat(chat):
            last = dict(response.raw or {})
            thought = response.additional_kwargs.get("thinking_delta")
            if thought:
                yield Thinking(thought)
            if response.delta:
                yield response.delta
        if not last.get("done"):
            raise GenerationFailed("the model server closed the answer stream before the end")
        yield Usage(
            last.get("prompt_eval_count"),
            last.get("eval_count"),
            last.get("done_reason"),
            _seconds(last.get("prompt_eval_duration")),
            _seconds(last.get("eval_duration")),
            self._num_ctx,
        )

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


def _seconds(nanoseconds: Any) -> float | None:
    return nanoseconds / 1e9 if isinstance(nanoseconds, int) and nanoseconds > 0 else None
