"""`python -m bench.latency`: the command line, and the run: for each size, the store built
(or reused), optimized if asked, then measured once per index and torch thread mode, each
phase in a fresh process; each row written and printed as it ends, the table at the end."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bench.latency
from bench.latency import harness, report, workload
from rag.offline import enforce_offline


def _size(text: str) -> int:
    text = text.strip().lower().replace("_", "")
    for suffix, factor in (("k", 1_000), ("m", 1_000_000)):
        if text.endswith(suffix):
            return int(float(text[:-1]) * factor)
    return int(text)


def main(argv: Sequence[str] | None = None) -> None:
    # prog: the usage line reads as it did when this was bench/latency.py.
    parser = argparse.ArgumentParser(
        prog="latency.py", description=(bench.latency.__doc__ or "").splitlines()[0]
    )
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

    results = report.new_report(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for n in sizes:
        root = args.data / str(n)
        build = harness.in_fresh_process(harness.ensure_built, root, n, args.seed, args.batch)
        for index in indexes:
            path, optimize = root, None
            if index == "optimized":
                path = args.data / f"{n}-optimized"
                optimize = harness.in_fresh_process(harness.ensure_optimized, root, path)
            disk = optimize["disk_mb"] if optimize else build["disk_mb"]
            for threads in thread_modes:
                print(f"[{n:,}] measuring {index} store, torch threads {threads}", file=sys.stderr)
                measured = harness.in_fresh_process(
                    workload.measure, path, threads, args.queries, args.seed
                )
                row = {
                    "size": n,
                    "index": index,
                    "build": build,
                    "optimize": optimize,
                    "disk_mb": disk,
                    "measure": report.summary(measured),
                }
                rows.append(row)
                results["runs"] = rows
                report.write(results, args.out)
                print(report.table([row]).splitlines()[-1], file=sys.stderr, flush=True)
    print(report.table(rows))
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
