"""Reasoning ("thinking") models, as a user notices them: the `llm.think` setting reaches
each model in the form it takes, the reasoning is shown apart (streamed first, dimmed in the
CLI, `thinking` events, `reasoning_content`) and never becomes part of the answer, its
citations or the audit log, and a model that reasons for a while is not cut as stalled.

The bundled employee handbook is really ingested once; answers come from the real OllamaGenerator
talking HTTP to a fake Ollama (tests/fake_ollama.py) that has a plain model, a true/false
thinking model (Qwen3) and gpt-oss; the front ends are reached through a running server
with their own clients (httpx for REST, the official `openai` client, `python -m ui`)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from ingest.pipeline import IngestPipeline
from ingest.workers import ParserPool
from rag.adapters.embedder import SentenceTransformerEmbedder
from rag.adapters.ollama import OllamaGenerator
from rag.answering import AnswerService
from rag.settings import IngestSettings, LlmSettings
from rag.types import Answer, AnswerEvent, Delta, Message, Thinking
from tests.cli_process import citadel
from tests.fake_ollama import GPT_OSS, QWEN3, FakeOllama, ModelSpec, Script
from tests.live_server import LiveServer, add_user, server_settings, workspace_with
from ui.service.workspace import Answered, Workspace

REPO = Path(__file__).resolve().parent.parent
COLLECTION = "larkspur"
PLAIN, QWEN, GPT = "llama3.2:3b", "qwen3:8b", "gpt-oss:20b"
MODELS: dict[str, int | ModelSpec] = {PLAIN: 131072, QWEN: QWEN3, GPT: GPT_OSS}

LEAVE_QUESTION = "How many days of paid annual leave do full-time employees get?"
LEAVE_FACT = "Full-time employees receive 25 days of paid annual leave per calendar year."
ANSWER_TOKENS = [
    "Full-time employees receive ",
    "25 days of paid annual leave",
    " per calendar year [",
    "1",
    "].",
]
ANSWER = "".join(ANSWER_TOKENS)
# Reasoning that would show if it leaked: an invented figure, a marker, a sentence no
# source supports.
REASONING = [
    "The user asks about leave.\n",
    "Source [2] mentions holidays; ",
    "maybe 47 days? ",
    "Let me check the handbook first.",
]
REASONING_TEXT = "".join(REASONING)
FRAGMENTS = ("asks about leave", "Source [2]", "47 days", "check the handbook", "<think>")
NOT_SENT = "(not sent)"
# Reasoning inlined in the content, its tags split across tokens.
SPLIT_TAGS = ["<th", "ink>The user asks about leave. Source", " [2] mentions holidays; maybe 47 d"]
SPLIT_TAGS += ["ays?</thi", "nk>\n"]


def leaked(text: str) -> list[str]:
    return [f for f in FRAGMENTS if f in text]


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOllama]:
    with FakeOllama(MODELS) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(fake: FakeOllama) -> None:
    """Each test starts with no request seen and no script left over."""
    fake.reset()


@pytest.fixture(scope="module")
def workspace(
    tmp_path_factory: pytest.TempPathFactory,
    fake: FakeOllama,
    embedder: SentenceTransformerEmbedder,
    parsers: ParserPool,
) -> Iterator[Workspace]:
    """The handbook ingested once; the server's model is Qwen3 with `llm.think` auto."""
    base = tmp_path_factory.mktemp("reasoning")
    (base / "docs").mkdir()
    shutil.copy(REPO / "samples" / "handbook.md", base / "docs")  # what the questions need
    settings = server_settings(base / "data", llm_host=fake.url)
    settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={"model": QWEN})})
    ws = workspace_with(settings, embedder)
    add_user(ws, "alice", ("eng",))
    ws.catalog.assign(COLLECTION, "eng")
    services = ws.services
    pipeline = IngestPipeline(
        services.store, services.embedder, services.sparse, IngestSettings(), parsers=parsers
    )
    assert pipeline.run([base / "docs"], COLLECTION).counts()["failed"] == 0
    yield ws
    ws.close()


@dataclass
class Live:
    url: str
    key: str
    workspace: Workspace


