"""One contract, two adapters: Qdrant Edge (embedded) and Qdrant server via qdrant-client.

The server adapter runs against qdrant-client's local mode: no Qdrant server binary here.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from rag.adapters.qdrant.base import QdrantStore
from rag.adapters.qdrant.edge import EdgeStore
from rag.adapters.qdrant.server import ServerStore
from rag.errors import CollectionNotFound, EmbeddingModelMismatch, StoreError, StoreUnavailable
from rag.evidence import Calibration
from rag.ids import chunk_id, document_id
from rag.types import Chunk, CollectionSpec, DocumentRecord, SearchFilter, SparseVector

SPEC = CollectionSpec("test-model", 4)


@pytest.fixture(params=["edge", "server"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QdrantStore]:
    adapter: QdrantStore
    if request.param == "edge":
        adapter = EdgeStore(tmp_path / "edge")
    else:
        adapter = ServerStore(QdrantClient(location=":memory:"), prefix="t-")
    yield adapter
    adapter.close()


def _chunk(
    collection: str, source: str, n: int, text: str, sha: str = "v1", file_type: str = "md"
) -> Chunk:
    doc = document_id(collection, source)
    return Chunk(
        id=chunk_id(doc, n),
        document_id=doc,
        collection=collection,
        source=source,
        file_type=file_type,
        title="T",
        headings=("H",),
        pages=(),
        number=n,
        text=text,
        embed_text=text,
        sha256=sha,
        ingested_at="2026-11-24T00:00:00+00:00",
    )


def _put(
    store: QdrantStore,
    collection: str,
    source: str,
    texts: list[str],
    sha: str = "v1",
    file_type: str = "md",
    vector: list[float] | None = None,
) -> str:
    chunks = [_chunk(collection, source, n, t, sha, file_type) for n, t in enumerate(texts)]
    dense = [vector or [1.0, float(n), 0.0, 0.5] for n in range(len(chunks))]
    sparse = [
        SparseVector(sorted({_term(w) for w in t.split()}), [1.0] * len(set(t.split())))
        for t in texts
    ]
    store.upsert_chunks(collection, chunks, dense, sparse)
    store.delete_stale_chunks(collection, chunks[0].document_id, sha)
    store.put_document(
        DocumentRecord(
            id=chunks[0].document_id,
            collection=collection,
            source=source,
            file_type=file_type,
            title="T",
            pages=0,
            chunks=len(chunks),
            sha256=sha,
            size=10,
            ingested_at="2026-11-24T00:00:00+00:00",
            root="/docs",
        )
    )
    return chunks[0].document_id


def _term(word: str) -> int:
    """A word's sparse index: the same in every run (Python's str hash is salted per
    process, and modulo 1000 two words of a text sometimes collided)."""
    return zlib.crc32(word.encode())


def _query(text: str) -> SparseVector:
    return SparseVector(sorted({_term(w) for w in text.split()}), [1.0] * len(set(text.split())))


def test_collection_records_its_embedding_model(store: QdrantStore) -> None:
    store.ensure_collection("docs", SPEC)
    store.ensure_collection("docs", SPEC)  # idempotent

    assert store.collection_spec("docs") == SPEC
    with pytest.raises(EmbeddingModelMismatch, match="test-model"):
        store.ensure_collection("docs", CollectionSpec("other-model", 4))


def test_a_calibration_is_kept_with_its_collection(store: QdrantStore) -> None:
    store.ensure_collection("docs", SPEC)
    assert store.calibration("docs") is None  # never fitted
    fitted = Calibration(
        method=1,
        embedding_model="test-model",
        chunks=120,
        candidates=50,
        cosine_centre=0.8,
        cosine_scale=0.03,
        lexical_centre=3.0,
        lexical_scale=1.5,
        bm25_centre=12.0,
        bm25_scale=8.0,
        cut=-1.2,
        meaning_cut=1.1,
        positives=80,
        positives_refused=0.0,
        negatives=84,
        negatives_refused=0.7,
        fitted_at="2026-12-05T00:00:00+00:00",
    )

    store.put_calibration("docs", fitted)
    store.ensure_collection("docs", SPEC)  # an ingestion's check keeps it

    assert store.calibration("docs") == fitted
    assert store.collection_spec("docs") == SPEC
    with pytest.raises(CollectionNotFound):
        store.put_calibration("nowhere", fitted)


def test_collections_list_counts_documents_and_chunks(store: QdrantStore) -> None:
    store.ensure_collection("docs", SPEC)
    store.ensure_collection("hr", SPEC)
    _put(store, "docs", "a.md", ["alpha one", "alpha two"])
    _put(store, "docs", "b.md", ["beta"])

    infos = {c.name: (c.documents, c.chunks, c.spec) for c in store.collections()}

    assert infos == {"docs": (2, 3, SPEC), "hr": (0, 0, SPEC)}


def test_document_records_list_what_is_stored(store: QdrantStore) -> None:
    store.ensure_collection("docs", SPEC)
    doc = _put(store, "docs", "sub/a.md", ["alpha"])

    [record] = store.documents("docs")

    assert (record.id, record.source, record.chunks, record.sha256) == (doc, "sub/a.md", 1, "v1")


def test_new_version_replaces_every_chunk_of_the_old_one(store: QdrantStore) -> None:
    store.ensure_collection("docs", SPEC)
    doc = _put(store, "docs", "a.md", ["old one", "old two", "old three"], sha="v1")

    _put(store, "docs", "a.md", ["new one"], sha="v2")

    texts = [h.payload["text"] for h in store.chunks("docs", doc)]
    assert texts == ["new one"]
    assert store.documents("docs")[0].sha256 == "v2"


def test_upserting_the_same_chunks_twice_never_duplicates(store: QdrantStore) -> None:
    store.ensure_collection("docs", SPEC)
    _put(store, "docs", "a.md", ["one", "two"])
    _put(store, "docs", "a.md", ["one", "two"])

    assert store.count_chunks("docs") == 2
    assert len(store.documents("docs")) == 1


def test_delete_document_removes_record_and_chunks(store: QdrantStore) -> None:
    store.ensure_collection("docs", SPEC)
    a = _put(store, "docs", "a.md", ["one", "two"])
    _put(store, "docs", "b.md", ["three"])

    assert store.delete_document("docs", a) == 2

    assert [d.source for d in store.documents("docs")] == ["b.md"]
    assert store.count_chunks("docs") == 1


def test_sparse_search_finds_the_lexical_match_dense_the_nearest(store: QdrantStore) -> None:
    store.ensure_collection("docs", SPEC)
    _put(
        store,
        "docs",
        "a.md",
        ["apples and pears", "the retention period is ninety days"],
        vector=[1.0, 0.0, 0.0, 0.0],
    )

    _put(store, "docs", "b.md", ["unrelated words entirely"], vector=[0.0, 1.0, 0.0, 0.0])

    lexical = store.search(["docs"], _query("retention period"), 5)
    nearest = store.search(["docs"], [0.0, 0.9, 0.1, 0.0], 5)

    assert lexical[0].payload["text"] == "the retention period is ninety days"
    assert nearest[0].payload["text"] == "unrelated words entirely"
    assert nearest[0].score > nearest[-1].score
    assert all(h.payload["kind"] == "chunk" for h in lexical + nearest)
    assert store.search(["docs"], SparseVector([], []), 5) == []  # a stop-words-only question


def test_search_honours_file_type_document_and_folder_filters(store: QdrantStore) -> None:
    store.ensure_collection("docs", SPEC)
    a = _put(store, "docs", "hr/a.md", ["leave policy"])
    _put(store, "docs", "it/b.pdf", ["leave the laptop"], file_type="pdf")
    _put(store, "docs", "hr/deep/c.md", ["leave carry over"])

    def sources(search_filter: SearchFilter) -> set[str]:
        lexical = store.search(["docs"], _query("leave"), 10, search_filter)
        dense = store.search(["docs"], [1, 0, 0, 0], 10, search_filter)
        assert {h.payload["source"] for h in lexical} == {h.payload["source"] for h in dense}
        return {h.payload["source"] for h in lexical}

    assert sources(SearchFilter(file_types=("pdf",))) == {"it/b.pdf"}
    assert sources(SearchFilter(document_ids=(a,))) == {"hr/a.md"}
    assert sources(SearchFilter(source_prefix="hr/")) == {"hr/a.md", "hr/deep/c.md"}
    assert sources(SearchFilter(source_prefix="hr/deep")) == {"hr/deep/c.md"}


def test_search_never_crosses_into_collections_not_asked_for(store: QdrantStore) -> None:
    store.ensure_collection("docs", SPEC)
    store.ensure_collection("secret", SPEC)
    _put(store, "docs", "a.md", ["public canteen menu"])
    _put(store, "secret", "s.md", ["secret canteen menu"])

    for query in ([1, 0, 0, 0], _query("secret canteen")):
        hits = store.search(["docs"], query, 10)
        assert {h.payload["collection"] for h in hits} == {"docs"}
    both = store.search(["docs", "secret"], _query("secret canteen"), 10)
    assert {h.payload["collection"] for h in both} == {"docs", "secret"}


def test_unknown_collection_and_bad_names_are_clear_errors(store: QdrantStore) -> None:
    with pytest.raises(CollectionNotFound, match="nope"):
        store.documents("nope")
    with pytest.raises(StoreError, match="invalid collection name"):
        store.ensure_collection("../etc", SPEC)


def test_edge_store_persists_across_reopen_and_refuses_a_second_writer(tmp_path: Path) -> None:
    first = EdgeStore(tmp_path / "edge")
    first.ensure_collection("docs", SPEC)
    _put(first, "docs", "a.md", ["kept across restarts"])

    second = EdgeStore(tmp_path / "edge")
    with pytest.raises(StoreUnavailable, match="in use by another Citadel process"):
        second.documents("docs")
    first.close()

    assert [d.source for d in second.documents("docs")] == ["a.md"]
    assert second.collection_spec("docs") == SPEC
    second.close()


def test_optimizing_keeps_every_point_and_result(store: QdrantStore) -> None:
    store.ensure_collection("docs", SPEC)
    _put(store, "docs", "a.md", ["the retention period is ninety days", "apples and pears"])
    before = store.search(["docs"], _query("retention period"), 5)

    store.optimize("docs")

    assert store.count_chunks("docs") == 2
    assert [h.id for h in store.search(["docs"], _query("retention period"), 5)] == [
        h.id for h in before
    ]


def test_dense_search_finds_the_nearest_chunks_of_a_large_collection(tmp_path: Path) -> None:
    """Above Qdrant's full-scan size a dense search walks the HNSW graph: at Qdrant's
    default beam it missed 1 of 20 of the true 50 nearest chunks (and the very nearest for 5
    of 79 questions) on a 7.9k-chunk corpus. Random vectors are the graph's hardest case:
    there the default beam found 0.6 of them."""
    import numpy as np

    dimension, count = 384, 9000  # 13.8 MB of vectors: over the 10 MB full-scan threshold
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((count, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = EdgeStore(tmp_path / "edge")
    store.ensure_collection("big", CollectionSpec("test-model", dimension))
    doc = document_id("big", "big.md")
    for start in range(0, count, 1000):
        numbers = range(start, min(count, start + 1000))
        chunks = [_chunk("big", "big.md", n, f"chunk {n}") for n in numbers]
        store.upsert_chunks(
            "big",
            chunks,
            [vectors[n].tolist() for n in numbers],
            [SparseVector([1], [1.0])] * len(chunks),
        )
    store.optimize("big")

    recalls = []
    for query in rng.standard_normal((10, dimension)).astype(np.float32):
        query /= np.linalg.norm(query)
        exact = {chunk_id(doc, int(n)) for n in np.argsort(-(vectors @ query))[:50]}
        found = {h.id for h in store.search(["big"], query.tolist(), 50)}
        recalls.append(len(found & exact) / 50)
    store.close()

    assert sum(recalls) / len(recalls) >= 0.95, recalls


def test_an_unreachable_qdrant_server_is_named_with_its_address() -> None:
    """A consultant who typed the wrong port reads which address was tried and what to
    check, not a bare "Connection refused"."""
    import socket

    from rag.settings import QdrantSettings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    url = f"http://127.0.0.1:{port}"
    store = ServerStore.connect(QdrantSettings(url=url, timeout_s=5))
    with pytest.raises(StoreUnavailable) as unreachable:
        store.documents("docs")
    message = str(unreachable.value)
    assert f"the Qdrant server at {url}" in message
    assert "is it running, and is qdrant.url right?" in message
