"""One contract for every answer-writing provider (the Generator port), run against each:

    ollama    the real OllamaGenerator (the official `ollama` client) against the fake
              Ollama server (tests/fake_ollama.py)
    openai    the real OpenAICompatibleGenerator (the official `openai` client) against a
              real llama.cpp server that this module starts in-process (xllamacpp) serving
              SmolLM2-135M; a tiny OpenAI-speaking server written below plays what llama.cpp
              cannot be made to do (stall, or not have a model)
    llamacpp  EmbeddedLlamaCpp: Citadel's own llama.cpp child process serving SmolLM2-135M;
              a stalled child is one stopped with SIGSTOP

Each guarantee runs for every provider where it can be produced; the embedded provider's
own guarantees (its child process) come last.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import psutil
import pytest

from rag.adapters.llamacpp import EmbeddedLlamaCpp
from rag.adapters.ollama import OllamaGenerator
from rag.adapters.openai_compat import OpenAICompatibleGenerator
from rag.answering import AnswerService
from rag.errors import (
    ConfigurationError,
    GenerationTimeout,
    GeneratorUnavailable,
    ModelNotFound,
)
from rag.evidence import Evidence
from rag.generation import MESSAGE_OVERHEAD_TOKENS, UNMEASURED_CHARS_PER_TOKEN, ModelServer
from rag.retrieval import Retrieval, Retriever
from rag.settings import LlmSettings
from rag.types import Answer, Message, Passage, Thinking, Usage
from rag.wiring import build_generator
from tests.conftest import SAMPLES
from tests.fake_ollama import FakeOllama, Script

OLLAMA_MODEL = "llama3.2:3b"
OLLAMA_CONTEXT = 4096  # what the fake Ollama's /api/show says of the model
LLAMA_ALIAS = "smollm2"  # the model's id on the module's llama.cpp server
LLAMA_CONTEXT = 2048  # the n_ctx that server, and the embedded one, are started with
STUB_MODEL = "stub"  # the one model of the tiny OpenAI server
STUB_CONTEXT = 4096  # its max_model_len (vLLM's way of saying it)
# The embedded child must start within the first-token deadline (~1 s here): a stalled
# embedded server is therefore given this long, not 1 s, before the first token.
EMBEDDED_FIRST_TOKEN_S = 4.0
QUICK = {"connect_timeout_s": 1.0, "first_token_timeout_s": 10.0, "idle_timeout_s": 5.0}

ASKING = [
    Message("system", "You are a helpful assistant. Answer in two or three sentences."),
    Message("user", "Why is the sea salty?"),
]
LEAVE_QUESTION = "How many days of paid annual leave do full-time employees get?"
LEAVE_TEXT = (
    "Full-time employees receive 25 days of paid annual leave per calendar year. Up to five "
    "unused days can be carried over to the next year; carried-over days expire on 31 March."
)
HANDBOOK = (SAMPLES / "handbook.md").read_text(encoding="utf-8")


# -- a tiny OpenAI-speaking server ------------------------------------------------------------


class StubOpenAI:
    """An OpenAI-compatible server in vLLM's dialect, on 127.0.0.1 (random port): lists one
    model with its `max_model_len`, answers 404 (vLLM's error body) for any other model, and
    streams `tokens` as server-sent events, stalling after `stall_after` of them (None: to
    the end, with the usage chunk and [DONE]). No /props, no /tokenize."""

    def __init__(self, tokens: Iterable[str], stall_after: int | None = None) -> None:
        self.tokens = list(tokens)
        self.stall_after = stall_after
        self.stopping = threading.Event()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _json(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/v1/models":
                    model = {
                        "id": STUB_MODEL,
                        "object": "model",
                        "created": 0,
                        "owned_by": "vllm",
                        "max_model_len": STUB_CONTEXT,
                    }
                    self._json(200, {"object": "list", "data": [model]})
                else:
                    self._json(404, {"detail": "Not Found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path != "/v1/chat/completions":
                    self._json(404, {"detail": "Not Found"})
                    return
                if body.get("model") != STUB_MODEL:
                    self._json(
                        404,
                        {
                            "object": "error",
                            "message": f"The model `{body.get('model')}` does not exist.",
                            "type": "NotFoundError",
                            "param": None,
                            "code": 404,
                        },
                    )
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                with contextlib.suppress(OSError):  # the client gave up
                    stub.stream(self.wfile)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def stream(self, out: Any) -> None:
        def send(data: dict[str, Any] | str) -> None:
            out.write(f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode())
            out.flush()

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": "chatcmpl-stub",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": STUB_MODEL,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        for i, token in enumerate(self.tokens):
            if i == self.stall_after:
                self.stopping.wait(30)
                return
            send(chunk({"content": token}))
        if self.stall_after is not None and self.stall_after >= len(self.tokens):
            self.stopping.wait(30)
            return
        send(chunk({}, "stop"))
        usage = {"prompt_tokens": 40, "completion_tokens": len(self.tokens), "total_tokens": 0}
        send({**chunk({}), "choices": [], "usage": usage})
        send("[DONE]")

    def __enter__(self) -> StubOpenAI:
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()  # stalled streams end
        self._server.shutdown()
        self._server.server_close()


# -- the providers ----------------------------------------------------------------------------


@dataclass
class Stall:
    """A generator whose server will stop sending: before the first token (`after` 0) or
    after `after` pieces. The test calls `on_piece(n)` after each piece it receives."""

    generator: ModelServer
    first_token_s: float  # its first-token deadline
    on_piece: Callable[[int], None] = lambda n: None


@dataclass
class Side:
    """One provider, as the contract tests drive it."""

    name: str
    base: dict[str, Any]  # its LlmSettings
    context_length: int  # what its server says of the model
    has_tokenizer: bool
    made: list[ModelServer] = field(default_factory=list)

    def settings(self, **overrides: Any) -> LlmSettings:
        return LlmSettings(**{**self.base, **overrides})

    def generator(self, **overrides: Any) -> ModelServer:
        """A generator on this provider's working server, with these settings."""
        made = self._build(self.settings(**overrides))
        self.made.append(made)
        return made

    def _build(self, settings: LlmSettings) -> ModelServer:
        raise NotImplementedError

    def will_answer(self, tokens: list[str], **script: Any) -> None:
        """What the next answer says, where the server is scripted (the fake Ollama)."""

    def missing_model(self) -> tuple[ModelServer, str]:
        """A generator for a model its server does not have, and what the error must say."""
        raise NotImplementedError

    def stalling(self, after: int, idle_timeout_s: float) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        for made in self.made:
            made.close()


class OllamaSide(Side):
    def __init__(self, fake: FakeOllama) -> None:
        base = {"provider": "ollama", "host": fake.url, "model": OLLAMA_MODEL, **QUICK}
        super().__init__("ollama", {**base, "max_answer_tokens": 64}, OLLAMA_CONTEXT, False)
        self.fake = fake

    def _build(self, settings: LlmSettings) -> ModelServer:
        return OllamaGenerator(settings)

    def will_answer(self, tokens: list[str], **script: Any) -> None:
        self.fake.enqueue(Script(tokens=tokens, **script))

    def missing_model(self) -> tuple[ModelServer, str]:
        return self.generator(model="mistral:7b"), "run `ollama pull mistral:7b` there"

    @contextmanager
    def stalling(self, after: int, idle_timeout_s: float) -> Iterator[Stall]:
        self.fake.enqueue(Script(tokens=["The sea ", "is salty ", "because"], stall_after=after))
        first = first_token_deadline(after)
        generator = self.generator(first_token_timeout_s=first, idle_timeout_s=idle_timeout_s)
        yield Stall(generator, first)


class OpenAISide(Side):
    def __init__(self, url: str) -> None:
        # The base URL as users write it for OpenAI clients: with /v1.
        base = {"provider": "openai", "host": f"{url}/v1", "model": LLAMA_ALIAS, **QUICK}
        super().__init__("openai", {**base, "max_answer_tokens": 64}, LLAMA_CONTEXT, True)
        self.stubs: list[StubOpenAI] = []

    def _build(self, settings: LlmSettings) -> ModelServer:
        assert settings.model
        return OpenAICompatibleGenerator(settings, settings.model)

    def _stub(self, stall_after: int | None) -> StubOpenAI:
        stub = StubOpenAI(["The sea ", "is salty ", "because"], stall_after).__enter__()
        self.stubs.append(stub)
        return stub

    def missing_model(self) -> tuple[ModelServer, str]:
        # llama.cpp answers whatever model is named; vLLM says 404, as the stub does.
        stub = self._stub(None)
        return self.generator(host=stub.url, model="mistral-7b"), "set CITADEL_LLM__MODEL"

    @contextmanager
    def stalling(self, after: int, idle_timeout_s: float) -> Iterator[Stall]:
        stub = self._stub(after)
        first = first_token_deadline(after)
        generator = self.generator(
            host=stub.url,
            model=STUB_MODEL,
            first_token_timeout_s=first,
            idle_timeout_s=idle_timeout_s,
        )
        yield Stall(generator, first)

    def close(self) -> None:
        super().close()
        for stub in self.stubs:
            stub.__exit__()


class EmbeddedSide(Side):
    def __init__(self, shared: EmbeddedLlamaCpp, model_path: Path) -> None:
        super().__init__("llamacpp", embedded_settings(model_path), LLAMA_CONTEXT, True)
        self.shared = shared

    def generator(self, **overrides: Any) -> ModelServer:
        """The module's running child unless other settings are asked for (a new child)."""
        return super().generator(**overrides) if overrides else self.shared

    def _build(self, settings: LlmSettings) -> ModelServer:
        return EmbeddedLlamaCpp(settings)

    @contextmanager
    def stalling(self, after: int, idle_timeout_s: float) -> Iterator[Stall]:
        generator = cast(
            EmbeddedLlamaCpp,
            self.generator(
                first_token_timeout_s=EMBEDDED_FIRST_TOKEN_S,
                idle_timeout_s=idle_timeout_s,
                max_answer_tokens=256,
            ),
        )
        for message in ASKING:  # counted now: the tokenizer is not asked while it is stopped
            generator.count_tokens(message.content)
        pid = generator.pid
        assert pid is not None
        stopped = []

        def stop(n: int) -> None:
            if n == after and not stopped:
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)

        stop(0)
        try:
            yield Stall(generator, EMBEDDED_FIRST_TOKEN_S, stop)
        finally:
            # A child that timed out is stopped for good (the next question starts another).
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        assert generator.pid != pid, "a child that stopped answering is not kept"