@pytest.fixture(scope="module")
def live(workspace: Workspace) -> Iterator[Live]:
    key = workspace.accounts.create_key("alice", "reasoning tests")
    with LiveServer(workspace) as server:
        yield Live(server.url, key, workspace)


def answer_service(workspace: Workspace, fake: FakeOllama, model: str, **llm: Any) -> AnswerService:
    """An AnswerService on the module's collection and a real OllamaGenerator for `model`."""
    settings = LlmSettings(host=fake.url, model=model, **llm)
    services = workspace.services
    return AnswerService(
        services.retriever, OllamaGenerator(settings), settings, services.embedder.embed_documents
    )


def split(events: Iterable[AnswerEvent]) -> tuple[list[AnswerEvent], Answer]:
    *streamed, answer = list(events)
    assert isinstance(answer, Answer)
    assert all(isinstance(e, Delta | Thinking) for e in streamed), streamed
    return streamed, answer


def thought(events: Iterable[object]) -> str:
    return "".join(e.text for e in events if isinstance(e, Thinking))


def said(events: Iterable[object]) -> str:
    return "".join(e.text for e in events if isinstance(e, Delta))


def reasoning_first(kinds: list[str], thinking: str = "thinking", text: str = "delta") -> bool:
    """Every reasoning event comes before the first piece of answer text (and there are both)."""
    return (
        thinking in kinds
        and text in kinds
        and kinds.index(text) > max(i for i, k in enumerate(kinds) if k == thinking)
    )


def chats(fake: FakeOllama) -> list[dict[str, Any]]:
    return [r for r in fake.requests if r.get("messages")]


def assert_nothing_leaked(answer: Answer) -> None:
    assert leaked(answer.text) == []
    assert answer.unsupported == []
    assert [c.number for c in answer.citations] == [1]  # not the reasoning's [2]
    for c in answer.citations:
        assert leaked(c.snippet) == []
    assert (answer.citations[0].passage.source, answer.citations[0].snippet) == (
        "handbook.md",
        LEAVE_FACT,
    )


# -- the setting, in the form each model takes -----------------------------------------------


@pytest.mark.parametrize(
    ("model", "think", "sent", "reasons"),
    [
        (QWEN, "auto", NOT_SENT, True),  # Ollama's default for a thinking model: it thinks
        (QWEN, "off", False, False),
        (QWEN, "low", True, True),  # a true/false model: a level would be a 400
        (QWEN, "medium", True, True),
        (QWEN, "high", True, True),
        (GPT, "auto", NOT_SENT, True),
        (GPT, "off", "low", True),  # gpt-oss cannot switch reasoning off
        (GPT, "low", "low", True),
        (GPT, "medium", "medium", True),
        (GPT, "high", "high", True),
        (PLAIN, "auto", NOT_SENT, False),
        (PLAIN, "off", NOT_SENT, False),
        (PLAIN, "high", NOT_SENT, False),  # would be a 400: "does not support thinking"
    ],
)
def test_the_think_setting_is_sent_in_the_form_each_model_takes(
    workspace: Workspace,
    fake: FakeOllama,
    model: str,
    think: str,
    sent: object,
    reasons: bool,
) -> None:
    fake.enqueue(Script(tokens=ANSWER_TOKENS, thinking=REASONING))
    answers = answer_service(workspace, fake, model, think=think)

    streamed, answer = split(answers.ask(LEAVE_QUESTION, [COLLECTION]))

    [request] = chats(fake)
    value = request.get("think", NOT_SENT)
    assert (type(value), value) == (type(sent), sent)
    # what the user sees: an answer either way, with the reasoning apart when there is one
    assert not (answer.search_mode or answer.incomplete), answer.notice
    assert answer.text == ANSWER == said(streamed)
    assert thought(streamed) == (REASONING_TEXT if reasons else "")
    assert answer.thinking == (REASONING_TEXT.strip() if reasons else "")


# -- the reasoning, apart from the answer ----------------------------------------------------


