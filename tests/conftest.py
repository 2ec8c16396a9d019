"""Shared fixtures: a clean environment, one real embedder and one parser pool per session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.ocr import ocr_options
from ingest.pipeline import IngestPipeline
from ingest.workers import ParserPool
from rag.adapters.embedder import SentenceTransformerEmbedder
from rag.adapters.qdrant.edge import EdgeStore
from rag.offline import enforce_offline
from rag.settings import IngestSettings, Settings
from rag.sparse import Bm25Encoder
from rag.weights import by_name

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
# The real model of the llama.cpp tests (98 MB): `make models-test` puts it there.
SMOLLM2 = REPO / "models" / by_name("smollm2-135m").filename


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CITADEL_* variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("CITADEL_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    enforce_offline()
    return SentenceTransformerEmbedder(Settings().embedding)


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """SmolLM2-135M as a GGUF file; a test that needs it fails (never skips) without it."""
    if not SMOLLM2.is_file():
        pytest.fail(
            f"{SMOLLM2} is missing: run `make models-test` (`make test` does it first)",
            pytrace=False,
        )
    return SMOLLM2


@pytest.fixture(scope="session")
def parsers() -> Iterator[ParserPool]:
    settings = IngestSettings()
    with ParserPool(
        1,
        settings.parse_timeout_s,
        settings.parse_memory_mb,
        ["md", "html", "pdf", "docx"],
        ocr_options(settings),
    ) as pool:
        yield pool


@pytest.fixture
def store(tmp_path: Path) -> Iterator[EdgeStore]:
    edge = EdgeStore(tmp_path / "store")
    yield edge
    edge.close()


@pytest.fixture
def make_pipeline(store: EdgeStore, embedder: SentenceTransformerEmbedder, parsers: ParserPool):
    def build(**ingest_settings: object) -> IngestPipeline:
        settings = IngestSettings(**ingest_settings)  # type: ignore[arg-type]
        # A run with its own limits needs its own pool; the shared one has the defaults.
        pool = parsers if not ingest_settings else None
        return IngestPipeline(store, embedder, Bm25Encoder(), settings, parsers=pool)

    return build


@pytest.fixture
def sample_folder(tmp_path: Path) -> Path:
    """A private copy of the bundled samples that a test may edit."""
    target = tmp_path / "docs"
    shutil.copytree(SAMPLES, target)
    return target


# Figures a test measured, printed at the end of the run (pytest's own summary): the UI's
# time from Enter to the first token on screen, with the real model, say.
MEASURED: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if MEASURED:
        terminalreporter.section("measured")
        for line in MEASURED:
            terminalreporter.write_line(line)