def first_token_deadline(stall_after: int) -> float:
    """1 s when the stall is before the first token; else longer than the idle deadline,
    which the client's read timeout (the longer of the two) must not preempt."""
    return 1.0 if stall_after == 0 else 5.0


def embedded_settings(model_path: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "provider": "llamacpp",
        "model_path": model_path,
        "threads": 1,
        "max_context_tokens": LLAMA_CONTEXT,
        "max_answer_tokens": 64,
        "temperature": 0.0,
        **QUICK,
        "first_token_timeout_s": 30.0,  # includes starting the child
        **overrides,
    }


@pytest.fixture(scope="module")
def llama_server(smollm2: Path) -> Iterator[str]:
    """llama.cpp's own HTTP server, in this process: SmolLM2 on a free loopback port."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(smollm2)
    params.model_alias = {LLAMA_ALIAS}
    params.hostnames = ["127.0.0.1"]
    params.port = free_port()
    params.n_ctx = LLAMA_CONTEXT
    params.n_parallel = 1
    params.cpuparams.n_threads = 1
    params.cpuparams_batch.n_threads = 1
    params.endpoint_props = True
    server = xllamacpp.Server(params)  # ~0.7 s to load SmolLM2
    yield f"http://127.0.0.1:{params.port}"
    del server  # stops it


@pytest.fixture(scope="module")
def embedded(smollm2: Path) -> Iterator[EmbeddedLlamaCpp]:
    generator = EmbeddedLlamaCpp(LlmSettings(**embedded_settings(smollm2)))
    yield generator
    generator.close()


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama({OLLAMA_MODEL: OLLAMA_CONTEXT}) as server:
        yield server


@pytest.fixture
def provider(request: pytest.FixtureRequest) -> Iterator[Side]:
    name = request.param
    side: Side
    if name == "ollama":
        side = OllamaSide(request.getfixturevalue("fake"))
    elif name == "openai":
        side = OpenAISide(request.getfixturevalue("llama_server"))
    else:
        side = EmbeddedSide(request.getfixturevalue("embedded"), request.getfixturevalue("smollm2"))
    yield side
    side.close()


def providers(*names: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("provider", names, indirect=True)


ALL = ("ollama", "openai", "llamacpp")


# -- helpers ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def timed(pieces: Iterable[str | Thinking | Usage]) -> list[tuple[float, str | Thinking | Usage]]:
    return [(time.monotonic(), piece) for piece in pieces]


def usage_of(pieces: Iterable[str | Thinking | Usage]) -> Usage:
    *_, last = pieces
    assert isinstance(last, Usage)
    return last


def leave_retrieval() -> Retrieval:
    """What retrieval would hand the answer service for the leave question: one passage."""
    passage = Passage(
        chunk_id="c1",
        collection="larkspur",
        document_id="d1",
        source="handbook.md",
        file_type="md",
        title="Employee Handbook",
        headings=("Employee Handbook", "Leave"),
        pages=(),
        number=0,
        text=LEAVE_TEXT,
        score=1.0,
        dense_score=0.8,
    )
    evidence = Evidence(score=0.9, threshold=0.3, top_similarity=0.8, lexical_z=None)
    return Retrieval(LEAVE_QUESTION, [passage], evidence, latency_ms=1.0)


def answer_with(generator: ModelServer, settings: LlmSettings) -> tuple[list[Any], Answer]:
    """The answer service's events for the leave question, written by `generator`."""
    service = AnswerService(cast(Retriever, None), generator, settings)
    *events, answer = service.answer(leave_retrieval(), LEAVE_QUESTION)
    assert isinstance(answer, Answer)
    return events, answer


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.05)
    return gone(pid)