def test_reasoning_streams_first_and_never_becomes_the_answer_or_its_audit(
    workspace: Workspace, fake: FakeOllama
) -> None:
    fake.enqueue(Script(tokens=ANSWER_TOKENS, thinking=REASONING))
    alice = workspace.caller_named("alice")
    assert alice is not None

    events = list(workspace.ask(alice, LEAVE_QUESTION, [COLLECTION]))

    *streamed, last = events
    assert isinstance(last, Answered)
    answer = last.answer
    kinds = [type(e).__name__ for e in streamed]
    assert reasoning_first(kinds, "Thinking", "Delta"), kinds
    assert thought(streamed) == REASONING_TEXT
    assert said(streamed) == ANSWER
    assert answer.thinking == REASONING_TEXT.strip()
    assert answer.text == ANSWER
    assert not (answer.refused or answer.search_mode or answer.incomplete)
    assert answer.notice is None
    assert_nothing_leaked(answer)
    entry = workspace.audit.entries(limit=1, action="ask")[0]
    assert entry.detail["question"] == LEAVE_QUESTION and entry.detail["completed"] is True
    assert leaked(json.dumps(entry.to_json())) == []


@pytest.mark.parametrize(
    "tokens",
    [
        [*SPLIT_TAGS, *ANSWER_TOKENS],
        [f"<think>{REASONING_TEXT}</think>{ANSWER_TOKENS[0]}", *ANSWER_TOKENS[1:]],
    ],
    ids=["tags-split-across-tokens", "tags-in-one-token"],
)
def test_think_tags_inlined_in_the_content_are_separated_the_same_way(
    workspace: Workspace, fake: FakeOllama, tokens: list[str]
) -> None:
    # A plain model on Ollama: the server separates nothing, the tags come in the content.
    fake.enqueue(Script(tokens=tokens))
    answers = answer_service(workspace, fake, PLAIN)

    streamed, answer = split(answers.ask(LEAVE_QUESTION, [COLLECTION]))

    kinds = [type(e).__name__ for e in streamed]
    assert reasoning_first(kinds, "Thinking", "Delta"), kinds
    reasoning = thought(streamed)
    assert "asks about leave" in reasoning and "maybe 47 days?" in reasoning
    assert "<" not in reasoning and ">" not in reasoning
    assert said(streamed).strip() == ANSWER
    assert "think>" not in said(streamed)
    assert answer.text == ANSWER
    assert answer.thinking == reasoning.strip()
    assert_nothing_leaked(answer)


@pytest.mark.parametrize("model", [QWEN, PLAIN])
def test_a_follow_up_is_rewritten_without_the_reasoning(
    workspace: Workspace, fake: FakeOllama, model: str
) -> None:
    rewritten = "How many unused days of annual leave can be carried over?"
    if model == QWEN:  # the server separates the reasoning
        fake.enqueue(Script(tokens=[rewritten], thinking=["The user means leave.\n", "Easy."]))
    else:  # inlined: DeepSeek-R1 style
        fake.enqueue(Script(tokens=["<think>\nThe user means leave.\n</think>\n\n", rewritten]))
    fake.enqueue(Script(tokens=["Up to five unused days can be carried over [1]."]))
    answers = answer_service(workspace, fake, model)
    history = [Message("user", LEAVE_QUESTION), Message("assistant", ANSWER)]

    _, answer = split(answers.ask("And how many carry over?", [COLLECTION], history))

    assert answer.standalone_question == rewritten
    assert not answer.search_mode
    _, answering = chats(fake)
    assert "user means" not in json.dumps(answering["messages"])


# -- the front ends --------------------------------------------------------------------------


