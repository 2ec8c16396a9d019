"""`citadel reindex COLLECTION`: a collection re-embedded with the configured embedding model
from its stored chunks, without parsing any file again (the files may be gone).

The chunks and document records are first copied to a file beside the store; only then is
the collection rebuilt. A run that stops half-way (a crash, Ctrl-C) leaves that file, and
the next `citadel reindex` starts again from it: nothing stored is ever lost. The chunks
keep their boundaries, IDs and payloads; their embedding text (title and section trail, then
the text) is rebuilt within the new model's window, and their BM25 vectors are computed
again (so a change of the sparse encoder is picked up too).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ingest.pipeline import chunker_for
from rag.errors import CitadelError, CollectionNotFound
from rag.ports import Embedder, SparseEncoder, VectorStore
from rag.settings import IngestSettings
from rag.sparse import SPARSE_VERSION
from rag.types import CollectionSpec, DocumentRecord, SearchHit


@dataclass(frozen=True)
class ReindexReport:
    collection: str
    built_with: str  # the model the collection had before
    model: str  # the model it has now
    documents: int
    chunks: int
    resumed: bool  # an interrupted run's copy was used
    cut_chunks: int  # chunks longer than the new model's window (its end is not embedded)


def backup_path(data_dir: Path, collection: str) -> Path:
    return data_dir / f"reindex-{collection}.jsonl"


def reindex(
    store: VectorStore,
    embedder: Embedder,
    sparse: SparseEncoder,
    settings: IngestSettings,
    collection: str,
    data_dir: Path,
    progress: Callable[[int, int], None] = lambda done, total: None,
    batch: int = 128,
) -> ReindexReport:
    """Rebuild `collection` with `embedder`; `progress(done, total)` after each `batch`
    of chunks embedded."""
    backup = backup_path(data_dir, collection)
    spec = store.collection_spec(collection)
    resumed = backup.is_file()
    if resumed:
        built_with, chunks, documents = _read(backup)
    else:
        if spec is None:
            raise CollectionNotFound(f"no collection named {collection!r}")
        built_with = spec.embedding_model
        chunks = store.chunks(collection)
        documents = [d.payload() for d in store.documents(collection)]
        _write(backup, built_with, chunks, documents)
    chunker = chunker_for(embedder, settings)
    texts = [
        chunker.embed_text(str(c.payload["title"]), tuple(c.payload["headings"]), c.payload["text"])
        for c in chunks
    ]
    cut = sum(1 for t in texts if embedder.count_tokens(t) > embedder.max_tokens)
    store.drop_collection(collection)
    store.ensure_collection(collection, CollectionSpec(embedder.model_name, embedder.dimension))
    progress(0, len(chunks))
    for start in range(0, len(chunks), batch):
        part = slice(start, start + batch)
        dense = embedder.embed_documents(texts[part])
        vectors = [sparse.encode_document(t) for t in texts[part]]
        store.put_stored_chunks(collection, chunks[part], dense, vectors)
        progress(min(start + batch, len(chunks)), len(chunks))
    for payload in documents:  # last: a record's presence means its document is complete
        # Its sparse vectors are now of this release's encoding: no re-index at next ingest.
        store.put_document(replace(DocumentRecord.from_payload(payload), sparse=SPARSE_VERSION))
    store.optimize(collection)
    backup.unlink()
    return ReindexReport(
        collection, built_with, embedder.model_name, len(documents), len(chunks), resumed, cut
    )


def _write(
    path: Path, model: str, chunks: list[SearchHit], documents: list[dict[str, Any]]
) -> None:
    """The copy, written whole and synced before it is moved into place: the collection is
    dropped only once a complete copy exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w", encoding="utf-8") as out:
        out.write(json.dumps({"model": model}) + "\n")
        for c in chunks:
            out.write(json.dumps({"chunk": c.id, "payload": c.payload}) + "\n")
        for d in documents:
            out.write(json.dumps({"document": d}) + "\n")
        out.flush()
        os.fsync(out.fileno())
    partial.replace(path)


def _read(path: Path) -> tuple[str, list[SearchHit], list[dict[str, Any]]]:
    try:
        lines = iter(path.read_text(encoding="utf-8").splitlines())
        model = json.loads(next(lines))["model"]
        chunks: list[SearchHit] = []
        documents: list[dict[str, Any]] = []
        for row in map(json.loads, _nonempty(lines)):
            if "chunk" in row:
                chunks.append(SearchHit(row["chunk"], 0.0, row["payload"]))
            else:
                documents.append(row["document"])
    except (OSError, ValueError, KeyError, StopIteration) as exc:
        raise CitadelError(
            f"the copy {path} that an interrupted reindex left cannot be read ({exc}); "
            "the collection may be incomplete: ingest its files again"
        ) from exc
    return str(model), chunks, documents


def _nonempty(lines: Iterator[str]) -> Iterator[str]:
    return (line for line in lines if line.strip())
