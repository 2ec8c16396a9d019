"""Asking a question end to end, as a user sees it: the bundled samples really ingested
(real parsers, embedder and Qdrant Edge), the real Retriever, and the real OllamaGenerator
talking HTTP to a fake Ollama server (tests/fake_ollama.py) that plays scripted answers."""

from __future__ import annotations

import re
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from llama_index.core.chat_engine.condense_question import DEFAULT_TEMPLATE as CONDENSE_TEMPLATE

from ingest.pipeline import IngestPipeline
from ingest.workers import ParserPool
from rag.adapters.embedder import SentenceTransformerEmbedder
from rag.adapters.ollama import OllamaGenerator
from rag.adapters.qdrant.edge import EdgeStore
from rag.answering import HISTORY_CHARS, REFUSAL_NOTICE, AnswerService
from rag.errors import InvalidQuestion
from rag.evidence import Evidence
from rag.prompting import CONTEXT_STEPS, REFUSAL, SMALL_MODEL_PASSAGES, system_prompt
from rag.retrieval import Retrieval, Retriever
from rag.settings import IngestSettings, LlmSettings, RetrievalSettings, Settings
from rag.sparse import Bm25Encoder
from rag.types import Answer, AnswerEvent, Delta, Message, Passage
from rag.wiring import Services
from tests.fake_ollama import FakeOllama, Script

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
COLLECTION = "larkspur"
MODEL = "llama3.2:3b"  # pulled on the fake server (its DEFAULT_MODELS)

LEAVE_QUESTION = "How many days of paid annual leave do full-time employees get?"
LEAVE_SOURCE = ("handbook.md", "Larkspur Analytics Employee Handbook > Leave")
LEAVE_FACT = "Full-time employees receive 25 days of paid annual leave per calendar year."
ABSENT_QUESTION = "Which zpool command creates a mirrored ZFS pool?"
MARKER = re.compile(r"\[(\d+)\]")


# -- fixtures and helpers ---------------------------------------------------------------------


@dataclass(frozen=True)
class Ingested:
    store: EdgeStore
    retriever: Retriever
    embedder: SentenceTransformerEmbedder


@pytest.fixture(scope="module")
def ingested(
    tmp_path_factory: pytest.TempPathFactory,
    embedder: SentenceTransformerEmbedder,
    parsers: ParserPool,
) -> Iterator[Ingested]:
    """The samples ingested once for the module; every test only reads the collection."""
    base = tmp_path_factory.mktemp("answering")
    shutil.copytree(SAMPLES, base / "docs")
    store = EdgeStore(base / "store")
    pipeline = IngestPipeline(store, embedder, Bm25Encoder(), IngestSettings(), parsers=parsers)
    report = pipeline.run([base / "docs"], COLLECTION)
    assert report.counts()["failed"] == 0
    assert report.counts()["added"] == 8
    yield Ingested(store, Retriever(store, embedder, Bm25Encoder(), RetrievalSettings()), embedder)
    store.close()


@pytest.fixture
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


