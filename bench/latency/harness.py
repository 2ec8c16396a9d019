"""What the latency bench measures, made ready: a deterministic synthetic corpus, the
EdgeStore built from it (or reused from the cache under --data), its optimized copy, and the
fresh process each phase runs in."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from rag.adapters.embedder import resolve_model_path
from rag.adapters.qdrant.edge import EdgeStore
from rag.ids import document_id
from rag.settings import DEFAULT_EMBEDDING_MODEL, MINILM_EMBEDDING_MODEL, IngestSettings
from rag.sparse import Bm25Encoder
from rag.types import Chunk, CollectionSpec, DocumentRecord, SparseVector

COLLECTION = "bench"
DIMENSION = 384
CENTROIDS = 1000
VOCABULARY = 50_000
CHUNKS_PER_DOCUMENT = 20
BUILD_MARKER = "bench-build.json"
OPTIMIZE_MARKER = "bench-optimize.json"
FORMAT_VERSION = 1  # bump when the synthetic data changes: cached stores are rebuilt
INGESTED_AT = "2025-03-14T09:26:53+00:00"
MB = 1024 * 1024

T = TypeVar("T")

_EXTENSIONS = ("pdf", "docx", "md", "html", "pptx", "xlsx", "txt")
_EXTENSION_WEIGHTS = (0.40, 0.20, 0.15, 0.10, 0.08, 0.04, 0.03)
_DEPARTMENTS = (
    "finance",
    "hr",
    "legal",
    "engineering",
    "operations",
    "sales",
    "it",
    "research",
    "procurement",
    "compliance",
)


# -- synthetic corpus --------------------------------------------------------------------------
def _vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    """Real English words first (the packaged model's WordPiece vocabulary, roughly in
    frequency order), then pronounceable made-up words up to `size`."""
    words: list[str] = []
    seen: set[str] = set()
    vocab_file = Path(resolve_model_path(MINILM_EMBEDDING_MODEL)) / "vocab.txt"
    if vocab_file.is_file():
        for line in vocab_file.read_text(encoding="utf-8").splitlines():
            word = line.strip()
            if word.isascii() and word.isalpha() and len(word) >= 2 and word not in seen:
                words.append(word)
                seen.add(word)
    onsets = [*"bcdfghjklmnprstvwz", "br", "ch", "cr", "dr", "fl", "gr", "pl", "sh", "st", "tr"]
    vowels = [*"aeiou", "ai", "ea", "io", "ou"]
    codas = ["", "", "n", "r", "s", "t", "l", "m", "nd", "st", "x"]
    syllables = [o + v + c for o in onsets for v in vowels for c in codas]
    while len(words) < size:
        draws = rng.integers(len(syllables), size=(size, 4)).tolist()
        lengths = rng.integers(2, 5, size=size).tolist()
        for row, length in zip(draws, lengths, strict=True):
            word = "".join(syllables[j] for j in row[:length])
            if word not in seen and len(words) < size:
                words.append(word)
                seen.add(word)
    return words[:size]


def _zipf_cdf(size: int, exponent: float = 1.0, shift: float = 2.7) -> npt.NDArray[np.float64]:
    """Zipf-Mandelbrot: p(rank) proportional to 1 / (rank + shift) ** exponent."""
    weights = 1.0 / (np.arange(1, size + 1, dtype=np.float64) + shift) ** exponent
    cdf: npt.NDArray[np.float64] = np.cumsum(weights)
    cdf /= cdf[-1]
    return cdf


@dataclass(frozen=True)
class _Document:
    record: DocumentRecord
    centroid: int


class _Corpus:
    """Deterministic synthetic documents and their chunks (text, dense and sparse vectors)."""

    def __init__(self, n_chunks: int, seed: int) -> None:
        self._rng = np.random.default_rng(seed)
        self._words = np.array(_vocabulary(self._rng, VOCABULARY), dtype=object)
        self._cdf = _zipf_cdf(len(self._words))
        centroids = self._rng.standard_normal((CENTROIDS, DIMENSION))
        self._centroids = centroids / np.linalg.norm(centroids, axis=1, keepdims=True)
        # Noise of norm ~1 around a unit centroid: cosine ~0.7 to it, ~0.5 between two
        # chunks of the same document.
        self._noise = 1.0 / np.sqrt(DIMENSION)
        self._sparse = Bm25Encoder(IngestSettings().bm25_avg_doc_tokens)
        n_docs = max(1, n_chunks // CHUNKS_PER_DOCUMENT)
        sizes = self._rng.lognormal(0.0, 0.8, n_docs)
        self.chunk_counts = 1 + self._rng.multinomial(n_chunks - n_docs, sizes / sizes.sum())
        self.n_chunks = n_chunks

    def _phrase(self, low: int, high: int, n: int) -> str:
        """`n` words of middling frequency (ranks low..high), for titles and headings."""
        return " ".join(str(w) for w in self._words[self._rng.integers(low, high, n)])

    def _text(self) -> str:
        n = int(np.clip(self._rng.normal(130, 35), 20, 260))
        ranks = np.searchsorted(self._cdf, self._rng.random(n))
        sentences, start = [], 0
        while start < n:
            end = min(n, start + int(self._rng.integers(8, 22)))
            sentence = " ".join(self._words[ranks[start:end]])
            sentences.append(sentence[:1].upper() + sentence[1:] + ".")
            start = end
        return " ".join(sentences)

    def documents(self) -> Iterator[tuple[_Document, list[Chunk]]]:
        rng = self._rng
        for i, count in enumerate(self.chunk_counts.tolist()):
            ext = str(rng.choice(_EXTENSIONS, p=_EXTENSION_WEIGHTS))
            department = _DEPARTMENTS[int(rng.integers(len(_DEPARTMENTS)))]
            topic = self._phrase(300, 3000, 1)
            name = self._phrase(300, 8000, 2).replace(" ", "-")
            source = f"{department}/{topic}/{2015 + int(rng.integers(11))}/{name}-{i}.{ext}"
            title = self._phrase(300, 8000, int(rng.integers(2, 6))).title()
            n_pages = max(1, round(count / 2.5)) if ext == "pdf" else 0
            if ext in ("pptx", "xlsx"):
                n_pages = count if ext == "pptx" else max(1, count // 8)
            record = DocumentRecord(
                id=document_id(COLLECTION, source),
                collection=COLLECTION,
                source=source,
                file_type=ext,
                title=title,
                pages=n_pages,
                chunks=count,
                sha256=hashlib.sha256(source.encode()).hexdigest(),
                size=count * 2400 + int(rng.integers(10_000)),
                ingested_at=INGESTED_AT,
                root="/srv/shared/corpus",
            )
            sections = [self._phrase(200, 5000, int(rng.integers(1, 4))).title() for _ in range(4)]
            chunks = []
            for k in range(count):
                text = self._text()
                section = sections[k * len(sections) // count]
                headings: tuple[str, ...] = (section,)
                pages: tuple[int, ...] = ()
                slide: int | None = None
                sheet: str | None = None
                if ext == "pdf":
                    first = 1 + k * n_pages // count
                    last = max(first, ((k + 1) * n_pages - 1) // count + 1)
                    pages = tuple(range(first, last + 1))
                elif ext == "pptx":
                    slide, headings = k + 1, ()
                elif ext == "xlsx":
                    sheet, headings = f"Sheet{1 + k * n_pages // count}", ()
                trail = " / ".join((title, *headings))
                chunks.append(
                    record.chunk(
                        k,
                        text,
                        f"{trail}\n{text}",
                        headings=headings,
                        pages=pages,
                        slide=slide,
                        sheet=sheet,
                    )
                )
            yield _Document(record, int(rng.integers(CENTROIDS))), chunks

    def dense(self, centroids: Sequence[int]) -> list[list[float]]:
        base = self._centroids[np.asarray(centroids)]
        vectors = base + self._rng.standard_normal(base.shape) * self._noise
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors.astype(np.float32).tolist()  # type: ignore[no-any-return]

    def sparse(self, chunks: Sequence[Chunk]) -> list[SparseVector]:
        return [self._sparse.encode_document(c.embed_text) for c in chunks]


# -- building ----------------------------------------------------------------------------------
def _build_params(n: int, seed: int) -> dict[str, Any]:
    return {
        "version": FORMAT_VERSION,
        "chunks": n,
        "seed": seed,
        "dimension": DIMENSION,
        "centroids": CENTROIDS,
        "vocabulary": VOCABULARY,
        "chunks_per_document": CHUNKS_PER_DOCUMENT,
    }


def _disk(path: Path) -> dict[str, float]:
    allocated = apparent = 0
    for p in path.rglob("*"):
        if p.is_file():
            st = p.stat()
            apparent += st.st_size
            allocated += st.st_blocks * 512
    return {"disk_mb": round(allocated / MB, 1), "disk_apparent_mb": round(apparent / MB, 1)}


def _read_marker(path: Path) -> dict[str, Any] | None:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _stored_chunks(root: Path) -> int:
    store = EdgeStore(root)
    try:
        return store.count_chunks(COLLECTION)
    except Exception:
        return -1
    finally:
        store.close()


def ensure_built(root: Path, n: int, seed: int, batch: int) -> dict[str, Any]:
    """The store of N chunks under `root`, built unless a matching one is cached there."""
    params = _build_params(n, seed)
    marker = _read_marker(root / BUILD_MARKER)
    if marker is not None and marker.get("params") == params and _stored_chunks(root) == n:
        print(f"[{n:,}] reusing {root} (built in {marker['build_s']:.0f} s)", file=sys.stderr)
        return {**marker, "reused": True, **_disk(root)}
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    started = time.perf_counter()
    corpus = _Corpus(n, seed)
    store = EdgeStore(root)
    store.ensure_collection(COLLECTION, CollectionSpec(DEFAULT_EMBEDDING_MODEL, DIMENSION))
    store_s = 0.0
    done, next_report = 0, 50_000
    pending: list[Chunk] = []
    pending_centroids: list[int] = []
    complete: list[DocumentRecord] = []  # their chunks are all in `pending` or stored

    def flush() -> None:
        nonlocal store_s, done, next_report
        dense = corpus.dense(pending_centroids)
        sparse = corpus.sparse(pending)
        t = time.perf_counter()
        store.upsert_chunks(COLLECTION, pending, dense, sparse)
        for record in complete:  # a record goes in once its chunks are stored, as in ingestion
            store.put_document(record)
        store_s += time.perf_counter() - t
        done += len(pending)
        pending.clear()
        pending_centroids.clear()
        complete.clear()
        if done >= next_report:
            elapsed = time.perf_counter() - started
            print(
                f"[{n:,}] {done:>9,} chunks  {elapsed:7.1f} s  {done / elapsed:7.0f} chunks/s  "
                f"(store {store_s:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
            next_report = done + 50_000

    for document, chunks in corpus.documents():
        pending.extend(chunks)
        pending_centroids.extend([document.centroid] * len(chunks))
        complete.append(document.record)
        if len(pending) >= batch:
            flush()
    if pending or complete:
        flush()
    t = time.perf_counter()
    store.close()  # flushes
    store_s += time.perf_counter() - t
    build_s = time.perf_counter() - started
    marker = {
        "params": params,
        "documents": len(corpus.chunk_counts),
        "build_s": round(build_s, 1),
        "store_s": round(store_s, 1),
        "generate_s": round(build_s - store_s, 1),
        "chunks_per_s": round(n / build_s),
    }
    (root / BUILD_MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")
    print(f"[{n:,}] built in {build_s:.0f} s (store {store_s:.0f} s)", file=sys.stderr)
    return {**marker, "reused": False, **_disk(root)}


def shard_info(shard: Any) -> dict[str, int]:
    info = shard.info()
    return {
        "segments": int(info.segments_count),
        "points": int(info.points_count),
        "indexed_vectors": int(info.indexed_vectors_count),
    }


def ensure_optimized(source: Path, target: Path) -> dict[str, Any]:
    """A copy of the store at `source` on which Qdrant Edge's optimizers have run."""
    import qdrant_edge as qe

    built = _read_marker(source / BUILD_MARKER)
    marker = _read_marker(target / OPTIMIZE_MARKER)
    if marker is not None and built is not None and marker.get("built") == built:
        print(f"reusing {target} (optimized in {marker['optimize_s']:.0f} s)", file=sys.stderr)
        return {**marker, "reused": True, **_disk(target)}
    if target.exists():
        shutil.rmtree(target)
    t = time.perf_counter()
    cp = shutil.which("cp")
    if cp:  # keeps the files' holes: Qdrant preallocates, a plain copy would fill them
        subprocess.run([cp, "-a", "--sparse=always", str(source), str(target)], check=True)
    else:
        shutil.copytree(source, target)
    copy_s = time.perf_counter() - t
    shard = qe.EdgeShard.load(str(target / COLLECTION))
    before = shard_info(shard)
    t = time.perf_counter()
    changed = shard.optimize()
    optimize_s = time.perf_counter() - t
    after = shard_info(shard)
    shard.flush()
    shard.close()
    marker = {
        "built": built,
        "copy_s": round(copy_s, 1),
        "optimize_s": round(optimize_s, 1),
        "changed": bool(changed),
        "before": before,
        "after": after,
    }
    (target / OPTIMIZE_MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")
    print(f"optimized {target} in {optimize_s:.0f} s: {before} -> {after}", file=sys.stderr)
    return {**marker, "reused": False, **_disk(target)}


# -- processes ---------------------------------------------------------------------------------
def in_fresh_process(fn: Callable[..., T], *args: Any) -> T:
    """Each phase in its own process: RSS starts clean and nothing leaks between sizes."""
    with ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        return pool.submit(fn, *args).result()
