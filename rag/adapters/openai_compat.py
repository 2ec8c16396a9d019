"""Answers from any OpenAI-compatible chat-completions server, through the official `openai`
client: vLLM (how generation scales past one machine), llama.cpp's llama-server, LM Studio,
LocalAI, TGI.

What the protocol leaves to each server is read where it says it: the context length from
llama.cpp's /props or vLLM's `max_model_len` in /v1/models; token counts from the server's
/tokenize; reasoning from `reasoning_content` (or `reasoning`) deltas, or inlined as
<think>...</think> (rag/generation.py separates those).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any

import httpx
import openai

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


def server_root(host: str) -> str:
    """The server's own address, without the API's /v1."""
    root = host.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


class OpenAICompatibleGenerator(ModelServer):
    """The Generator port on an OpenAI-compatible server."""

    provider = "the OpenAI-compatible server"

    def __init__(self, settings: LlmSettings, model: str, host: str | None = None) -> None:
        super().__init__(settings, model)
        self._root = server_root(host or settings.host)
        self._tokenizer_works: bool | None = None

    @property
    def where(self) -> str:
        return self._root

    @property
    def _named(self) -> str:
        """The model server as the person knows it, in error messages."""
        return f"the model server at {self._root}"

    def _unreachable(self) -> str:
        """What to say when the model server cannot be reached."""
        return f"no model server answers at {self._root}"

    def _api_key(self) -> str | None:
        key = self._settings.api_key
        return key.get_secret_value() if key else None

    def _use_root(self, root: str) -> None:
        """Speak to the server at another address from now on (a restarted child)."""
        self._root = server_root(root)
        self._tokenizer_works = None
        for cached in ("_client", "_http"):
            self.__dict__.pop(cached, None)

    @cached_property
    def _client(self) -> openai.OpenAI:
        timeout = openai.Timeout(**self.timeouts())
        key = self._api_key() or "none"  # the client wants one
        return openai.OpenAI(
            base_url=f"{self._root}/v1", api_key=key, timeout=timeout, max_retries=0
        )

    @cached_property
    def _http(self) -> httpx.Client:
        s = self._settings
        key = self._api_key()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        timeout = httpx.Timeout(s.connect_timeout_s * 3, connect=s.connect_timeout_s)
        return httpx.Client(base_url=self._root, headers=headers, timeout=timeout)

    # -- what the server says about the model --------------------------------------------
    def _models(self) -> list[Any]:
        with self._translated_errors():
            return list(self._client.models.list().data)

    def check(self) -> None:
        served = [m.id for m in self._models()]
        if self.model not in served:
            raise ModelNotFound(
                f"the model {self.model!r} is not served at {self._root} (it serves: "
                f"{', '.join(served) or 'nothing'}): set CITADEL_LLM__MODEL to one of them"
            )

    def _server_context_length(self) -> int | None:
        # vLLM says it per model; llama.cpp says it in /props.
        for m in self._models():
            length = (m.model_extra or {}).get("max_model_len")
            if m.id == self.model and isinstance(length, int):
                return length
        try:
            props = self._http.get("/props")
            if props.status_code == 200:
                n_ctx = props.json().get("default_generation_settings", {}).get("n_ctx")
                if isinstance(n_ctx, int) and n_ctx > 0:
                    return n_ctx
        except (httpx.HTTPError, ValueError):
            pass
        return None

    def _tokenize(self, text: str) -> int | None:
        if self._tokenizer_works is False:
            return None
        try:
            # llama.cpp reads "content", vLLM "prompt" (with the model): both are sent.
            body = {"content": text, "prompt": text, "model": self.model}
            response = self._http.post("/tokenize", json=body)
        except httpx.HTTPError:
            return None  # no answer this time (down, stuck): ask again next time
        try:
            tokens = response.json().get("tokens") if response.status_code == 200 else None
        except ValueError:
            tokens = None
        self._tokenizer_works = isinstance(tokens, list)
        return len(tokens) if isinstance(tokens, list) else None

    # -- answering -----------------------------------------------------------------------
    def _request(
        self, messages: Sequence[Message], answer_tokens: int | None = None
    ) -> dict[str, Any]:
        s = self._settings
        levels_only = "gpt-oss" in self.model.lower()
        think = think_request(s.think, None, levels_only)
        extra: dict[str, Any] = {}
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "temperature": s.temperature,
            "max_tokens": self.reply_room(answer_tokens),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if isinstance(think, str):
            request["reasoning_effort"] = think
        if isinstance(think, bool) and not levels_only:
            # Qwen3, DeepSeek-R1 and the like switch reasoning in their chat template.
            extra["chat_template_kwargs"] = {"enable_thinking": think}
        if extra:
            request["extra_body"] = extra
        return request

    def _open(
        self, messages: Sequence[Message], num_ctx: int, answer_tokens: int | None = None
    ) -> Iterator[Piece]:
        stream = self._client.chat.completions.create(**self._request(messages, answer_tokens))
        finish: str | None = None
        usage: Any = None
        timings: dict[str, Any] = {}
        with stream:
            for chunk in stream:
                extra = chunk.model_extra or {}
                timings = extra.get("timings") or timings
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    delta = choice.delta
                    fields = delta.model_extra or {}
                    reasoning = fields.get("reasoning_content") or fields.get("reasoning")
                    if reasoning:
                        yield Thinking(str(reasoning))
                    if delta.content:
                        yield delta.content
                    finish = choice.finish_reason or finish
        if finish is None and usage is None:
            raise GenerationFailed("the model server closed the answer stream before the end")
        prompt_tokens = usage.prompt_tokens if usage else None
        yield Usage(
            prompt_tokens,
            usage.completion_tokens if usage else None,
            finish,
            _prompt_seconds(timings, prompt_tokens),
            _seconds(timings.get("predicted_ms")),
        )

    @contextmanager
    def _translated_errors(self) -> Iterator[None]:
        where = self._root
        try:
            yield
        except GeneratorError:
            raise
        except openai.APITimeoutError as exc:
            raise GenerationTimeout(f"{self._named} stopped responding") from exc
        except openai.APIConnectionError as exc:
            raise GeneratorUnavailable(self._unreachable()) from exc
        except openai.AuthenticationError as exc:
            raise GenerationFailed(
                f"the model server at {where} refused the API key: set CITADEL_LLM__API_KEY"
            ) from exc
        except openai.NotFoundError as exc:
            raise ModelNotFound(
                f"the model {self.model!r} is not served at {where}: GET {where}/v1/models "
                "lists the ones it serves; set CITADEL_LLM__MODEL to one of them"
            ) from exc
        except openai.APIStatusError as exc:
            raise GenerationFailed(
                f"{self._named} reported an error ({exc.status_code}): {exc.message}"
            ) from exc
        except (openai.APIError, httpx.HTTPError, ValueError) as exc:
            raise GenerationFailed(f"the connection to {self._named} broke: {exc}") from exc


def _prompt_seconds(timings: dict[str, Any], prompt_tokens: int | None) -> float | None:
    """The time reading the whole prompt takes, at the speed llama.cpp read what it read:
    it reads only `prompt_n` tokens (the rest of the prompt is in its cache, e.g. the same
    system prompt or question again), yet reports all of them as prompt tokens. Taken as is,
    a cached prompt would look read in an instant, and the first-token deadline that grows
    with the measured speed would shrink to nothing."""
    seconds = _seconds(timings.get("prompt_ms"))
    read = timings.get("prompt_n")
    if seconds and prompt_tokens and isinstance(read, int) and 0 < read < prompt_tokens:
        return seconds * prompt_tokens / read
    return seconds


def _seconds(milliseconds: Any) -> float | None:
    return (
        milliseconds / 1000 if isinstance(milliseconds, int | float) and milliseconds > 0 else None
    )