@pytest.fixture
def closed_port_url() -> str:
    """A local URL where nothing listens: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


ServiceFactory = Callable[..., tuple[AnswerService, LlmSettings]]


@pytest.fixture
def service(ingested: Ingested) -> ServiceFactory:
    """An AnswerService on the real retriever and a real OllamaGenerator at `host`."""

    def build(host: str, **llm: object) -> tuple[AnswerService, LlmSettings]:
        settings = LlmSettings(host=host, **llm)  # type: ignore[arg-type]
        generator = OllamaGenerator(settings) if settings.model else None
        answers = AnswerService(
            ingested.retriever, generator, settings, ingested.embedder.embed_documents
        )
        return answers, settings

    return build


def collect(events: Iterable[AnswerEvent]) -> tuple[list[Delta], Answer]:
    """Deltas first, then exactly one Answer, last."""
    items = list(events)
    *deltas, answer = items
    assert isinstance(answer, Answer)
    assert all(isinstance(d, Delta) for d in deltas), items
    assert all(d.text for d in deltas)  # no empty pieces
    return deltas, answer


def ask(answers: AnswerService, question: str, **kwargs: object) -> tuple[list[Delta], Answer]:
    return collect(answers.ask(question, [COLLECTION], **kwargs))  # type: ignore[arg-type]


def chats(fake: FakeOllama) -> list[dict]:
    return [r for r in fake.requests if r.get("messages")]


def markers(text: str) -> set[int]:
    return {int(n) for n in MARKER.findall(text)}


# -- answers with citations -------------------------------------------------------------------


def test_answer_streams_in_order_with_citations_and_the_request_carries_the_settings(
    service: ServiceFactory, fake: FakeOllama
) -> None:
    tokens = [
        "Full-time ",
        "employees receive ",
        "25 days",
        " of paid annual leave",
        " per calendar year [",
        "1",
        "]. ",
        "Up to five unused days",
        " can be carried over [1].",
    ]
    fake.enqueue(Script(tokens=tokens, delay_between_s=0.1))
    answers, settings = service(fake.url, keep_alive="7m", temperature=0.3)

    received: list[tuple[float, AnswerEvent]] = []
    for event in answers.ask(LEAVE_QUESTION, [COLLECTION]):
        received.append((time.monotonic(), event))
    deltas, answer = collect(e for _, e in received)

    expected = "".join(tokens)
    assert "".join(d.text for d in deltas) == expected
    assert answer.text == expected
    # streamed as the model writes: several pieces, spread over the server's pacing
    assert len(deltas) >= 6
    delta_times = [t for t, e in received if isinstance(e, Delta)]
    assert delta_times[-1] - delta_times[0] >= 0.5
    assert not (answer.refused or answer.search_mode or answer.incomplete or answer.truncated)
    assert answer.notice is None
    assert answer.unsupported == []
    assert answer.dropped_passages == 0
    assert answer.question == answer.standalone_question == LEAVE_QUESTION

    [citation] = answer.citations
    assert citation.number == 1
    assert (citation.passage.source, citation.passage.location) == LEAVE_SOURCE
    assert citation.passage is answer.passages[0]
    assert citation.snippet in citation.passage.text
    assert citation.snippet == LEAVE_FACT
    assert citation.aligned is False

    [request] = chats(fake)
    assert request["model"] == MODEL == answer.model
    assert request["stream"] is True
    assert request["keep_alive"] == "7m"
    options = request["options"]
    assert options["temperature"] == 0.3
    assert options["num_predict"] == settings.max_answer_tokens
    num_ctx = options["num_ctx"]
    assert isinstance(num_ctx, int)
    assert num_ctx == answer.num_ctx
    assert num_ctx in CONTEXT_STEPS
    assert num_ctx <= settings.max_context_tokens
    messages = request["messages"]
    assert num_ctx >= (answer.prompt_tokens or 0) + settings.max_answer_tokens
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == system_prompt(LEAVE_QUESTION)
    user = messages[1]["content"]
    document, location = LEAVE_SOURCE
    assert user.startswith(f'<source id="1" document="{document}" location="{location}">\n')
    assert LEAVE_FACT in user
    numbered = re.findall(r'^<source id="(\d+)"', user, re.M)
    assert numbered == [str(i) for i in range(1, len(answer.passages) + 1)]
    assert user.count("</source>") == len(answer.passages)
    assert user.endswith(f"<question>\n{LEAVE_QUESTION}\n</question>")
    assert answer.prompt_tokens is not None and answer.prompt_tokens > 0


def test_invented_and_out_of_range_markers_are_never_shown(
    service: ServiceFactory, fake: FakeOllama
) -> None:
    tokens = [
        "Full-time employees receive 25 days of paid annual leave [",
        "9",
        "]",
        " per calendar year [1][7]. ",
        "Up to five unused days can be carried over [0]. ",
        "Carried-over days expire on 31 March [",
        "1",
        "2].",
    ]
    fake.enqueue(Script(tokens=tokens))
    answers, _ = service(fake.url)

    deltas, answer = ask(answers, LEAVE_QUESTION)

    given = len(answer.passages)
    assert 1 <= given < 7  # so [7], [9] and [12] point at no source
    shown = "".join(d.text for d in deltas)
    for text in (*(d.text for d in deltas), shown, answer.text):
        assert markers(text) <= set(range(1, given + 1)), text
        for invented in ("[0]", "[7]", "[9]", "[12]"):
            assert invented not in text
    assert "[1]" in shown
    assert answer.text.startswith("Full-time employees receive 25 days of paid annual leave")
    assert "31 March" in answer.text
    assert {c.number for c in answer.citations} <= set(range(1, given + 1))
    assert (answer.citations[0].passage.source, answer.citations[0].passage.location) == (
        LEAVE_SOURCE
    )


def test_unmarked_sentences_are_aligned_to_a_passage_or_listed_as_unsupported(
    service: ServiceFactory, fake: FakeOllama
) -> None:
    invented = "The cafeteria serves vegan lunches every Friday."
    fake.enqueue(Script(tokens=[f"{LEAVE_FACT} ", invented]))
    answers, _ = service(fake.url)

    _, answer = ask(answers, LEAVE_QUESTION)

    [citation] = answer.citations
    assert citation.aligned is True
    assert (citation.passage.source, citation.passage.location) == LEAVE_SOURCE
    assert citation.snippet == LEAVE_FACT
    number = citation.number
    assert answer.text == f"{LEAVE_FACT[:-1]} [~{number}]. {invented}"
    assert answer.unsupported == [invented]
    assert not answer.refused


def test_model_refusal_gives_a_refused_answer_without_citations(
    service: ServiceFactory, fake: FakeOllama
) -> None:
    fake.enqueue(Script(tokens=["I could not find ", "this in your ", "documents."]))
    answers, _ = service(fake.url)

    deltas, answer = ask(answers, LEAVE_QUESTION)

    assert "".join(d.text for d in deltas) == REFUSAL
    assert answer.refused is True
    assert answer.text == REFUSAL
    assert answer.citations == []
    assert answer.unsupported == []
    assert answer.notice == REFUSAL_NOTICE
    assert not answer.search_mode
    assert answer.passages  # what was given to the model stays available


def test_weak_evidence_is_refused_without_calling_the_model(
    service: ServiceFactory, fake: FakeOllama
) -> None:
    answers, _ = service(fake.url)

    deltas, answer = ask(answers, ABSENT_QUESTION)

    assert deltas == []
    assert answer.refused is True
    assert answer.text == REFUSAL
    # The samples never mention ZFS: the reader is told so, and can check the spelling.
    assert (
        answer.notice
        == "No document you can search mentions “ZFS”; the closest passages are listed."
    )
    assert answer.absent_names == ("ZFS",)  # for the page to say it too
    assert answer.citations == []
    assert not answer.search_mode
    assert 1 <= len(answer.passages) <= 3  # the closest passages, one per document
    assert len({p.document_id for p in answer.passages}) == len(answer.passages)
    assert ("POST", "/api/chat") not in fake.calls
    assert fake.requests == []


def test_a_french_question_is_refused_in_french_with_its_reason(
    service: ServiceFactory, fake: FakeOllama
) -> None:
    answers, _ = service(fake.url)

    deltas, answer = ask(answers, "Quelle commande zpool crée un pool ZFS en miroir ?")

    assert deltas == []  # refused before any model: nothing streamed
    assert answer.refused is True
    assert answer.text == "Je n'ai pas trouvé cette information dans vos documents."
    assert answer.notice == (
        "Aucun document que vous pouvez consulter ne mentionne “ZFS” ; "
        "voici les passages les plus proches."
    )
    assert ("POST", "/api/chat") not in fake.calls


# -- search mode: no model to write the answer ----------------------------------------------


def _assert_search_mode(answer: Answer) -> None:
    assert answer.search_mode is True
    assert not answer.refused
    assert answer.text == ""
    assert answer.notice is not None and answer.notice.startswith("Search mode: ")
    assert answer.passages
    assert [c.number for c in answer.citations] == list(range(1, len(answer.passages) + 1))
    assert [c.passage for c in answer.citations] == answer.passages
    assert all(c.snippet and not c.aligned for c in answer.citations)
    assert (answer.passages[0].source, answer.passages[0].location) == LEAVE_SOURCE


def test_unreachable_server_gives_search_mode_quickly(
    service: ServiceFactory, closed_port_url: str
) -> None:
    answers, _ = service(closed_port_url)

    started = time.monotonic()
    deltas, answer = ask(answers, LEAVE_QUESTION)
    elapsed = time.monotonic() - started

    assert deltas == []
    _assert_search_mode(answer)
    assert closed_port_url in (answer.notice or "")
    assert elapsed < 3.0


def test_no_model_configured_gives_search_mode(service: ServiceFactory, fake: FakeOllama) -> None:
    answers, _ = service(fake.url, model=None)

    deltas, answer = ask(answers, LEAVE_QUESTION)

    assert deltas == []
    _assert_search_mode(answer)
    assert "CITADEL_LLM__MODEL" in (answer.notice or "")
    assert fake.calls == []


def test_services_with_an_empty_model_setting_answer_in_search_mode(
    ingested: Ingested, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CITADEL_LLM__MODEL", "")
    monkeypatch.setenv("CITADEL_DATA_DIR", str(tmp_path))
    # The module's Qdrant Edge store is already open (and locked) in this process.
    monkeypatch.setattr("rag.wiring.build_store", lambda settings: ingested.store)
    services = Services(Settings())

    assert services.generator is None
    _, answer = collect(services.answers.ask(LEAVE_QUESTION, [COLLECTION]))

    _assert_search_mode(answer)
    assert "No model is configured (CITADEL_LLM__MODEL)" in (answer.notice or "")


def test_model_not_pulled_says_how_to_pull_it(service: ServiceFactory, fake: FakeOllama) -> None:
    answers, _ = service(fake.url, model="mistral:7b")

    deltas, answer = ask(answers, LEAVE_QUESTION)

    assert deltas == []
    _assert_search_mode(answer)
    assert "ollama pull mistral:7b" in (answer.notice or "")
    assert fake.url in (answer.notice or "")
    assert chats(fake) == []


# -- streams that stop -----------------------------------------------------------------------


def test_no_first_token_in_time_gives_search_mode_with_a_timeout_notice(
    service: ServiceFactory, fake: FakeOllama
) -> None:
    fake.enqueue(Script(tokens=["Too", " late"], stall_after=0))
    answers, _ = service(fake.url, first_token_timeout_s=1, idle_timeout_s=1)

    started = time.monotonic()
    deltas, answer = ask(answers, LEAVE_QUESTION)
    elapsed = time.monotonic() - started

    assert deltas == []
    _assert_search_mode(answer)
    # the deadline, or httpx's read timeout set to the same length: either says so
    assert re.search(r"no answer within 1 s|stopped responding", answer.notice or "")
    assert 0.9 <= elapsed < 4.0
    assert len(chats(fake)) == 1


def test_stalled_stream_keeps_the_partial_answer_and_says_it_is_incomplete(
    service: ServiceFactory, fake: FakeOllama
) -> None:
    tokens = ["Full-time employees receive ", "25 days", " of paid annual leave [1]."]
    fake.enqueue(Script(tokens=tokens, stall_after=2))
    answers, _ = service(fake.url, first_token_timeout_s=5, idle_timeout_s=1)

    started = time.monotonic()
    deltas, answer = ask(answers, LEAVE_QUESTION)
    elapsed = time.monotonic() - started

    assert "".join(d.text for d in deltas) == "Full-time employees receive 25 days"
    assert answer.incomplete is True
    assert answer.text.startswith("Full-time employees receive 25 days")
    assert "of paid annual leave" not in answer.text
    assert not answer.search_mode
    assert "incomplete" in (answer.notice or "")
    assert "nothing received for 1 s" in (answer.notice or "")
    assert 0.9 <= elapsed < 4.0


def test_dropped_connection_mid_stream_gives_an_incomplete_answer(
    service: ServiceFactory, fake: FakeOllama
) -> None:
    tokens = ["Full-time employees receive ", "25 days", " of paid annual leave [1]."]
    fake.enqueue(Script(tokens=tokens, drop_after=2))
    answers, _ = service(fake.url)

    deltas, answer = ask(answers, LEAVE_QUESTION)

    assert "".join(d.text for d in deltas) == "Full-time employees receive 25 days"
    assert answer.incomplete is True
    assert answer.text.startswith("Full-time employees receive 25 days")
    assert not answer.search_mode
    assert "incomplete" in (answer.notice or "")


# -- the context budget ----------------------------------------------------------------------


def test_small_context_leaves_passages_out_and_says_so(
    service: ServiceFactory, fake: FakeOllama
) -> None:
    fake.enqueue(Script(tokens=[f"{LEAVE_FACT[:-1]} [1]."]))
    answers, settings = service(fake.url, max_context_tokens=1024)

    _, answer = ask(answers, LEAVE_QUESTION)

    assert answer.dropped_passages > 0
    assert len(answer.passages) >= 1
    # A small context is offered a small model's share of the passages, then what fits.
    offered = min(RetrievalSettings().top_k, SMALL_MODEL_PASSAGES)
    assert len(answer.passages) + answer.dropped_passages == offered
    assert f"{answer.dropped_passages} retrieved passage(s)" in (answer.notice or "")
    assert "left out" in (answer.notice or "")
    [request] = chats(fake)
    num_ctx = request["options"]["num_ctx"]
    assert num_ctx == answer.num_ctx <= settings.max_context_tokens
    user = request["messages"][1]["content"]
    assert re.findall(r'^<source id="(\d+)"', user, re.M) == [
        str(i) for i in range(1, len(answer.passages) + 1)
    ]
    assert not answer.truncated
    assert answer.citations[0].passage.source == LEAVE_SOURCE[0]


def test_the_models_own_context_length_caps_num_ctx(ingested: Ingested) -> None:
    with FakeOllama({MODEL: 2048}) as fake:
        fake.enqueue(Script(tokens=[f"{LEAVE_FACT[:-1]} [1]."]))
        settings = LlmSettings(host=fake.url, max_context_tokens=32768)
        answers = AnswerService(ingested.retriever, OllamaGenerator(settings), settings)
        _, answer = ask(answers, LEAVE_QUESTION)
        [request] = chats(fake)

    assert request["options"]["num_ctx"] == answer.num_ctx <= 2048
    assert not answer.search_mode


def test_context_too_small_for_any_passage_gives_search_mode(
    service: ServiceFactory, fake: FakeOllama
) -> None:
    answers, _ = service(fake.url, max_context_tokens=512, max_answer_tokens=512)

    _, answer = ask(answers, LEAVE_QUESTION)

    _assert_search_mode(answer)
    assert "cannot hold any passage" in (answer.notice or "")
    assert chats(fake) == []


def test_server_reporting_a_full_context_marks_the_answer_truncated(
    service: ServiceFactory, fake: FakeOllama
) -> None:
    answers, settings = service(fake.url)
    # the cap bounds num_ctx, so this count fills whatever num_ctx was asked for
    fake.enqueue(
        Script(tokens=[f"{LEAVE_FACT[:-1]} [1]."], prompt_eval_count=settings.max_context_tokens)
    )

    _, answer = ask(answers, LEAVE_QUESTION)

    assert answer.truncated is True
    assert answer.prompt_tokens == settings.max_context_tokens
    assert answer.num_ctx is not None and answer.prompt_tokens >= answer.num_ctx
    assert "full context" in (answer.notice or "")
    assert answer.text == f"{LEAVE_FACT[:-1]} [1]."
    assert answer.citations


# -- follow-up questions ---------------------------------------------------------------------

HISTORY = [
    Message("user", LEAVE_QUESTION),
    Message("assistant", f"{LEAVE_FACT[:-1]} [1]."),
]
FOLLOW_UP = "And how many can be carried over?"


def test_follow_up_is_rewritten_by_the_model_before_retrieval(
    service: ServiceFactory, fake: FakeOllama
) -> None:
    rewritten = "How many unused days of annual leave can be carried over to the next year?"
    fake.enqueue(
        Script(
            tokens=[
                '"How many unused days of annual leave ',
                'can be carried over to the next year?"\n',
                "(rewritten with the conversation)",
            ]
        )
    )
    fake.enqueue(Script(tokens=["Up to five unused days can be carried over [1]."]))
    answers, _ = service(fake.url)

    deltas, answer = ask(answers, FOLLOW_UP, history=HISTORY)

    assert answer.question == FOLLOW_UP
    assert answer.standalone_question == rewritten
    assert not (answer.refused or answer.search_mode)
    assert "".join(d.text for d in deltas) == answer.text
    condense, answering = chats(fake)
    # the rewrite request: llama-index's condense prompt with the history, no system prompt
    [prompt] = condense["messages"]
    assert prompt["role"] == "user"
    assert prompt["content"].startswith(CONDENSE_TEMPLATE.split("{", 1)[0])
    assert LEAVE_QUESTION in prompt["content"]
    assert HISTORY[1].content in prompt["content"]
    assert FOLLOW_UP in prompt["content"]
    assert condense["options"]["num_ctx"] in CONTEXT_STEPS
    # the answer request retrieves and asks with the rewritten question
    assert answering["messages"][0]["content"] == system_prompt(rewritten)
    assert answering["messages"][1]["content"].endswith(f"<question>\n{rewritten}\n</question>")
    assert (answer.citations[0].passage.source, answer.citations[0].passage.location) == (
        LEAVE_SOURCE
    )


def test_a_follow_up_with_a_huge_history_sends_a_bounded_rewrite_prompt(
    service: ServiceFactory, fake: FakeOllama
) -> None:
    fake.enqueue(Script(tokens=["How many days of annual leave can be carried over?"]))
    fake.enqueue(Script(tokens=["Up to five unused days can be carried over [1]."]))
    answers, _ = service(fake.url)
    pasted = LEAVE_QUESTION + " " + "lorem ipsum " * 20_000  # a pasted document, 240 kB
    history = [Message("user", pasted), Message("assistant", "Twenty-five days. " * 5_000)]

    ask(answers, FOLLOW_UP, history=history)

    condense, _ = chats(fake)
    [prompt] = condense["messages"]
    assert LEAVE_QUESTION in prompt["content"] and FOLLOW_UP in prompt["content"]
    assert len(prompt["content"]) < 2 * HISTORY_CHARS + 2000  # not 330 kB


def test_a_question_over_the_limit_is_refused_before_anything_is_sent(
    service: ServiceFactory, fake: FakeOllama
) -> None:
    answers, _ = service(fake.url)
    before = len(fake.requests)
    with pytest.raises(InvalidQuestion, match="characters long"):
        ask(answers, "why " * 1000, history=HISTORY)
    assert len(fake.requests) == before  # not even the rewrite of the follow-up


def test_follow_up_without_a_reachable_model_prepends_the_previous_question(
    service: ServiceFactory, closed_port_url: str
) -> None:
    answers, _ = service(closed_port_url)

    started = time.monotonic()
    _, answer = ask(answers, FOLLOW_UP, history=HISTORY)

    assert answer.standalone_question == f"{LEAVE_QUESTION} {FOLLOW_UP}"
    assert answer.question == FOLLOW_UP
    _assert_search_mode(answer)
    assert time.monotonic() - started < 3.0


OFF_TOPIC_HISTORY = [
    Message("user", ABSENT_QUESTION),
    Message("assistant", REFUSAL),
]


def test_a_standalone_question_after_an_off_topic_one_is_answered_in_search_mode(
    service: ServiceFactory, closed_port_url: str
) -> None:
    answers, _ = service(closed_port_url)

    _, answer = ask(answers, LEAVE_QUESTION, history=OFF_TOPIC_HISTORY)

    assert answer.standalone_question == LEAVE_QUESTION  # the zpool question left out
    _assert_search_mode(answer)


def test_an_off_topic_question_after_an_on_topic_one_gets_what_it_gets_alone_in_search_mode(
    service: ServiceFactory, closed_port_url: str
) -> None:
    """Not the previous subject's passages: refused, where the evidence says so, as if it
    were the first question."""
    answers, _ = service(closed_port_url)

    _, alone = ask(answers, ABSENT_QUESTION)
    _, after = ask(answers, ABSENT_QUESTION, history=HISTORY)

    assert after.standalone_question == ABSENT_QUESTION
    assert (after.refused, after.evidence, after.text) == (
        alone.refused,
        alone.evidence,
        alone.text,
    )
    assert [p.chunk_id for p in after.passages] == [p.chunk_id for p in alone.passages]


def test_a_standalone_question_with_a_history_is_answered_without_a_rewrite_request(
    service: ServiceFactory, fake: FakeOllama
) -> None:
    fake.enqueue(Script(tokens=[f"{LEAVE_FACT[:-1]} [1]."]))
    answers, _ = service(fake.url)

    _, answer = ask(answers, LEAVE_QUESTION, history=OFF_TOPIC_HISTORY)

    [answering] = chats(fake)  # the answer only: no condense prompt went first
    assert answering["messages"][1]["content"].endswith(
        f"<question>\n{LEAVE_QUESTION}\n</question>"
    )
    assert answer.standalone_question == LEAVE_QUESTION
    assert answer.text == f"{LEAVE_FACT[:-1]} [1]."
    assert (answer.citations[0].passage.source, answer.citations[0].passage.location) == (
        LEAVE_SOURCE
    )


def test_an_answer_no_source_supports_is_taken_for_a_refusal(
    service: ServiceFactory, fake: FakeOllama
) -> None:
    """A small model answers from its own knowledge rather than refuse: when none of its
    sentences is supported, the user is told the documents do not answer."""
    invented = [
        "Install the wireguard package on both servers. ",
        "Generate a key pair with wg genkey on each one. ",
        "Write /etc/wireguard/wg0.conf with the peer's public key and endpoint. ",
        "Start the tunnel with wg-quick up wg0 and enable it at boot.",
    ]
    fake.enqueue(Script(tokens=invented))
    answers, _ = service(fake.url)

    _, answer = ask(answers, LEAVE_QUESTION)

    assert answer.refused is True
    assert answer.text == REFUSAL
    assert answer.citations == []
    assert len(answer.unsupported) == 4
    assert "none of your documents supports" in (answer.notice or "")
    assert not answer.search_mode


FRENCH_LEAVE = "Combien de jours de congés payés ont les salariés à temps plein ?"


def test_a_question_in_another_language_than_the_documents_is_searched_translated(
    service: ServiceFactory, fake: FakeOllama
) -> None:
    """A French question over English documents: the model translates it first (the search
    matches across languages poorly), the search uses the translation, and the answer is
    still asked for in French, the question as written."""
    fake.enqueue(Script(tokens=["How many days of paid leave ", "do full-time employees get?"]))
    fake.enqueue(Script(tokens=["Les salariés à temps plein ont 25 jours de congés payés [1]."]))
    answers, _ = service(fake.url)

    _, answer = ask(answers, FRENCH_LEAVE)

    translation, answering = chats(fake)
    [prompt] = translation["messages"]
    assert "into English" in prompt["content"] and FRENCH_LEAVE in prompt["content"]
    assert answering["messages"][1]["content"].endswith(f"<question>\n{FRENCH_LEAVE}\n</question>")
    assert not answer.refused
    assert (answer.citations[0].passage.source, answer.citations[0].passage.location) == (
        LEAVE_SOURCE
    )


def test_an_answer_in_the_questions_language_is_checked_by_what_it_names(
    service: ServiceFactory, fake: FakeOllama
) -> None:
    """The answer is written in French from English passages: Citadel cannot compare the
    words, so the number it states earns its citation, where the handbook states it."""
    fake.enqueue(Script(tokens=["How many days of paid leave do full-time employees get?"]))
    fake.enqueue(Script(tokens=["Les salariés à temps plein ont droit à 25 jours par an."]))
    answers, _ = service(fake.url)

    _, answer = ask(answers, FRENCH_LEAVE)

    assert not answer.refused and answer.unsupported == []
    assert [(c.passage.source, c.passage.location, c.aligned) for c in answer.citations] == [
        (*LEAVE_SOURCE, True)
    ]
    assert answer.text.endswith("25 jours par an [~1].")


def test_without_translation_or_when_it_fails_the_question_is_searched_as_written(
    service: ServiceFactory, fake: FakeOllama
) -> None:
    answers, _ = service(fake.url, translate_questions=False)
    fake.enqueue(Script(tokens=[f"{LEAVE_FACT[:-1]} [1]."]))
    ask(answers, FRENCH_LEAVE)
    assert not any("into English" in str(c["messages"]) for c in chats(fake))

    answers, _ = service(fake.url)
    fake.enqueue(Script(tokens=[], status=500))  # the translation fails
    fake.enqueue(Script(tokens=[f"{LEAVE_FACT[:-1]} [1]."]))
    _, answer = ask(answers, FRENCH_LEAVE)
    *_, translation, answering = chats(fake)
    assert "into English" in translation["messages"][0]["content"]
    assert answering["messages"][1]["content"].endswith(f"<question>\n{FRENCH_LEAVE}\n</question>")
    assert not answer.search_mode and answer.notice is None  # searched as it was asked


def _found(first: Passage) -> Retrieval:
    """What a search found: `first`, then four English passages."""
    english = [
        replace(first, chunk_id=f"c{i}", text=f"The pprint module prints data, part {i}.")
        for i in range(4)
    ]
    return Retrieval("q", [first, *english], Evidence(0.6, 0.4, 0.85, None), 1.0)


QUOTED = Passage(
    "c",
    COLLECTION,
    "d",
    "email.html",
    "html",
    "",
    (),
    (),
    0,
    'msg["Subject"] = "Ayons asperges pour le déjeuner, avec la recette de Pepé"',
    0.5,
    before="Here is an example of how to create and send a simple text message:",
    after="Note that the message is sent with the server's default settings.",
)
FRENCH_PAGE = replace(
    QUOTED,
    before="Voici comment on crée et envoie un message texte simple, avec ses en-têtes :",
    after="Le message part avec les réglages par défaut du serveur de la société.",
)


def test_french_quoted_on_an_english_page_does_not_make_the_documents_french(
    service: ServiceFactory, fake: FakeOllama
) -> None:
    """A passage's language is read with its neighbouring chunks: French words quoted in an
    English page's example come first for a French question, and the question is still
    translated; a passage of a French page (a bilingual collection) is searched as asked."""
    question = "Comment afficher joliment un gros dictionnaire pour le déboguer ?"
    answers, _ = service(fake.url)
    fake.enqueue(Script(tokens=["How to pretty-print a big dictionary for debugging?"]))

    quoted = answers.translated(question, _found(QUOTED))
    french = answers.translated(question, _found(FRENCH_PAGE))

    assert quoted == "How to pretty-print a big dictionary for debugging?"
    assert french is None
    assert len(chats(fake)) == 1  # the French page's search asked the model nothing
