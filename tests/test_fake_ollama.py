"""The fake Ollama server speaks the real API: the official `ollama` client works against it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import ollama
import pytest

from tests.fake_ollama import GPT_OSS, QWEN3, FakeOllama, ModelSpec, Script

MODEL = "llama3.2:3b"
MESSAGES = [
    {"role": "system", "content": "Answer from the context."},
    {"role": "user", "content": "What is the notice period?"},
]


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


@pytest.fixture
def client(fake: FakeOllama) -> Iterator[ollama.Client]:
    with ollama.Client(host=fake.url) as c:
        yield c


def test_streaming_chat_yields_tokens_in_order_then_the_final_counts(
    fake: FakeOllama, client: ollama.Client
) -> None:
    fake.enqueue(Script(tokens=["The ", "notice ", "is ", "30 days."], prompt_eval_count=812))

    chunks = list(
        client.chat(
            model=MODEL,
            messages=MESSAGES,
            stream=True,
            options={"num_ctx": 8192, "temperature": 0.1},
            keep_alive="30m",
        )
    )

    assert [c.message.content for c in chunks[:-1]] == ["The ", "notice ", "is ", "30 days."]
    assert not any(c.done for c in chunks[:-1])
    final = chunks[-1]
    assert final.done is True
    assert final.done_reason == "stop"
    assert final.message.content == ""
    assert final.prompt_eval_count == 812
    assert final.eval_count == 4
    assert final.total_duration is not None and final.total_duration > 0
    assert final.model == MODEL

    [request] = fake.requests
    assert request["path"] == "/api/chat"
    assert request["model"] == MODEL
    assert request["stream"] is True
    assert request["options"] == {"num_ctx": 8192, "temperature": 0.1}
    assert request["keep_alive"] == "30m"
    assert request["messages"] == MESSAGES


def test_tokens_arrive_as_they_are_sent_not_at_the_end(
    fake: FakeOllama, client: ollama.Client
) -> None:
    fake.enqueue(Script(tokens=["first", "second"], delay_between_s=0.6))
    started = time.monotonic()
    stream = client.chat(model=MODEL, messages=MESSAGES, stream=True)

    first = next(stream)
    first_at = time.monotonic() - started
    rest = list(stream)

    assert first.message.content == "first"
    assert first_at < 0.4
    assert [c.message.content for c in rest] == ["second", ""]
    assert time.monotonic() - started >= 0.6


def test_non_streaming_chat_returns_the_whole_answer(
    fake: FakeOllama, client: ollama.Client
) -> None:
    fake.enqueue(Script(tokens=["Thirty", " days", "."]))

    response = client.chat(model=MODEL, messages=MESSAGES, stream=False)

    assert response.message.role == "assistant"
    assert response.message.content == "Thirty days."
    assert response.done is True
    assert response.done_reason == "stop"
    assert response.eval_count == 3
    assert response.prompt_eval_count == 9  # words of the prompt, by default
    assert fake.requests[0]["stream"] is False


def test_default_script_and_fifo_order(fake: FakeOllama, client: ollama.Client) -> None:
    fake.enqueue(Script(tokens=["one"]))
    fake.enqueue(Script(tokens=["two"]))

    answers = [client.chat(model=MODEL, messages=MESSAGES).message.content for _ in range(3)]

    assert answers == ["one", "two", "OK"]
    assert len(fake.requests) == 3


def test_empty_messages_is_a_load_request(fake: FakeOllama, client: ollama.Client) -> None:
    fake.enqueue(Script(tokens=["kept"]))

    loaded = list(client.chat(model=MODEL, messages=[], stream=True))
    unloaded = client.chat(model=MODEL, messages=[], keep_alive=0)

    assert [(c.done, c.done_reason) for c in loaded] == [(True, "load")]
    assert unloaded.done_reason == "unload"
    assert client.chat(model=MODEL, messages=MESSAGES).message.content == "kept"


def test_list_and_show_expose_the_models_and_their_context_length() -> None:
    models = {"llama3.2:3b": 131072, "qwen2.5:7b-instruct": 32768}
    with FakeOllama(models) as fake, ollama.Client(host=fake.url) as client:
        listed = client.list()
        shown = client.show("qwen2.5:7b-instruct")

    assert [m.model for m in listed.models] == list(models)
    assert listed.models[0].details is not None
    assert listed.models[0].details.family == "llama"
    assert listed.models[0].size and listed.models[0].size > 0
    assert listed.models[0].modified_at is not None
    assert shown.modelinfo is not None
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.modelinfo["llama.context_length"] == 32768
    assert shown.details is not None and shown.details.parameter_size == "3.2B"
    assert shown.capabilities == ["completion"]
    assert "TEMPLATE" in (shown.modelfile or "")
    assert fake.calls == [("GET", "/api/tags"), ("POST", "/api/show")]


def test_version_and_root(fake: FakeOllama) -> None:
    with httpx.Client(base_url=fake.url) as http:
        assert http.get("/").text == "Ollama is running"
        assert "version" in http.get("/api/version").json()


@pytest.mark.parametrize("stream", [True, False])
def test_unknown_model_is_a_404_response_error(client: ollama.Client, stream: bool) -> None:
    with pytest.raises(ollama.ResponseError) as raised:
        result = client.chat(model="mistral:7b", messages=MESSAGES, stream=stream)
        if stream:
            list(result)  # a stream sends its request only when first iterated

    assert raised.value.status_code == 404
    assert raised.value.error == 'model "mistral:7b" not found, try pulling it first'


def test_show_unknown_model_is_a_404(client: ollama.Client) -> None:
    with pytest.raises(ollama.ResponseError, match="not found") as raised:
        client.show("mistral:7b")
    assert raised.value.status_code == 404


def test_scripted_server_error(fake: FakeOllama, client: ollama.Client) -> None:
    fake.enqueue(Script(tokens=[], status=500))

    with pytest.raises(ollama.ResponseError) as raised:
        list(client.chat(model=MODEL, messages=MESSAGES, stream=True))

    assert raised.value.status_code == 500
    assert "llama runner" in raised.value.error


def test_dropped_stream_raises_instead_of_ending_quietly(
    fake: FakeOllama, client: ollama.Client
) -> None:
    fake.enqueue(Script(tokens=["a", "b", "c"], drop_after=2))
    received: list[str] = []

    with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
        for chunk in client.chat(model=MODEL, messages=MESSAGES, stream=True):
            received.append(chunk.message.content or "")

    assert received == ["a", "b"]


def test_dropped_non_streaming_answer_raises(fake: FakeOllama, client: ollama.Client) -> None:
    fake.enqueue(Script(tokens=["a", "b"], drop_after=1))

    with pytest.raises(httpx.RemoteProtocolError):
        client.chat(model=MODEL, messages=MESSAGES, stream=False)


def test_stalled_stream_hits_the_client_read_timeout(fake: FakeOllama) -> None:
    fake.enqueue(Script(tokens=["a", "b"], stall_after=1))
    received: list[str] = []

    with ollama.Client(host=fake.url, timeout=httpx.Timeout(5, read=0.5)) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            for chunk in client.chat(model=MODEL, messages=MESSAGES, stream=True):
                received.append(chunk.message.content or "")
        elapsed = time.monotonic() - started

    assert received == ["a"]
    assert 0.4 < elapsed < 3.0  # a stream without the timeout stays stalled until stop


def test_stop_while_a_stream_is_stalled_returns_promptly() -> None:
    fake = FakeOllama().start()
    fake.enqueue(Script(tokens=["a", "b"], stall_after=1))
    with ollama.Client(host=fake.url) as client:  # no timeout: only the stop can end it
        stream = client.chat(model=MODEL, messages=MESSAGES, stream=True)
        assert next(stream).message.content == "a"

        started = time.monotonic()
        fake.stop()
        assert time.monotonic() - started < 2.5  # a hanging stop waits its 5 s timeout

        with pytest.raises(httpx.RemoteProtocolError):
            next(stream)


def test_stop_with_an_idle_keep_alive_connection_returns_promptly() -> None:
    fake = FakeOllama().start()
    with ollama.Client(host=fake.url) as client:
        client.list()  # leaves a pooled keep-alive connection open on the server
        started = time.monotonic()
        fake.stop()
        assert time.monotonic() - started < 2.5  # a hanging stop waits its 5 s timeout


def test_no_server_errors_differ_between_streaming_and_not() -> None:
    """The client wraps a refused connection only for non-streaming calls."""
    with FakeOllama() as fake:
        url = fake.url
    with ollama.Client(host=url) as client:
        with pytest.raises(ConnectionError, match="Failed to connect to Ollama"):
            client.chat(model=MODEL, messages=MESSAGES, stream=False)
        with pytest.raises(httpx.ConnectError):
            list(client.chat(model=MODEL, messages=MESSAGES, stream=True))


# -- reasoning ("thinking"), as Ollama 0.12 does it -----------------------------------------

QWEN = "qwen3:8b"
GPT = "gpt-oss:20b"
REASONING = ["The handbook ", "says 30 days."]


@pytest.fixture
def thinkers() -> Iterator[tuple[FakeOllama, ollama.Client]]:
    """A plain model, a true/false thinking model and gpt-oss, on one server."""
    models: dict[str, int | ModelSpec] = {MODEL: 131072, QWEN: QWEN3, GPT: GPT_OSS}
    with FakeOllama(models) as server, ollama.Client(host=server.url) as c:
        yield server, c


def _thought_and_said(chunks: list[ollama.ChatResponse]) -> tuple[list[str], list[str]]:
    thought = [c.message.thinking for c in chunks if c.message.thinking]
    said = [c.message.content for c in chunks if c.message.content]
    return thought, said


def test_show_reports_capabilities_family_and_context_of_each_model(
    thinkers: tuple[FakeOllama, ollama.Client],
) -> None:
    _, client = thinkers

    plain, qwen, gpt = (client.show(m) for m in (MODEL, QWEN, GPT))

    assert plain.capabilities == ["completion"]
    assert qwen.capabilities is not None and "thinking" in qwen.capabilities
    assert gpt.capabilities is not None and "thinking" in gpt.capabilities
    assert qwen.details is not None and qwen.details.family == "qwen3"
    assert gpt.details is not None and gpt.details.family == "gptoss"
    assert gpt.modelinfo is not None
    assert gpt.modelinfo["general.architecture"] == "gptoss"
    assert gpt.modelinfo["gptoss.context_length"] == GPT_OSS.context_length
    assert qwen.modelinfo is not None
    assert qwen.modelinfo["qwen3.context_length"] == QWEN3.context_length
    listed = {m.model: m.details.family for m in client.list().models if m.details}
    assert listed == {MODEL: "llama", QWEN: "qwen3", GPT: "gptoss"}


@pytest.mark.parametrize("think", [True, None])  # None: not sent, Ollama's default is to think
def test_a_thinking_model_streams_its_reasoning_before_the_content(
    thinkers: tuple[FakeOllama, ollama.Client], think: bool | None
) -> None:
    fake, client = thinkers
    fake.enqueue(Script(tokens=["Thirty ", "days."], thinking=REASONING))

    chunks = list(client.chat(model=QWEN, messages=MESSAGES, stream=True, think=think))

    assert [(c.message.thinking, c.message.content) for c in chunks[:-1]] == [
        ("The handbook ", ""),
        ("says 30 days.", ""),
        (None, "Thirty "),
        (None, "days."),
    ]
    assert chunks[-1].done is True
    assert chunks[-1].eval_count == 4  # reasoning tokens are generated tokens too
    [request] = fake.requests
    if think is None:
        assert "think" not in request
    else:
        assert request["think"] is True


def test_think_false_switches_a_thinking_model_off(
    thinkers: tuple[FakeOllama, ollama.Client],
) -> None:
    fake, client = thinkers
    fake.enqueue(Script(tokens=["Thirty days."], thinking=REASONING))

    chunks = list(client.chat(model=QWEN, messages=MESSAGES, stream=True, think=False))

    assert _thought_and_said(chunks) == ([], ["Thirty days."])
    assert chunks[-1].eval_count == 1
    assert fake.requests[0]["think"] is False


@pytest.mark.parametrize("think", [False, "low", "high", None])
def test_gpt_oss_takes_levels_and_cannot_stop_reasoning(
    thinkers: tuple[FakeOllama, ollama.Client], think: bool | str | None
) -> None:
    fake, client = thinkers
    fake.enqueue(Script(tokens=["Thirty days."], thinking=REASONING))

    chunks = list(client.chat(model=GPT, messages=MESSAGES, stream=True, think=think))

    assert _thought_and_said(chunks) == (REASONING, ["Thirty days."])
    assert fake.requests[0].get("think") == think


@pytest.mark.parametrize("think", [True, "low"])
def test_think_sent_to_a_model_that_cannot_is_a_400(
    thinkers: tuple[FakeOllama, ollama.Client], think: bool | str
) -> None:
    fake, client = thinkers
    fake.enqueue(Script(tokens=["kept"], thinking=REASONING))

    with pytest.raises(ollama.ResponseError) as raised:
        list(client.chat(model=MODEL, messages=MESSAGES, stream=True, think=think))
    with pytest.raises(ollama.ResponseError):
        client.chat(model=MODEL, messages=[], think=think)  # even a load request

    assert raised.value.status_code == 400
    assert raised.value.error == f'"{MODEL}" does not support thinking'
    # false is accepted (nothing to switch off), and the script was not consumed
    chunks = list(client.chat(model=MODEL, messages=MESSAGES, stream=True, think=False))
    assert _thought_and_said(chunks) == ([], ["kept"])


def test_a_level_is_for_gpt_oss_only(thinkers: tuple[FakeOllama, ollama.Client]) -> None:
    _, client = thinkers

    with pytest.raises(ollama.ResponseError) as raised:
        list(client.chat(model=QWEN, messages=MESSAGES, stream=True, think="medium"))

    assert raised.value.status_code == 400
    assert raised.value.error == 'think value "medium" is not supported for this model'


def test_a_think_value_ollama_cannot_read_is_a_400(
    thinkers: tuple[FakeOllama, ollama.Client],
) -> None:
    _, client = thinkers

    with pytest.raises(ollama.ResponseError) as raised:
        client.chat(model=GPT, messages=MESSAGES, think="max")

    assert raised.value.status_code == 400
    assert raised.value.error.startswith('invalid think value: "max"')


def test_non_streaming_chat_carries_the_whole_reasoning_apart(
    thinkers: tuple[FakeOllama, ollama.Client],
) -> None:
    fake, client = thinkers
    fake.enqueue(Script(tokens=["Thirty", " days."], thinking=REASONING))

    response = client.chat(model=QWEN, messages=MESSAGES, stream=False, think=True)

    assert response.message.thinking == "The handbook says 30 days."
    assert response.message.content == "Thirty days."
    assert response.eval_count == 4


def test_reasoning_is_paced_and_cut_like_the_content(
    thinkers: tuple[FakeOllama, ollama.Client],
) -> None:
    fake, client = thinkers
    fake.enqueue(Script(tokens=["a", "b"], thinking=["x", "y"], delay_between_s=0.3))
    fake.enqueue(Script(tokens=["a", "b"], thinking=["x", "y"], drop_after=1))

    started = time.monotonic()
    stream = client.chat(model=QWEN, messages=MESSAGES, stream=True, think=True)
    first = next(stream)
    first_at = time.monotonic() - started
    rest = list(stream)
    thought: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):
        for chunk in client.chat(model=QWEN, messages=MESSAGES, stream=True, think=True):
            thought.append(chunk.message.thinking or "")

    assert first.message.thinking == "x" and first_at < 0.25
    assert [c.message.thinking or c.message.content for c in rest[:-1]] == ["y", "a", "b"]
    assert time.monotonic() - started >= 0.9
    assert thought == ["x"]
