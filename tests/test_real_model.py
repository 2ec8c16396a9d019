"""Answers written by a real model: SmolLM2-135M served by the embedded llama.cpp, over the
bundled samples, through each way of asking (the CLI, the REST API, the OpenAI-compatible
API). A model this small writes poor answers, so only what holds whatever it writes is
asserted: its tokens arrive as they are written, the answer is not search mode, every [n]
(and [~n]) shown points at a source it was given, the answer names the GGUF's model, and a
question the samples do not answer is refused before the model is asked.

Kept few and short (64 answer tokens, a 2048-token context): well under a minute of model
time on two cores. Without models/SmolLM2-135M-Instruct.Q4_1.gguf they fail, saying to run
`make models-test` (`make test` does).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from playwright.sync_api import Browser, Page, expect

from ingest.pipeline import IngestPipeline
from ingest.workers import ParserPool
from rag.adapters.embedder import SentenceTransformerEmbedder
from rag.adapters.qdrant.edge import EdgeStore
from rag.settings import IngestSettings, Settings
from rag.sparse import Bm25Encoder
from tests.cli_process import citadel
from tests.conftest import MEASURED, SAMPLES
from tests.live_server import PASSWORD, LiveServer, add_user, workspace_with
from tests.test_browser import (  # noqa: F401 (the browser fixtures)
    axe_problems,
    browser,
    screenshots_on_failure,
    shots,
)
from ui.service.workspace import Workspace

pytestmark = pytest.mark.slow
COLLECTION = "larkspur"
LEAVE_QUESTION = "How many days of paid annual leave do full-time employees get?"
ABSENT_QUESTION = "Which zpool command creates a mirrored ZFS pool?"
# Any reference the model may write and Citadel keeps: [1], [~2], [1, 3], [Source 2], [1-2].
MARKER = re.compile(r"\[\s*~?(?:sources?\s*)?\^?(\d[\d\s,;\-–]*)\]", re.I)


def llm(model_path: Path) -> dict[str, Any]:
    return {
        "provider": "llamacpp",
        "model_path": str(model_path),
        "threads": 1,  # the machine's two cores are shared with the embedder and other work
        "max_answer_tokens": 64,
        "max_context_tokens": 2048,
        "temperature": 0.0,
    }


def numbers(text: str) -> set[int]:
    return {int(n) for m in MARKER.finditer(text) for n in re.findall(r"\d+", m.group(1))}


def assert_cited_sources_were_given(answer: dict[str, Any]) -> None:
    """Every marker of the checked answer is one of its citations, and every citation one
    of the passages given to the model."""
    cited = {c["n"] for c in answer["citations"]}
    assert numbers(answer["answer"]) <= cited, answer["answer"]
    assert cited <= set(range(1, len(answer["passages"]) + 1)), answer["citations"]


@dataclass
class Library:
    settings: Settings  # the data directory with the samples ingested
    cli_data: Path  # a copy of it for the CLI (the server keeps its own store locked)


@pytest.fixture(scope="module")
def library(
    tmp_path_factory: pytest.TempPathFactory,
    embedder: SentenceTransformerEmbedder,
    parsers: ParserPool,
    smollm2: Path,
) -> Library:
    base = tmp_path_factory.mktemp("real-model")
    shutil.copytree(SAMPLES, base / "docs")
    settings = Settings(data_dir=base / "data", llm=llm(smollm2))  # type: ignore[arg-type]
    store = EdgeStore(settings.edge_path)
    try:
        pipeline = IngestPipeline(store, embedder, Bm25Encoder(), IngestSettings(), parsers=parsers)
        report = pipeline.run([base / "docs"], COLLECTION)
        assert report.counts()["failed"] == 0
    finally:
        store.close()
    shutil.copytree(base / "data", base / "cli-data")
    return Library(settings, base / "cli-data")


@dataclass
class Served:
    url: str
    key: str
    workspace: Workspace

    def http(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)


@pytest.fixture(scope="module")
def served(library: Library, embedder: SentenceTransformerEmbedder) -> Iterator[Served]:
    workspace = workspace_with(library.settings, embedder)
    key = add_user(workspace, "alice", ("hr",))
    workspace.catalog.assign(COLLECTION, "hr")
    with LiveServer(workspace) as server:
        yield Served(server.url, key, workspace)
    workspace.close()  # the embedded llama.cpp stops with it


def test_cli_ask_answers_with_the_embedded_model(library: Library, smollm2: Path) -> None:
    env = {f"CITADEL_LLM__{k.upper()}": str(v) for k, v in llm(smollm2).items()}

    ask = ["ask", LEAVE_QUESTION, "-c", COLLECTION, "--json"]
    result = citadel(library.cli_data, *ask, env=env, timeout=300)

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    answer = json.loads(result.stdout)
    assert not answer["search_mode"], answer["notice"]
    assert answer["model"] == smollm2.stem
    assert answer["answer"]
    assert answer["prompt_tokens"] and answer["prompt_tokens"] > 0
    assert_cited_sources_were_given(answer)


def test_rest_ask_streams_the_models_tokens_then_the_checked_answer(
    served: Served, smollm2: Path
) -> None:
    with (
        served.http() as http,
        http.stream(
            "POST",
            "/api/ask",
            json={"question": LEAVE_QUESTION, "collections": [COLLECTION], "stream": True},
        ) as response,
    ):
        assert response.status_code == 200, response.read()
        events = [
            (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("data: ")[1]))
            for block in response.read().decode().strip().split("\n\n")
        ]

    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "answer" and set(kinds[:-1]) <= {"delta", "thinking"}
    deltas = [data["text"] for kind, data in events if kind == "delta"]
    assert len(deltas) >= 2, events  # the model's tokens, as it wrote them
    answer = events[-1][1]
    assert not answer["search_mode"], answer["notice"]
    assert answer["model"] == smollm2.stem
    assert answer["prompt_tokens"] and answer["prompt_tokens"] > 0
    assert_cited_sources_were_given(answer)
    # What was shown while streaming pointed at given sources too.
    assert numbers("".join(deltas)) <= set(range(1, len(answer["passages"]) + 1))


def test_rest_refuses_what_the_samples_do_not_answer_without_asking_the_model(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    generator = served.workspace.services.generator
    assert generator is not None
    asked: list[str] = []

    def spy(name: str) -> Any:
        def called(*args: Any, **kwargs: Any) -> Any:
            asked.append(name)
            raise AssertionError(f"the model was asked ({name})")

        return called

    for method in ("stream", "complete", "count_tokens", "context_limit"):
        monkeypatch.setattr(generator, method, spy(method))

    with served.http() as http:
        response = http.post(
            "/api/ask", json={"question": ABSENT_QUESTION, "collections": [COLLECTION]}
        )

    assert response.status_code == 200, response.text
    answer = response.json()
    assert asked == []
    assert answer["refused"] and not answer["search_mode"]
    assert answer["model"] is None and answer["prompt_tokens"] is None
    assert answer["citations"] == []


def test_openai_api_streams_the_models_tokens_with_the_official_client(served: Served) -> None:
    client = openai.OpenAI(base_url=f"{served.url}/v1", api_key=served.key, max_retries=0)

    chunks = list(
        client.chat.completions.create(
            model=f"citadel:{COLLECTION}",
            messages=[{"role": "user", "content": LEAVE_QUESTION}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    with_citadel = [c for c in chunks if (c.model_extra or {}).get("citadel")]
    assert len(with_citadel) == 1
    last = chunks.index(with_citadel[0])
    written = [c.choices[0].delta.content for c in chunks[:last] if c.choices]
    written = [text for text in written if text]
    assert len(written) >= 2, chunks  # the model's tokens, as it wrote them
    citadel = (with_citadel[0].model_extra or {})["citadel"]
    assert not citadel["search_mode"], citadel["notice"]
    sources = {s["n"] for s in citadel["sources"]}
    assert numbers(citadel["answer"]) <= sources
    assert numbers("".join(written)) <= sources
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0


# In the page: when Enter is pressed in the question box, and when the first written
# character of the model appears in the chat (not the "Searching…" placeholder).
FIRST_TOKEN_JS = """() => {
  window.citadelTimes = {};
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey) window.citadelTimes.enter = performance.now();
  }, true);
  const chat = document.getElementById('citadel-conversation');
  new MutationObserver(() => {
    const written = chat.querySelector('.citadel-streaming');
    if (!written || written.querySelector('.citadel-muted') || window.citadelTimes.token) return;
    if (written.textContent.replace('\\u258d', '').trim()) {
      window.citadelTimes.token = performance.now();
    }
  }).observe(chat, {childList: true, subtree: true, characterData: true});
}"""


# Questions no other test here asks: one asked before finds the model's prompt cache warm
# (0.2 s to the first token). Ones SmolLM2-135M answers from its sources: on others it
# writes sentences no source supports, which Citadel rightly withdraws (no chips to click).
LAPTOP_QUESTION = "Where do I pick up my laptop on day 1?"
EXPENSES_QUESTION = "Within how many days must expense claims be submitted?"


@pytest.mark.parametrize(
    ("width", "dark", "question"),
    [(1400, False, LAPTOP_QUESTION), (390, True, EXPENSES_QUESTION)],
    ids=["desktop-light", "phone-dark"],
)
def test_the_web_ui_streams_the_real_models_answer_and_times_its_first_token(
    width: int,
    dark: bool,
    question: str,
    served: Served,
    smollm2: Path,
    browser: Browser,  # noqa: F811 (the fixture imported above)
    shots: list[Page],  # noqa: F811
) -> None:
    with screenshots_on_failure("real-model", shots):
        context = browser.new_context(
            viewport={"width": width, "height": 900}, color_scheme="dark" if dark else "light"
        )
        page = context.new_page()
        shots.append(page)
        page.goto(served.url + "/")
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        box = page.locator("#citadel-question textarea")
        box.wait_for()
        expect(page.locator("#citadel-live")).to_have_count(1)
        expect(page.locator("#citadel-collections")).to_contain_text(COLLECTION)  # loaded
        page.evaluate(FIRST_TOKEN_JS)
        box.fill(question)
        box.press("Enter")
        answer = page.locator("#citadel-conversation .citadel-a").first
        expect(answer.locator(".citadel-rate, .citadel-banner")).not_to_have_count(
            0, timeout=180_000
        )  # the checked answer, or why there is none
        # Written by the model (a note that it was cut at its length limit is fine: this
        # model is small), not search mode, not an error.
        failed = answer.locator(".citadel-banner-search, .citadel-banner-error")
        assert failed.count() == 0, answer.inner_text()
        times = page.evaluate("window.citadelTimes")
        assert "token" in times, "the answer was never streamed"
        first_token_s = (times["token"] - times["enter"]) / 1000
        assert 0 < first_token_s < 120
        MEASURED.append(
            f"web UI ({width} px, {'dark' if dark else 'light'}), Enter to first visible "
            f"token, {smollm2.stem} (embedded llama.cpp, {os.cpu_count()} cores): "
            f"{first_token_s:.2f} s"
        )
        # What it wrote is shown as Markdown, each chip opening a source it was given.
        expect(answer.locator(".citadel-md")).not_to_be_empty()
        for chip in answer.locator(".citadel-md a.citadel-cite").all()[:3]:
            chip.click()
            expect(page.locator("#citadel-source-panel .citadel-src-shown")).to_be_visible()
            if width < 768:  # on a phone the source is a sheet over the page: closed again
                page.locator("#citadel-sheet-close").click()
        assert axe_problems(page) == []
        context.close()