def sse_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_rest_streams_thinking_events_and_the_answer_event_has_no_reasoning(
    live: Live, fake: FakeOllama
) -> None:
    fake.enqueue(Script(tokens=ANSWER_TOKENS, thinking=REASONING))
    fake.enqueue(Script(tokens=ANSWER_TOKENS, thinking=REASONING))
    headers = {"Authorization": f"Bearer {live.key}"}
    body = {"question": LEAVE_QUESTION, "collections": [COLLECTION]}

    with httpx.Client(base_url=live.url, headers=headers, timeout=30) as http:
        with http.stream("POST", "/api/ask", json=body | {"stream": True}) as response:
            assert response.status_code == 200
            events = sse_events(response.read().decode())
        whole = http.post("/api/ask", json=body)

    kinds = [k for k, _ in events]
    assert reasoning_first(kinds), kinds
    assert kinds[-1] == "answer" and set(kinds) == {"thinking", "delta", "answer"}
    assert "".join(d["text"] for k, d in events if k == "thinking") == REASONING_TEXT
    assert "".join(d["text"] for k, d in events if k == "delta") == ANSWER
    for final in (events[-1][1], whole.json()):
        assert final["answer"] == ANSWER
        # The reasoning may come as a field of its own, apart; nowhere else.
        assert final.pop("thinking", REASONING_TEXT.strip()) == REASONING_TEXT.strip()
        assert leaked(json.dumps(final)) == []
    assert whole.status_code == 200
    for entry in live.workspace.audit.entries(limit=2, action="ask"):
        assert entry.detail["question"] == LEAVE_QUESTION
        assert leaked(json.dumps(entry.to_json())) == []


def test_v1_sends_reasoning_content_apart_from_the_content(live: Live, fake: FakeOllama) -> None:
    fake.enqueue(Script(tokens=ANSWER_TOKENS, thinking=REASONING))
    fake.enqueue(Script(tokens=ANSWER_TOKENS, thinking=REASONING))
    messages: Any = [{"role": "user", "content": LEAVE_QUESTION}]
    model = f"citadel:{COLLECTION}"

    with openai.OpenAI(
        base_url=f"{live.url}/v1", api_key=live.key, max_retries=0, timeout=30
    ) as client:
        with client.chat.completions.create(model=model, messages=messages, stream=True) as stream:
            chunks = [c for c in stream if c.choices]
        whole = client.chat.completions.create(model=model, messages=messages)

    deltas = [c.choices[0].delta for c in chunks]
    reasoning = [getattr(d, "reasoning_content", None) for d in deltas]
    kinds = [
        "reasoning" if r else "content" if d.content else ""
        for d, r in zip(deltas, reasoning, strict=True)
    ]
    assert reasoning_first(kinds, "reasoning", "content"), kinds
    assert "".join(r for r in reasoning if r) == REASONING_TEXT
    content = "".join(d.content or "" for d in deltas)
    assert content.startswith(ANSWER)
    assert leaked(content) == []
    message = whole.choices[0].message
    assert getattr(message, "reasoning_content", None) == REASONING_TEXT.strip()
    assert (message.content or "").startswith(ANSWER)
    assert leaked(message.content or "") == []
    for entry in live.workspace.audit.entries(limit=2, action="ask"):
        assert leaked(json.dumps(entry.to_json())) == []


ANSI = re.compile(r"\x1b\[[0-9;]*m")
DIMMED = re.compile(r"\x1b\[2m(.*?)\x1b\[0m", re.S)
QUESTION_ARGS = (LEAVE_QUESTION, "--collection", COLLECTION)