# -- the contract -----------------------------------------------------------------------------


@providers(*ALL)
def test_answers_stream_in_pieces_then_one_usage(provider: Side) -> None:
    provider.will_answer(
        ["The sea ", "is salty ", "because rivers ", "carry minerals ", "into it."],
        delay_between_s=0.05,
    )
    generator = provider.generator()

    received = timed(generator.stream(ASKING, 2048))

    texts = [(t, p) for t, p in received if isinstance(p, str)]
    usages = [p for _, p in received if isinstance(p, Usage)]
    assert len(texts) >= 3, received
    assert all(text for _, text in texts)
    assert len(usages) == 1 and received[-1][1] is usages[0]
    usage = usages[0]
    assert usage.prompt_tokens is not None and usage.prompt_tokens > 0
    assert usage.output_tokens is not None and usage.output_tokens > 0
    assert usage.done_reason in ("stop", "length")
    # Given as the server writes them, not all at the end.
    assert received[-1][0] - texts[0][0] >= 0.1


@providers(*ALL)
def test_the_context_limit_is_read_from_the_server_and_capped_by_the_settings(
    provider: Side,
) -> None:
    assert provider.generator().context_limit() == provider.context_length
    assert provider.generator(max_context_tokens=1024).context_limit() == 1024


@providers("openai", "llamacpp")
def test_count_tokens_is_the_servers_own_tokenizer(provider: Side) -> None:
    generator = provider.generator()
    words = "word " * 200  # ~200 tokens; the estimate before any answer would say 400
    assert 195 + MESSAGE_OVERHEAD_TOKENS <= generator.count_tokens(words) <= 215 + 8

    # One message: SmolLM2's template adds a system prompt of its own to a chat without
    # one, so the message is the system's.
    excerpt = HANDBOOK[:600]
    one = [Message("system", excerpt)]
    reported = usage_of(generator.stream(one, 2048)).prompt_tokens
    assert reported is not None
    assert abs(generator.count_tokens(excerpt) - reported) <= 3
    # The two messages Citadel sends: within a few tokens each.
    two = [Message("system", "Answer from the sources."), Message("user", excerpt)]
    reported = usage_of(generator.stream(two, 2048)).prompt_tokens
    assert reported is not None
    assert abs(sum(generator.count_tokens(m.content) for m in two) - reported) <= 6


