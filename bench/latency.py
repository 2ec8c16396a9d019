"""Retrieval latency at scale: question in, ranked passages out (no LLM), on Qdrant Edge.

    python -m bench.latency [--sizes 2000,100000,1000000] [--queries 200] [--data DIR]
                            [--out bench/results/latency.json] [--index plain,optimized]
                            [--torch-threads 1,default]

For each size N:

1. build (or reuse, when `DIR/<N>` already holds the same N chunks) an EdgeStore collection
   of N synthetic chunks: clustered unit dense vectors (1,000 centroids + noise, one
   centroid per document), BM25 sparse vectors of text drawn from a Zipf-distributed
   vocabulary (real English words from the packaged model's vocabulary first, then
   made-up words), payloads from `DocumentRecord.chunk` over ~N/20 documents;
2. `plain`: measure the store as ingestion leaves it (Qdrant Edge runs no background
   optimizer, so everything sits in one appendable segment: exact dense search);
3. `optimized`: a copy at `DIR/<N>-optimized` on which `EdgeShard.optimize()` has run
   (HNSW index, immutable sparse index), measured the same way.

Each measurement runs in a fresh process (clean RSS) with the real Retriever: the packaged
sentence-transformers embedder, Bm25Encoder and default RetrievalSettings; once with torch
limited to one thread and once with torch's default. Besides `Retrieval.latency_ms` it
times the embedding of the question alone and the dense and sparse store searches alone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
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
import psutil

from bench.environment import environment, percentiles
from rag.embedder import SentenceTransformerEmbedder, resolve_model_path
from rag.ids import document_id
from rag.offline import enforce_offline
from rag.retrieval import Retriever
from rag.settings import (
    PACKAGED_EMBEDDING_MODEL,
    EmbeddingSettings,
    IngestSettings,
    RetrievalSettings,
)
from rag.sparse import Bm25Encoder
from rag.stores.edge import EdgeStore
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
A = TypeVar("A")
R = TypeVar("R")

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
    vocab_file = Path(resolve_model_path(PACKAGED_EMBEDDING_MODEL)) / "vocab.txt"
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
    store.ensure_collection(COLLECTION, CollectionSpec(PACKAGED_EMBEDDING_MODEL, DIMENSION))
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


def _shard_info(shard: Any) -> dict[str, int]:
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
    before = _shard_info(shard)
    t = time.perf_counter()
    changed = shard.optimize()
    optimize_s = time.perf_counter() - t
    after = _shard_info(shard)
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


# -- questions ---------------------------------------------------------------------------------
_TEMPLATES = (
    "How do I {verb} the {thing} in {system}?",
    "What is the procedure to {verb} a {thing} for the {team} team?",
    "Where can I find the {doc} about {topic}?",
    "Who approves {doc} requests in {team}?",
    "What does the {year} {doc} say about {topic}?",
    "Why does {system} fail when I try to {verb} the {thing}?",
    "When is the deadline for the quarterly {doc}?",
    "Which {thing} should we use for {topic}?",
    "Can you summarise the {topic} policy for {team}?",
    "What are the requirements for {topic} in {year}?",
    "Is it allowed to {verb} a {thing} without approval from {team}?",
    "What changed in the {topic} rules between {year} and the previous version?",
    "Explain the difference between the {thing} and the {doc}.",
    "How long does it take to {verb} a {thing}?",
    "What is our policy on {topic}?",
    "List the steps to {verb} the {thing} after an incident.",
    "Who is responsible for {topic} at the {team} department?",
    "How much does the {thing} cost per year?",
    "What happens if the {thing} is not renewed before the end of {year}?",
    "{topic} guidelines for new employees",
)
_SLOTS: dict[str, tuple[str, ...]] = {
    "verb": (
        "configure",
        "reset",
        "renew",
        "request",
        "cancel",
        "update",
        "install",
        "report",
        "submit",
        "approve",
        "migrate",
        "back up",
        "restore",
        "audit",
    ),
    "thing": (
        "VPN certificate",
        "expense report",
        "purchase order",
        "laptop",
        "password",
        "software licence",
        "vendor contract",
        "server",
        "database backup",
        "travel booking",
        "access badge",
        "firewall rule",
        "invoice",
        "budget forecast",
        "mailbox",
    ),
    "system": (
        "the HR portal",
        "SAP",
        "the intranet",
        "Outlook",
        "the ticketing system",
        "Debian",
        "the payroll tool",
        "Active Directory",
        "the CRM",
    ),
    "team": (
        "finance",
        "legal",
        "IT",
        "human resources",
        "procurement",
        "sales",
        "security",
        "operations",
    ),
    "doc": (
        "handbook",
        "annual report",
        "security policy",
        "travel policy",
        "onboarding guide",
        "audit report",
        "code of conduct",
        "release notes",
        "service agreement",
    ),
    "topic": (
        "remote work",
        "parental leave",
        "data retention",
        "expense reimbursement",
        "password rotation",
        "overtime",
        "GDPR compliance",
        "incident response",
        "business travel",
        "disaster recovery",
        "sick leave",
        "procurement thresholds",
        "encryption",
        "performance reviews",
    ),
    "year": ("2019", "2021", "2022", "2023", "2024"),
}


def questions(n: int, seed: int) -> list[str]:
    """`n` distinct, varied English questions from templates (deterministic)."""
    rng = np.random.default_rng(seed)
    found: dict[str, None] = {}
    for _ in range(n * 1000):
        if len(found) == n:
            break
        template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
        values = {k: str(v[int(rng.integers(len(v)))]) for k, v in _SLOTS.items()}
        question = template.format(**values)
        found[question[:1].upper() + question[1:]] = None
    return list(found)


# -- measuring ---------------------------------------------------------------------------------
def _stats(values_ms: Sequence[float]) -> dict[str, float]:
    return percentiles(values_ms, digits=2)


def _rss_mb() -> float:
    return round(psutil.Process().memory_info().rss / MB, 1)


def _timed(fn: Callable[[A], R], inputs: Sequence[A]) -> tuple[list[float], list[R]]:
    """Milliseconds of each call `fn(x)` for x in `inputs`, and the results."""
    times, results = [], []
    for x in inputs:
        t = time.perf_counter()
        results.append(fn(x))
        times.append((time.perf_counter() - t) * 1000)
    return times, results


def measure(root: Path, threads: str, n_questions: int, seed: int) -> dict[str, Any]:
    """Latencies of the real Retriever on the store under `root` (run in a fresh process)."""
    enforce_offline()
    import torch

    embedder = SentenceTransformerEmbedder(EmbeddingSettings())
    if threads != "default":
        embedder.use_threads(int(threads))
    rss_start = _rss_mb()
    embedder.embed_query("load the model")
    rss_model = _rss_mb()
    settings = RetrievalSettings()
    store = EdgeStore(root)
    sparse = Bm25Encoder(IngestSettings().bm25_avg_doc_tokens)
    retriever = Retriever(store, embedder, sparse, settings)
    collections = [COLLECTION]
    t = time.perf_counter()
    store.count_chunks(COLLECTION)  # opens the shard
    open_ms = (time.perf_counter() - t) * 1000
    for question in questions(20, seed + 1):  # warm-up: other questions
        retriever.retrieve(question, collections)
    rss_loaded = _rss_mb()

    asked = questions(n_questions, seed)
    load_before = os.getloadavg()[0]
    cpu_before, wall_before = psutil.Process().cpu_times(), time.perf_counter()
    latency, wall, passages, weak = [], [], [], 0
    for question in asked:
        t = time.perf_counter()
        result = retriever.retrieve(question, collections)
        wall.append((time.perf_counter() - t) * 1000)
        latency.append(result.latency_ms)
        passages.append(len(result.passages))
        weak += result.weak_evidence
    cpu_after, wall_loop = psutil.Process().cpu_times(), time.perf_counter() - wall_before
    cpu_loop = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    limit = settings.candidates
    embed, vectors = _timed(embedder.embed_query, asked)
    encode_sparse, sparse_queries = _timed(sparse.encode_query, asked)
    dense_search, _ = _timed(lambda v: store.search(collections, v, limit), vectors)
    sparse_search, _ = _timed(lambda s: store.search(collections, s, limit), sparse_queries)
    shard = store._shard(COLLECTION)  # the bench may look inside the adapter
    info = _shard_info(shard)
    rss_end = _rss_mb()
    load_after = os.getloadavg()[0]
    store.close()
    return {
        "threads": threads,
        "torch_threads": torch.get_num_threads(),
        "questions": len(asked),
        "shard": info,
        "open_ms": round(open_ms, 1),
        "rss_mb": {
            "start": rss_start,
            "model": rss_model,
            "loaded": rss_loaded,
            "end": rss_end,
            "store": round(rss_loaded - rss_model, 1),
        },
        "latency_ms": _stats(latency),
        "wall_ms": _stats(wall),
        "embed_query_ms": _stats(embed),
        "encode_sparse_ms": _stats(encode_sparse),
        "dense_search_ms": _stats(dense_search),
        "sparse_search_ms": _stats(sparse_search),
        # Other processes on the machine inflate latencies: the 1-minute load average
        # around the run, and the CPU this process got per second of the retrieve loop.
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "retrieve_cpu_per_wall": round(cpu_loop / wall_loop, 2),
        "mean_passages": round(float(np.mean(passages)), 2),
        "weak_evidence_share": round(weak / len(asked), 3),
    }


# -- driver ------------------------------------------------------------------------------------
def _in_fresh_process(fn: Callable[..., T], *args: Any) -> T:
    """Each phase in its own process: RSS starts clean and nothing leaks between sizes."""
    with ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        return pool.submit(fn, *args).result()


def _size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    for suffix, factor in (("k", 1_000), ("m", 1_000_000)):
        if text.endswith(suffix):
            return int(float(text[:-1]) * factor)
    return int(text)


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'size':>9} {'index':>9} {'thr':>4} {'build s':>8} {'opt s':>6} {'disk MB':>8} "
        f"{'RSS MB':>7} {'p50':>7} {'p95':>7} {'p99':>7} {'mean':>7} {'embed50':>8} "
        f"{'dense50':>8} {'sparse50':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        m = r["measure"]
        lat = m["latency_ms"]
        opt = r.get("optimize")
        opt_s = f"{opt['optimize_s']:.1f}" if opt else "-"
        lines.append(
            f"{r['size']:>9,} {r['index']:>9} {m['torch_threads']:>4} "
            f"{r['build']['build_s']:>8.1f} "
            f"{opt_s:>6} {r['disk_mb']:>8.1f} "
            f"{m['rss_mb']['loaded']:>7.0f} {lat['p50']:>7.1f} {lat['p95']:>7.1f} "
            f"{lat['p99']:>7.1f} {lat['mean']:>7.1f} {m['embed_query_ms']['p50']:>8.1f} "
            f"{m['dense_search_ms']['p50']:>8.1f} {m['sparse_search_ms']['p50']:>9.1f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="2000,100000,1000000", help="chunk counts (1k, 1M)")
    parser.add_argument("--queries", type=int, default=200, help="measured questions per run")
    parser.add_argument("--data", type=Path, default=Path("data/bench-latency"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/latency.json"))
    parser.add_argument(
        "--index", default="plain,optimized", help="plain (as ingested), optimized, or both"
    )
    parser.add_argument(
        "--torch-threads", default="1,default", help="'1' (set_num_threads(1)), 'default', both"
    )
    parser.add_argument("--batch", type=int, default=1000, help="chunks per upsert")
    parser.add_argument("--seed", type=int, default=20250314)
    args = parser.parse_args(argv)
    sizes = [_size(s) for s in args.sizes.split(",") if s.strip()]
    indexes = [s.strip() for s in args.index.split(",") if s.strip()]
    thread_modes = [s.strip() for s in args.torch_threads.split(",") if s.strip()]
    if not sizes or min(sizes) < 1 or not set(indexes) <= {"plain", "optimized"}:
        parser.error("sizes must be positive; --index takes plain and/or optimized")
    # Children inherit these: one BLAS thread so numpy does not fight torch for the cores.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    enforce_offline()

    report: dict[str, Any] = {
        "environment": environment("qdrant-edge-py", "torch", "sentence-transformers"),
        "retrieval_settings": RetrievalSettings().model_dump(),
        "embedding_model": PACKAGED_EMBEDDING_MODEL,
        "questions": args.queries,
        "runs": [],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for n in sizes:
        root = args.data / str(n)
        build = _in_fresh_process(ensure_built, root, n, args.seed, args.batch)
        for index in indexes:
            path, optimize = root, None
            if index == "optimized":
                path = args.data / f"{n}-optimized"
                optimize = _in_fresh_process(ensure_optimized, root, path)
            disk = optimize["disk_mb"] if optimize else build["disk_mb"]
            for threads in thread_modes:
                print(f"[{n:,}] measuring {index} store, torch threads {threads}", file=sys.stderr)
                result = _in_fresh_process(measure, path, threads, args.queries, args.seed)
                row = {
                    "size": n,
                    "index": index,
                    "build": build,
                    "optimize": optimize,
                    "disk_mb": disk,
                    "measure": result,
                }
                rows.append(row)
                report["runs"] = rows
                args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
                print(_table([row]).splitlines()[-1], file=sys.stderr, flush=True)
    print(_table(rows))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
