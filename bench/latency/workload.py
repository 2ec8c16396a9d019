"""The latency bench's workload and its timing: the questions (varied, deterministic, from
templates) and one measurement of the real Retriever on a built store, run in a fresh
process. It returns the raw timings; `report` reduces them to percentiles."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import psutil

from bench.latency.harness import COLLECTION, MB, shard_info
from rag.adapters.embedder import SentenceTransformerEmbedder
from rag.adapters.qdrant.edge import EdgeStore
from rag.offline import enforce_offline
from rag.retrieval import Retriever
from rag.settings import EmbeddingSettings, IngestSettings, RetrievalSettings
from rag.sparse import Bm25Encoder

A = TypeVar("A")
R = TypeVar("R")


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
@dataclass
class Measurement:
    """One run of the retriever, unaggregated: every timing in ms, RSS in MB at each stage,
    and what the machine was doing around it."""

    threads: str
    torch_threads: int
    questions: int
    shard: dict[str, int]
    open_ms: float
    rss_start: float
    rss_model: float
    rss_loaded: float
    rss_end: float
    latency: list[float]  # Retrieval.latency_ms
    wall: list[float]  # around retriever.retrieve()
    embed: list[float]
    encode_sparse: list[float]
    dense_search: list[float]
    sparse_search: list[float]
    load_before: float
    load_after: float
    cpu_loop_s: float  # CPU seconds of this process in the retrieve loop
    wall_loop_s: float
    passages: list[int]
    weak: int


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


def measure(root: Path, threads: str, n_questions: int, seed: int) -> Measurement:
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
    info = shard_info(shard)
    rss_end = _rss_mb()
    load_after = os.getloadavg()[0]
    store.close()
    return Measurement(
        threads=threads,
        torch_threads=torch.get_num_threads(),
        questions=len(asked),
        shard=info,
        open_ms=open_ms,
        rss_start=rss_start,
        rss_model=rss_model,
        rss_loaded=rss_loaded,
        rss_end=rss_end,
        latency=latency,
        wall=wall,
        embed=embed,
        encode_sparse=encode_sparse,
        dense_search=dense_search,
        sparse_search=sparse_search,
        load_before=load_before,
        load_after=load_after,
        cpu_loop_s=cpu_loop,
        wall_loop_s=wall_loop,
        passages=passages,
        weak=weak,
    )
