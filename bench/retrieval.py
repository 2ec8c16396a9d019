"""Retrieval benchmark: Citadel against the stock llama-index recipe, same corpus, same
embedder, same questions, scored by the same code (`rag.evaluation`).

    python -m bench.retrieval CORPUS QA.jsonl [MORE_QA.jsonl ...] [--data DIR]
        [--collection NAME] [--out bench/results/retrieval.json] [--no-baseline]

Citadel's side is `citadel ingest CORPUS` (skipped when the collection is up to date) then
the retrieval of `citadel eval --no-generate`; the baseline is `bench.baseline`. Several
question sets over the same corpus (the handbook's English and French sets) share one
ingestion and one baseline index, and each set is reported on its own: with one set the
output is the table alone, with several each table comes under a `== set: FILE` line and
`--out` holds `{"sets": {FILE: ...}}`. `--no-baseline` scores Citadel alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.baseline import stock_llamaindex_results
from rag import evaluation
from rag.settings import load_settings
from rag.wiring import Services, build_embedder

FIGURES = (
    "hit@1",
    "hit@3",
    "hit@5",
    "hit@10",
    "all_hit@5",
    "mrr@10",
    "page_accuracy",
    "refusal_recall",
    "false_refusals",
    "latency_p50_ms",
    "latency_p95_ms",
)


def citadel_outcomes(
    corpus: Path, items: list[evaluation.QaItem], data: Path, collection: str
) -> dict[str, evaluation.Outcome]:
    env = {**os.environ, "CITADEL_DATA_DIR": str(data)}
    subprocess.run(
        [sys.executable, "-m", "ui", "ingest", str(corpus), "-c", collection, "-q"],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    services = Services(load_settings(None, {"data_dir": data}))
    try:
        docs = services.store.documents(collection)
        to_source = evaluation.source_mapper([(d.id, d.root, d.source) for d in docs], corpus)
        services.retriever.retrieve("warm-up", [collection])
        return evaluation.evaluate(items, services.retriever, [collection], to_source)
    finally:
        services.close()


def baseline_outcomes(
    corpus: Path, items: list[evaluation.QaItem]
) -> tuple[dict[str, evaluation.Outcome], dict[str, Any]]:
    questions = [{"id": i.id, "question": i.question} for i in items]
    embedder = build_embedder(load_settings().embedding)  # Citadel's: the recipe is compared
    results, info = stock_llamaindex_results(corpus, questions, embedder, top_k=10)
    return {r["id"]: evaluation.Outcome.from_json(r) for r in results}, info


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def print_side_by_side(reports: dict[str, dict[str, Any]]) -> None:
    names = list(reports)
    sections: list[tuple[str, dict[str, dict[str, Any]]]] = [
        ("all", {n: reports[n]["overall"] for n in names})
    ]
    for key, label in (("by_kind", "kind"), ("by_group", "source")):
        for group in reports[names[0]][key]:
            sections.append((f"{label}: {group}", {n: reports[n][key][group] for n in names}))
    header = f"{'set':<22}{'system':<12}" + "".join(f"{f:>14}" for f in FIGURES)
    print(header)
    for label, per_system in sections:
        for n in names:
            row = per_system[n]
            print(f"{label:<22}{n:<12}" + "".join(f"{_cell(row.get(f)):>14}" for f in FIGURES))


def run_set(
    items: list[evaluation.QaItem],
    ours: dict[str, evaluation.Outcome],
    theirs: dict[str, evaluation.Outcome] | None,
) -> dict[str, Any]:
    """Print one question set's side-by-side table and failures; its figures as JSON."""
    reports = {"citadel": evaluation.report(items, ours)}
    if theirs is not None:
        reports["llama-index"] = evaluation.report(items, theirs)
    print_side_by_side(reports)
    for name, rep in reports.items():
        for failure in rep["failures"]:
            print(f"{name}: {failure['id']} ({failure['kind']}): {'; '.join(failure['problems'])}")
    return {"reports": reports, "refusal_sweep": evaluation.refusal_sweep(items, ours)}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.retrieval")
    parser.add_argument("corpus", type=Path)
    parser.add_argument("qa", type=Path, nargs="+", help="question sets over CORPUS")
    parser.add_argument("--data", type=Path, default=Path("data/bench-retrieval"))
    parser.add_argument("--collection", default="bench")
    parser.add_argument("--out", type=Path, default=Path("bench/results/retrieval.json"))
    parser.add_argument("--no-baseline", action="store_true", help="score Citadel alone")
    args = parser.parse_args()
    sets = {str(path): evaluation.load_questions(path) for path in args.qa}
    # One pass over every question: ids are unique across the sets.
    everything = [item for items in sets.values() for item in items]
    ids = [item.id for item in everything]
    if len(set(ids)) != len(ids):
        parser.error("the question sets share question ids")

    started = time.monotonic()
    ours = citadel_outcomes(args.corpus.resolve(), everything, args.data, args.collection)
    citadel_seconds = time.monotonic() - started
    theirs: dict[str, evaluation.Outcome] | None = None
    info: dict[str, Any] = {}
    if not args.no_baseline:
        theirs, info = baseline_outcomes(args.corpus.resolve(), everything)
    results: dict[str, Any] = {}
    for name, items in sets.items():
        if len(sets) > 1:
            print(f"== set: {name} ({len(items)} questions)")
        results[name] = run_set(items, ours, theirs)
    machine = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "citadel_seconds_with_ingest_check": round(citadel_seconds, 1),
        "baseline_index": info,
    }
    payload = (
        {**machine, **results[next(iter(sets))]} if len(sets) == 1 else {**machine, "sets": results}
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