@providers("ollama")
def test_count_tokens_without_a_tokenizer_is_learned_from_what_the_server_reports(
    provider: Side,
) -> None:
    generator = provider.generator()
    text = HANDBOOK[:2000]
    before = generator.count_tokens(text)
    assert before >= len(text) / UNMEASURED_CHARS_PER_TOKEN  # errs long

    reported = len(text) // 4 + MESSAGE_OVERHEAD_TOKENS  # as a real tokenizer would count
    provider.will_answer(["OK"], prompt_eval_count=reported)
    usage_of(generator.stream([Message("user", text)], 2048))

    after = generator.count_tokens(text)
    assert reported <= after <= reported * 1.15 < before


@providers("ollama", "openai")
def test_a_model_the_server_does_not_have_is_model_not_found_saying_what_to_do(
    provider: Side,
) -> None:
    generator, what_to_do = provider.missing_model()

    with pytest.raises(ModelNotFound) as checked:
        generator.check()
    assert what_to_do in str(checked.value)
    with pytest.raises(ModelNotFound) as streamed:
        list(generator.stream(ASKING, 2048))
    assert "CITADEL_LLM__MODEL" in str(streamed.value) or what_to_do in str(streamed.value)

    events, answer = answer_with(generator, provider.settings(model=generator.model))
    assert events == [] and answer.search_mode
    assert generator.model in (answer.notice or "")


