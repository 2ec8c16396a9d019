"""The server bench's results: each level's samples reduced to counts, throughput and
percentiles (one row), the JSON report written after every row, and the table and notes
printed at the end."""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.environment import environment, percentiles
from bench.server.harness import REQUESTS_PER_MINUTE
from bench.server.workload import PROBE_INTERVAL_S, LevelRun


# -- aggregation -------------------------------------------------------------------------------
def _stats(values: Sequence[float]) -> dict[str, float] | None:
    return percentiles(values, digits=1) if values else None


def level_row(run: LevelRun) -> dict[str, Any]:
    """One level's row of the report."""
    samples = run.samples
    elapsed = run.after.at - run.before.at
    ok = [s for s in samples if s.error is None]
    errors = Counter(s.error for s in samples if s.error is not None)
    load_before, load_after = run.load_average
    return {
        "endpoint": run.endpoint,
        "concurrency": run.concurrency,
        "seconds": round(elapsed, 2),
        "requests": len(samples),
        "errors": sum(errors.values()),
        "error_messages": dict(errors.most_common(5)),
        "throughput_rps": round(len(ok) / elapsed, 2),
        "latency_ms": _stats([s.latency_ms for s in ok]),
        "server_retrieval_ms": _stats([s.server_ms for s in ok if s.server_ms is not None]),
        "ttfb_ms": _stats([s.ttfb_ms for s in ok if s.ttfb_ms is not None]),
        "ttft_ms": _stats([s.ttft_ms for s in ok if s.ttft_ms is not None]),
        "tail_ms": _stats([s.tail_ms for s in ok if s.tail_ms is not None]),
        "mean_tokens": round(float(np.mean([s.tokens for s in ok])), 1) if ok else None,
        "outcomes": dict(Counter(s.outcome for s in ok).most_common()),
        "healthz_ms": _stats(run.probes),
        "healthz_errors": run.probe_errors,
        "cpu_cores": run.after.cores_since(run.before),
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "rss_mb": {"end": run.rss_end_mb, "peak": max(run.rss_peak_mb, run.rss_end_mb)},
        "latencies_ms": [round(s.latency_ms, 1) for s in samples],
    }


# -- the JSON file -----------------------------------------------------------------------------
def new_report(args: argparse.Namespace, questions_from: str, n_questions: int) -> dict[str, Any]:
    """The report before any run: the machine, the questions and the settings."""
    return {
        "environment": environment("uvicorn", "fastapi", "httpx"),
        "collection": args.collection,
        "questions": {"from": questions_from, "count": n_questions},
        "settings": {
            "CITADEL_SERVER__REQUESTS_PER_MINUTE": REQUESTS_PER_MINUTE,
            "OPENBLAS_NUM_THREADS": "1",
            "seconds_per_level": args.seconds,
            "fake_model": {
                "tokens": args.tokens,
                "ms_per_token": args.token_ms,
                "first_token_ms": args.first_token_ms,
            },
        },
        "servers": {},
        "runs": [],
    }


def write(report: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(report, indent=2), encoding="utf-8")


# -- printing ----------------------------------------------------------------------------------
def _cell(stats: dict[str, float] | None, key: str) -> str:
    return f"{stats[key]:.0f}" if stats else "-"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'endpoint':<8} {'conc':>4} {'reqs':>6} {'err':>4} {'req/s':>7} {'p50':>6} {'p95':>6} "
        f"{'p99':>6} {'max':>6} {'ttfb50':>7} {'ttfb95':>7} {'hz50':>5} {'hz99':>5} "
        f"{'srvCPU':>6} {'bnchCPU':>7} {'boxCPU':>6} {'RSS MB':>7} {'peak':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lat, cpu = r["latency_ms"], r["cpu_cores"]
        lines.append(
            f"{r['endpoint']:<8} {r['concurrency']:>4} {r['requests']:>6} {r['errors']:>4} "
            f"{r['throughput_rps']:>7.1f} {_cell(lat, 'p50'):>6} {_cell(lat, 'p95'):>6} "
            f"{_cell(lat, 'p99'):>6} {_cell(lat, 'max'):>6} {_cell(r['ttfb_ms'], 'p50'):>7} "
            f"{_cell(r['ttfb_ms'], 'p95'):>7} {_cell(r['healthz_ms'], 'p50'):>5} "
            f"{_cell(r['healthz_ms'], 'p99'):>5} {cpu['server']:>6.2f} {cpu['bench']:>7.2f} "
            f"{cpu['machine']:>6.2f} {r['rss_mb']['end']:>7.0f} {r['rss_mb']['peak']:>6.0f}"
        )
    return "\n".join(lines)


def notes(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in rows:
        extra = []
        if r["outcomes"]:
            extra.append(", ".join(f"{k} {v}" for k, v in r["outcomes"].items()))
        if r["endpoint"] == "stream" and r["ttft_ms"]:
            extra.append(f"first token p50 {r['ttft_ms']['p50']:.0f} ms")
            tail = r["tail_ms"]
            extra.append(f"last token to end p50/p95 {tail['p50']:.0f}/{tail['p95']:.0f} ms")
            extra.append(f"{r['mean_tokens']} content chunks per stream")
        if r["server_retrieval_ms"]:
            extra.append(f"server-side retrieval p50 {r['server_retrieval_ms']['p50']:.0f} ms")
        if "fake_model" in r["cpu_cores"]:
            extra.append(f"fake model CPU {r['cpu_cores']['fake_model']:.2f}")
        extra.append(f"load avg {r['load_average'][0]} -> {r['load_average'][1]}")
        out.append(f"{r['endpoint']:<6} x{r['concurrency']:<3} " + "; ".join(extra))
        for message, count in r["error_messages"].items():
            out.append(f"    {count} x {message}")
    return out


def print_summary(
    report: dict[str, Any], args: argparse.Namespace, endpoints: Sequence[str]
) -> None:
    """The collection, the table of every row, the notes, the servers, and how to read them."""
    rows: list[dict[str, Any]] = report["runs"]
    floor = (args.tokens - 1) * args.token_ms + args.first_token_ms
    servers: list[dict[str, Any]] = list(report["servers"].values())
    collection = (servers[0].get("collection") if servers else None) or {}
    print(
        f"collection {args.collection}: {collection.get('documents')} documents, "
        f"{collection.get('chunks')} chunks\n"
    )
    print(table(rows))
    print()
    for line in notes(rows):
        print(line)
    print()
    for name, info in report["servers"].items():
        print(
            f"server ({name}): started in {info['startup_s']} s; RSS {info['rss_mb_started']} MB "
            f"after start, {info['rss_mb_end']} MB at the end; "
            f"{len(info['log_problems'])} error/warning lines in its log"
        )
        for line in info["log_problems"][:5]:
            print(f"    {line[:160]}")
    print(
        f"\nlatencies in ms (client side, whole response); ttfb: first byte of a stream's body; "
        f"hz: /healthz probe every {PROBE_INTERVAL_S} s during the load; CPU in cores "
        f"(server process, this load generator, whole machine of {os.cpu_count()} CPUs)."
    )
    if "stream" in endpoints:
        print(
            f"stream: the fake model takes {floor:.0f} ms per answer ({args.tokens} tokens, "
            f"{args.token_ms:g} ms apart): the rest of a stream's latency is the server's."
        )
    questions = report["questions"]
    print(
        f"questions: {questions['from']} ({questions['count']}); per-user rate limit raised to "
        f"{REQUESTS_PER_MINUTE:,}/min (CITADEL_SERVER__REQUESTS_PER_MINUTE) for the bench."
    )
    print(f"\nwritten to {args.out}")
