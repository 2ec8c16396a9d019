"""The multilingual default and collections built before it: a French question finds the
English passage; a collection built with all-MiniLM-L6-v2 keeps answering, says how to move,
and `citadel reindex` moves it from its stored chunks, resuming after an interruption."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from ingest.pipeline import IngestPipeline
from ingest.reindex import backup_path, reindex
from rag.adapters.embedder import SentenceTransformerEmbedder
from rag.adapters.qdrant.edge import EdgeStore
from rag.errors import EmbeddingModelMismatch
from rag.retrieval import Retriever
from rag.settings import (
    DEFAULT_EMBEDDING_MODEL,
    MINILM_EMBEDDING_MODEL,
    EmbeddingSettings,
    IngestSettings,
    RetrievalSettings,
    Settings,
)
from rag.sparse import SPARSE_VERSION, Bm25Encoder
from tests.cli_process import citadel
from tests.conftest import SAMPLES

LEAVE_FR = "Combien de jours de congés payés ai-je par an ?"


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(EmbeddingSettings(model=MINILM_EMBEDDING_MODEL))


@pytest.fixture
def old_collection(tmp_path: Path, minilm, parsers) -> Iterator[EdgeStore]:
    """The samples indexed in `docs` with the previous default model."""
    store = EdgeStore(tmp_path / "store")
    IngestPipeline(store, minilm, Bm25Encoder(), IngestSettings(), parsers=parsers).run(
        [SAMPLES], "docs"
    )
    yield store
    store.close()


def retriever(store, embedder, other=None) -> Retriever:
    return Retriever(store, embedder, Bm25Encoder(), RetrievalSettings(), None, other)


def test_the_default_model_is_multilingual(embedder, store, make_pipeline) -> None:
    make_pipeline().run([SAMPLES], "docs")

    result = retriever(store, embedder).retrieve(LEAVE_FR, ["docs"])

    assert embedder.model_name == DEFAULT_EMBEDDING_MODEL
    assert "25 days of paid annual leave" in result.passages[0].text


def test_an_old_collection_keeps_answering_with_its_own_model(
    old_collection, embedder, minilm
) -> None:
    models = {MINILM_EMBEDDING_MODEL: minilm}

    result = retriever(old_collection, embedder, models.__getitem__).retrieve(
        "How many days of paid annual leave do I get?", ["docs"]
    )

    assert "25 days of paid annual leave" in result.passages[0].text


def test_an_old_collection_whose_model_is_gone_says_how_to_rebuild(
    old_collection, embedder
) -> None:
    with pytest.raises(EmbeddingModelMismatch, match="citadel reindex docs"):
        retriever(old_collection, embedder).retrieve("annual leave?", ["docs"])


def test_reindex_moves_a_collection_to_the_default_model(
    old_collection, embedder, tmp_path
) -> None:
    before = {c.id: c.payload for c in old_collection.chunks("docs")}
    documents = old_collection.documents("docs")
    steps: list[tuple[int, int]] = []

    report = reindex(
        old_collection,
        embedder,
        Bm25Encoder(),
        IngestSettings(),
        "docs",
        tmp_path,
        lambda done, total: steps.append((done, total)),
    )

    spec = old_collection.collection_spec("docs")
    assert spec is not None and spec.embedding_model == DEFAULT_EMBEDDING_MODEL
    assert (report.built_with, report.chunks) == (MINILM_EMBEDDING_MODEL, len(before))
    assert {c.id: c.payload for c in old_collection.chunks("docs")} == before
    assert [replace(d, sparse=SPARSE_VERSION) for d in documents] == old_collection.documents(
        "docs"
    )
    assert steps[-1] == (len(before), len(before))
    assert not backup_path(tmp_path, "docs").exists()
    result = retriever(old_collection, embedder).retrieve(LEAVE_FR, ["docs"])
    assert "25 days of paid annual leave" in result.passages[0].text


class _PowerCut:
    """An embedder that fails after a few batches, as a crash or Ctrl-C would."""

    def __init__(self, real: SentenceTransformerEmbedder, batches: int) -> None:
        self._real = real
        self._left = batches
        self.model_name = real.model_name
        self.dimension = real.dimension
        self.max_tokens = real.max_tokens
        self.count_tokens = real.count_tokens

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        if self._left == 0:
            raise KeyboardInterrupt
        self._left -= 1
        return self._real.embed_documents(texts)


def test_an_interrupted_reindex_loses_nothing_and_resumes(
    old_collection, embedder, tmp_path
) -> None:
    before = {c.id: c.payload for c in old_collection.chunks("docs")}
    assert len(before) > 8  # more than one batch of 8: the cut falls in the middle

    with pytest.raises(KeyboardInterrupt):
        reindex(
            old_collection,
            _PowerCut(embedder, 1),  # type: ignore[arg-type]
            Bm25Encoder(),
            IngestSettings(),
            "docs",
            tmp_path,
            batch=8,
        )
    assert backup_path(tmp_path, "docs").is_file()

    report = reindex(old_collection, embedder, Bm25Encoder(), IngestSettings(), "docs", tmp_path)

    assert report.resumed and report.built_with == MINILM_EMBEDDING_MODEL
    assert {c.id: c.payload for c in old_collection.chunks("docs")} == before
    assert len(old_collection.documents("docs")) == report.documents > 0


def test_cli_lists_an_old_collection_and_reindexes_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    docs = tmp_path / "docs"
    shutil.copytree(SAMPLES / "policies", docs)
    old = {"CITADEL_EMBEDDING__MODEL": MINILM_EMBEDDING_MODEL}
    assert citadel(data, "ingest", str(docs), "-c", "policies", "-q", env=old).returncode == 0

    listed = citadel(data, "collections")
    moved = citadel(data, "reindex", "policies", "-q")
    asked = citadel(
        data, "search", "Que faire si mon ordinateur portable est volé ?", "-c", "policies"
    )

    assert "citadel reindex policies" in listed.stderr
    assert moved.returncode == 0, moved.stderr
    assert f"re-embedded with {DEFAULT_EMBEDDING_MODEL}" in moved.stdout
    assert f"was {MINILM_EMBEDDING_MODEL}" in moved.stdout
    assert asked.returncode == 0 and "information-security-policy" in asked.stdout
    assert Settings().embedding.model == DEFAULT_EMBEDDING_MODEL