@providers("openai")
def test_llama_cpp_says_which_models_it_serves_when_another_is_configured(
    provider: Side,
) -> None:
    with pytest.raises(ModelNotFound, match="set CITADEL_LLM__MODEL") as raised:
        provider.generator(model="no-such-model").check()
    assert f"it serves: {LLAMA_ALIAS}" in str(raised.value)
    provider.generator().check()


@providers("ollama", "openai")
def test_an_unreachable_server_is_unavailable_at_once_and_answers_in_search_mode(
    provider: Side, closed_port_url: str
) -> None:
    generator = provider.generator(host=closed_port_url)

    for call in (
        generator.check,
        generator.context_limit,
        lambda: list(generator.stream(ASKING, 2048)),
    ):
        started = time.monotonic()
        with pytest.raises(GeneratorUnavailable, match=closed_port_url):
            call()
        assert time.monotonic() - started < 3.0

    started = time.monotonic()
    events, answer = answer_with(generator, provider.settings(host=closed_port_url))
    assert time.monotonic() - started < 3.0
    assert events == []
    assert answer.search_mode and not answer.refused
    assert (answer.notice or "").startswith("Search mode: ")
    assert closed_port_url in (answer.notice or "")
    assert [c.number for c in answer.citations] == [1]


@providers(*ALL)
def test_no_first_token_within_the_deadline_is_a_timeout(provider: Side) -> None:
    with provider.stalling(after=0, idle_timeout_s=1) as stall:
        started = time.monotonic()
        with pytest.raises(GenerationTimeout) as raised:
            for n, _ in enumerate(stall.generator.stream(ASKING, 2048), start=1):
                stall.on_piece(n)
        elapsed = time.monotonic() - started

    assert stall.first_token_s - 0.1 <= elapsed < stall.first_token_s + 2.5
    assert "CITADEL_LLM__FIRST_TOKEN_TIMEOUT_S" in str(raised.value) or "stopped responding" in (
        str(raised.value)
    )


