"""The latency bench's results: a measurement's timings reduced to percentiles, the JSON
report (the machine, the settings, one row per store, index and thread mode) written after
every row, and the table."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.environment import environment, percentiles
from bench.latency.workload import Measurement
from rag.settings import DEFAULT_EMBEDDING_MODEL, RetrievalSettings


# -- aggregation -------------------------------------------------------------------------------
def _stats(values_ms: Sequence[float]) -> dict[str, float]:
    return percentiles(values_ms, digits=2)


def summary(m: Measurement) -> dict[str, Any]:
    """A row's "measure": percentiles of every timing, RSS, load and CPU share."""
    return {
        "threads": m.threads,
        "torch_threads": m.torch_threads,
        "questions": m.questions,
        "shard": m.shard,
        "open_ms": round(m.open_ms, 1),
        "rss_mb": {
            "start": m.rss_start,
            "model": m.rss_model,
            "loaded": m.rss_loaded,
            "end": m.rss_end,
            "store": round(m.rss_loaded - m.rss_model, 1),
        },
        "latency_ms": _stats(m.latency),
        "wall_ms": _stats(m.wall),
        "embed_query_ms": _stats(m.embed),
        "encode_sparse_ms": _stats(m.encode_sparse),
        "dense_search_ms": _stats(m.dense_search),
        "sparse_search_ms": _stats(m.sparse_search),
        # Other processes on the machine inflate latencies: the 1-minute load average
        # around the run, and the CPU this process got per second of the retrieve loop.
        "load_average": [round(m.load_before, 2), round(m.load_after, 2)],
        "retrieve_cpu_per_wall": round(m.cpu_loop_s / m.wall_loop_s, 2),
        "mean_passages": round(float(np.mean(m.passages)), 2),
        "weak_evidence_share": round(m.weak / m.questions, 3),
    }


# -- the JSON file -----------------------------------------------------------------------------
def new_report(args: argparse.Namespace) -> dict[str, Any]:
    """The report before any run: the machine, the retrieval settings, the model."""
    return {
        "environment": environment("qdrant-edge-py", "torch", "sentence-transformers"),
        "retrieval_settings": RetrievalSettings().model_dump(),
        "embedding_model": DEFAULT_EMBEDDING_MODEL,
        "questions": args.queries,
        "runs": [],
    }


def write(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2), encoding="utf-8")


# -- printing ----------------------------------------------------------------------------------
def table(rows: list[dict[str, Any]]) -> str:
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