def citadel_ask(live: Live, data_dir: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """`citadel ask` in a subprocess, through the running server (server.url): the CLI does
    not open the store the server holds."""
    env = {"CITADEL_SERVER__URL": live.url, "CITADEL_SERVER__API_KEY": live.key}
    env |= {"FORCE_COLOR": "1", "TERM": "xterm-256color"}  # styles kept: dimmed is visible
    return citadel(data_dir, "ask", *QUESTION_ARGS, *flags, env=env, timeout=120)


def test_cli_shows_the_reasoning_dimmed_only_when_asked(
    live: Live, fake: FakeOllama, tmp_path: Path
) -> None:
    fake.enqueue(Script(tokens=ANSWER_TOKENS, thinking=REASONING))
    fake.enqueue(Script(tokens=ANSWER_TOKENS, thinking=REASONING))

    shown = citadel_ask(live, tmp_path, "--show-thinking")
    hidden = citadel_ask(live, tmp_path)

    assert shown.returncode == 0, shown.stderr
    assert hidden.returncode == 0, hidden.stderr
    assert len(chats(fake)) == 2
    out = shown.stdout
    plain = ANSI.sub("", out)
    assert plain.index(REASONING_TEXT) < plain.index(ANSWER)
    # dimmed: all of it inside the terminal's dim style, none outside
    assert REASONING_TEXT.replace("\n", "") in "".join(DIMMED.findall(out)).replace("\n", "")
    assert leaked(DIMMED.sub("", out)) == []
    assert "25 days of paid annual leave" in hidden.stdout
    assert leaked(hidden.stdout + hidden.stderr) == []
    assert "--show-thinking" in hidden.stdout  # says there was reasoning, and how to see it


# -- deadlines and the prompt budget ---------------------------------------------------------


def test_a_model_reasoning_slowly_but_steadily_is_not_cut(
    workspace: Workspace, fake: FakeOllama
) -> None:
    steps = [f"step {i}. " for i in range(6)]
    fake.enqueue(Script(tokens=ANSWER_TOKENS, thinking=steps, delay_between_s=0.3))
    answers = answer_service(workspace, fake, QWEN, first_token_timeout_s=1, idle_timeout_s=1)

    started = time.monotonic()
    timed: list[tuple[float, AnswerEvent]] = [
        (time.monotonic() - started, e) for e in answers.ask(LEAVE_QUESTION, [COLLECTION])
    ]
    streamed, answer = split(e for _, e in timed)

    first_text = next(t for t, e in timed if isinstance(e, Delta))
    assert first_text >= 1.5  # well past the first-token deadline of 1 s
    assert not (answer.incomplete or answer.search_mode), answer.notice
    assert answer.text == ANSWER
    assert thought(streamed) == "".join(steps)


def test_a_model_that_stalls_while_reasoning_is_cut_at_the_idle_deadline(
    workspace: Workspace, fake: FakeOllama
) -> None:
    fake.enqueue(Script(tokens=ANSWER_TOKENS, thinking=REASONING, stall_after=2))
    answers = answer_service(workspace, fake, QWEN, first_token_timeout_s=3, idle_timeout_s=1)

    started = time.monotonic()
    streamed, answer = split(answers.ask(LEAVE_QUESTION, [COLLECTION]))
    elapsed = time.monotonic() - started

    assert thought(streamed) == "".join(REASONING[:2])
    assert answer.search_mode  # no answer text came: the passages instead
    assert "nothing received for 1 s" in (answer.notice or "")
    assert leaked(answer.text) == []
    assert 0.9 <= elapsed < 3.0


@pytest.mark.parametrize(
    ("model", "think", "reserved"),
    [(QWEN, "auto", True), (GPT, "off", True), (QWEN, "off", False), (PLAIN, "high", False)],
)
def test_the_prompt_budget_keeps_room_for_the_reasoning_of_a_thinking_model(
    workspace: Workspace, fake: FakeOllama, model: str, think: str, reserved: bool
) -> None:
    llm = {"think": think, "reasoning_tokens": 1024, "max_answer_tokens": 400}
    fake.enqueue(Script(tokens=ANSWER_TOKENS, thinking=REASONING))
    answers = answer_service(workspace, fake, model, max_context_tokens=2048, **llm)
    # A generator that has measured nothing counts as the one that packed the prompt did.
    counter = OllamaGenerator(LlmSettings(host=fake.url, model=model))

    _, answer = split(answers.ask(LEAVE_QUESTION, [COLLECTION]))

    [request] = chats(fake)
    reply = 400 + (1024 if reserved else 0)
    assert request["options"]["num_predict"] == reply
    num_ctx = request["options"]["num_ctx"]
    prompt = sum(counter.count_tokens(m["content"]) for m in request["messages"])
    assert prompt + reply <= num_ctx == answer.num_ctx <= 2048
    # The room is really kept: the prompt of a thinking model leaves passages out, and
    # says so, where the same prompt fits whole for a model that does not reason.
    assert (answer.dropped_passages > 0) is reserved
    assert ("left out" in (answer.notice or "")) is reserved
    assert answer.passages and not answer.search_mode
    assert answer.text == ANSWER