@providers(*ALL)
def test_a_stream_that_goes_quiet_is_a_timeout_after_the_pieces_that_came(
    provider: Side,
) -> None:
    pieces: list[tuple[float, Any]] = []
    with provider.stalling(after=2, idle_timeout_s=1) as stall:
        with pytest.raises(GenerationTimeout, match="nothing received for 1 s"):
            for piece in stall.generator.stream(ASKING, 2048):
                pieces.append((time.monotonic(), piece))
                stall.on_piece(len(pieces))
        failed = time.monotonic()

    assert len(pieces) >= 2
    assert all(isinstance(p, str) for _, p in pieces)  # no Usage: the answer did not end
    assert 0.9 <= failed - pieces[-1][0] < 3.0


@providers(*ALL)
def test_the_answer_service_answers_with_the_provider(provider: Side) -> None:
    provider.will_answer(["Full-time employees receive ", "25 days of paid annual leave [1]."])
    generator = provider.generator()

    events, answer = answer_with(generator, provider.settings())

    assert events, "no text streamed"
    assert not answer.search_mode
    assert answer.model == generator.model
    assert answer.prompt_tokens is not None and answer.prompt_tokens > 0
    assert answer.num_ctx is not None and answer.num_ctx <= provider.context_length
    assert {c.number for c in answer.citations} <= {1}


@providers("openai", "llamacpp")
def test_the_prompt_speed_is_measured_on_what_the_server_read_not_its_cache(
    provider: Side,
) -> None:
    """llama.cpp keeps the last prompt: asked again, it reads a token or two, and reports the
    whole prompt in its usage. The speed that grows the first-token deadline must not."""
    generator = provider.generator(max_answer_tokens=16)
    # Not in the server's cache yet, whatever ran before.
    messages = [Message("system", f"Note {uuid.uuid4()}."), Message("user", HANDBOOK[:600])]

    usage_of(generator.stream(messages, 2048))
    first = generator.measured_prompt_speed
    usage_of(generator.stream(messages, 2048))
    again = generator.measured_prompt_speed

    assert first is not None and again is not None
    assert again < 2 * first, (first, again)


# -- the embedded llama.cpp's own guarantees ----------------------------------------------------


def test_embedded_close_stops_the_child(smollm2: Path) -> None:
    generator = EmbeddedLlamaCpp(LlmSettings(**embedded_settings(smollm2)))
    generator.check()
    pid = generator.pid
    assert pid is not None and not gone(pid)

    generator.close()

    assert generator.pid is None
    assert wait_gone(pid, 1.0)


def test_embedded_child_killed_is_started_again_by_the_next_question(smollm2: Path) -> None:
    generator = EmbeddedLlamaCpp(LlmSettings(**embedded_settings(smollm2)))
    try:
        usage_of(generator.stream(ASKING, 2048))
        first = generator.pid
        assert first is not None

        os.kill(first, signal.SIGKILL)
        assert wait_gone(first, 5.0)

        received = list(generator.stream(ASKING, 2048))
        assert [p for p in received if isinstance(p, str)]
        assert usage_of(received).output_tokens
        assert generator.pid not in (None, first)
    finally:
        generator.close()


def test_embedded_child_killed_mid_answer_is_named_as_the_embedded_model(smollm2: Path) -> None:
    """The person chose a GGUF file, not an address: the error says which model stopped and
    that the next question starts it again, not that a loopback port does not answer."""
    generator = EmbeddedLlamaCpp(LlmSettings(**embedded_settings(smollm2)))
    long_answer = [
        Message("system", "You are a helpful assistant. Answer at great length."),
        Message("user", "Tell the whole history of sailing ships, century by century."),
    ]
    try:
        pieces = generator.stream(long_answer, 2048)
        next(p for p in pieces if isinstance(p, str))
        pid = generator.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(GeneratorUnavailable) as stopped:
            for _ in pieces:
                pass
        assert f"the embedded llama.cpp ({smollm2.name}) stopped" in str(stopped.value)
        assert "127.0.0.1" not in str(stopped.value)
    finally:
        generator.close()


