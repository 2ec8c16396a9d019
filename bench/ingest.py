"""Ingestion benchmark: throughput, memory and where the time goes, against the embedder alone.

    python -m bench.ingest CORPUS [--out bench/results/ingest.json]

1. `citadel ingest CORPUS` into an empty data directory, in a subprocess whose process tree
   (CLI + parser workers) is sampled for peak RSS;
2. the same command again on the unchanged corpus (goal: < 5% of the first run);
3. the very same chunks, re-parsed and re-chunked, embedded in one standalone call
   (goal: the full ingestion takes at most 1.25x this time).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil


def _run_cli(data_dir: Path, corpus: Path) -> tuple[dict[str, Any], float, dict[str, int]]:
    """Run an ingestion; return its JSON report, wall time and peak RSS (bytes)."""
    env = {**os.environ, "CITADEL_DATA_DIR": str(data_dir)}
    started = time.monotonic()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ui",
            "ingest",
            str(corpus),
            "--collection",
            "bench",
            "--json",
            "-q",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    peaks = {"main": 0, "parsers": 0, "total": 0}
    done = threading.Event()

    def sample() -> None:
        parent = psutil.Process(process.pid)
        while not done.is_set():
            try:
                main = parent.memory_info().rss
                children = sum(c.memory_info().rss for c in parent.children(recursive=True))
            except psutil.Error:
                break
            peaks["main"] = max(peaks["main"], main)
            peaks["parsers"] = max(peaks["parsers"], children)
            peaks["total"] = max(peaks["total"], main + children)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    wall = time.monotonic() - started
    done.set()
    sampler.join()
    if process.returncode not in (0, 1):
        raise SystemExit(f"ingestion failed:\n{err}")
    return json.loads(out), wall, peaks


def _standalone_embedding(corpus: Path) -> dict[str, float]:
    """Parse and chunk the corpus like ingestion does, then time the embedder alone."""
    from ingest.chunk import document_title
    from ingest.discover import discover
    from ingest.ocr import ocr_options
    from ingest.pipeline import chunker_for
    from ingest.workers import ParseJob, ParserPool
    from rag.offline import enforce_offline
    from rag.settings import Settings
    from rag.wiring import build_embedder

    enforce_offline()
    settings = Settings()
    # The embedder (and backend) and the chunk size ingestion itself uses: the same chunks.
    embedder = build_embedder(settings.embedding)
    chunker = chunker_for(embedder, settings.ingest)
    found = discover([corpus], int(settings.ingest.max_file_mb * 2**20))
    jobs = [ParseJob(i, str(c.path), c.format.name) for i, c in enumerate(found.candidates)]
    texts: list[str] = []
    with ParserPool(
        1,
        settings.ingest.parse_timeout_s,
        settings.ingest.parse_memory_mb,
        {j.file_type for j in jobs},
        ocr_options(settings.ingest),
    ) as pool:
        parse_started = time.monotonic()
        for outcome in pool.parse_all(jobs):
            candidate = found.candidates[outcome.job.key]
            elements = outcome.elements or []
            title = document_title(
                elements, candidate.format.name, Path(candidate.source).stem.replace("_", " ")
            )
            texts += [d.embed_text for d in chunker.chunk(elements, candidate.format.name, title)]
        parse_seconds = time.monotonic() - parse_started
    embedder.embed_documents(texts[:16])  # warm-up: the first batches pay one-off costs
    started = time.monotonic()
    embedder.embed_documents(texts)
    seconds = time.monotonic() - started
    return {
        "chunks": len(texts),
        "seconds": seconds,
        "chunks_per_s": len(texts) / seconds,
        "parse_and_chunk_seconds_one_process": parse_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--out", type=Path, default=Path("bench/results/ingest.json"))
    args = parser.parse_args()
    corpus = args.corpus.resolve()
    with tempfile.TemporaryDirectory(prefix="citadel-bench-") as tmp:
        first, first_wall, peaks = _run_cli(Path(tmp), corpus)
        again, again_wall, _ = _run_cli(Path(tmp), corpus)
    embed = _standalone_embedding(corpus)

    files = first["files"]
    pdf_pages = sum(f["pages"] for f in files if f["file_type"] == "pdf" and f["status"] == "added")
    pdf_files = [f for f in files if f["file_type"] == "pdf"]
    stages = first["stage_seconds"]
    accounted = sum(v for k, v in stages.items() if k != "parse_cpu")
    shares = {
        k: stages[k] / first_wall for k in ("discover", "parse_wait", "chunk", "embed", "store")
    }
    shares["startup_and_other"] = max(0.0, 1 - accounted / first_wall)
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "corpus": {
            "path": str(corpus),
            "files": len(files),
            "pdf_files": len(pdf_files),
            "pdf_pages": pdf_pages,
        },
        "first_run": {
            "wall_s": round(first_wall, 1),
            "counts": first["counts"],
            "chunks": first["chunks_written"],
            "truncated_chunks": first["truncated_chunks"],
            "files_per_s": round(len(files) / first_wall, 2),
            "pdf_pages_per_s": round(pdf_pages / first_wall, 2),
            "chunks_per_s": round(first["chunks_written"] / first_wall, 2),
            "wall_share": {k: round(v, 3) for k, v in shares.items()},
            "parser_process_cpu_s": round(stages["parse_cpu"], 1),
            "peak_rss_mib": {k: v // 2**20 for k, v in peaks.items()},
        },
        "unchanged_rerun": {
            "wall_s": round(again_wall, 1),
            "counts": again["counts"],
            "ratio_to_first_run": round(again_wall / first_wall, 3),
        },
        "embedder_standalone": {k: round(v, 2) for k, v in embed.items()},
        "ingestion_over_embedder": round(first_wall / embed["seconds"], 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