def test_embedded_child_stops_when_citadel_is_killed(smollm2: Path, tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from rag.adapters.llamacpp import EmbeddedLlamaCpp\n"
        "from rag.settings import LlmSettings\n"
        f"g = EmbeddedLlamaCpp(LlmSettings(provider='llamacpp', model_path={str(smollm2)!r},"
        f" threads=1, max_context_tokens={LLAMA_CONTEXT}))\n"
        "g.check()\n"
        "print(g.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # the child's log, left by the kill
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert not gone(child)
        parent.kill()  # no atexit, no close(): only the closed pipe tells the child
        parent.wait(10)
        assert wait_gone(child, 10.0)
    finally:
        parent.kill()
        parent.wait(10)


def test_embedded_without_a_gguf_file_is_a_configuration_error(tmp_path: Path) -> None:
    for path in (None, tmp_path / "nowhere.gguf"):
        settings = LlmSettings(provider="llamacpp", model_path=path)
        with pytest.raises(ConfigurationError, match="CITADEL_LLM__MODEL_PATH"):
            EmbeddedLlamaCpp(settings)
        with pytest.raises(ConfigurationError, match="CITADEL_LLM__MODEL_PATH"):
            build_generator(settings)


def test_embedded_corrupt_gguf_is_unavailable_at_once_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    junk = tmp_path / "x.gguf"
    junk.write_bytes(os.urandom(1024))
    logs = tmp_path / "tmp"  # where the child's logs go
    logs.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(logs))
    settings = LlmSettings(**embedded_settings(junk))
    generator = EmbeddedLlamaCpp(settings)

    for call in (generator.check, lambda: list(generator.stream(ASKING, 2048))):
        started = time.monotonic()
        with pytest.raises(GeneratorUnavailable) as raised:
            call()
        assert time.monotonic() - started < 3.0
        message = str(raised.value)
        assert "did not start with x.gguf" in message
        assert "failed to load model" in message

    started = time.monotonic()
    events, answer = answer_with(generator, settings)
    assert time.monotonic() - started < 3.0
    assert events == [] and answer.search_mode
    assert "x.gguf" in (answer.notice or "")
    assert generator.pid is None

    generator.close()
    assert list(logs.iterdir()) == []  # no log left behind, of any attempt


def test_embedded_model_slower_to_load_than_allowed_says_which_setting_to_raise(
    smollm2: Path,
) -> None:
    settings = LlmSettings(**embedded_settings(smollm2, first_token_timeout_s=0.1))
    generator = EmbeddedLlamaCpp(settings)

    started = time.monotonic()
    with pytest.raises(GeneratorUnavailable) as raised:
        generator.check()

    assert time.monotonic() - started < 3.0
    assert str(raised.value) == (
        f"the embedded llama.cpp did not load {smollm2.name} within 0.1 s "
        "(CITADEL_LLM__FIRST_TOKEN_TIMEOUT_S, which includes loading the model)"
    )
    assert generator.pid is None
    generator.close()


def test_embedded_tokenizer_is_asked_again_once_a_stuck_server_recovers(smollm2: Path) -> None:
    generator = EmbeddedLlamaCpp(LlmSettings(**embedded_settings(smollm2, connect_timeout_s=0.3)))
    try:
        generator.check()
        pid = generator.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            generator.count_tokens("stuck " * 100)  # the tokenizer does not answer: estimated
        finally:
            os.kill(pid, signal.SIGCONT)
        assert 95 + MESSAGE_OVERHEAD_TOKENS <= generator.count_tokens("word " * 100) <= 115
    finally:
        generator.close()
