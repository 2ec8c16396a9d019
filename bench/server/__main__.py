"""`python -m bench.server`: the command line, and the run: the data directory, then each
server (search mode, then the one pointed at the fake model) under its workload, each level's
row reported as it ends and the summary printed at the end."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bench.server
from bench.server import harness, report, workload


def main(argv: Sequence[str] | None = None) -> None:
    # prog: the usage line reads as it did when this was bench/server.py.
    parser = argparse.ArgumentParser(
        prog="server.py", description=(bench.server.__doc__ or "").splitlines()[0]
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--corpus", type=Path, default=Path("samples"), help="folder to ingest")
    source.add_argument("--data", type=Path, help="an ingested data directory (copied first)")
    parser.add_argument("--collection", default=None, help="default: bench (handbook with --data)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per endpoint and level")
    parser.add_argument("--concurrency", default="1,4,16", help="concurrent clients per level")
    parser.add_argument("--endpoints", default="search,ask,stream")
    parser.add_argument("--questions", type=Path, help="JSON lines with 'question', or plain lines")
    parser.add_argument("--tokens", type=int, default=60, help="tokens the fake model streams")
    parser.add_argument("--token-ms", type=float, default=20.0, help="fake model: ms per token")
    parser.add_argument("--first-token-ms", type=float, default=0.0, help="fake model: first delay")
    parser.add_argument("--out", type=Path, default=Path("bench/results/server.json"))
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.collection is None:
        args.collection = "handbook" if args.data is not None else "bench"
    args.levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    requests = workload.REQUESTS
    if not args.levels or min(args.levels) < 1 or not set(endpoints) <= set(requests):
        parser.error(f"concurrency levels must be >= 1; endpoints among {', '.join(requests)}")
    questions, questions_from = workload.load_questions(args.questions, args.collection)

    results = report.new_report(args, questions_from, len(questions))
    rows: list[dict[str, Any]] = results["runs"]
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def on_level(run: workload.LevelRun) -> None:
        row = report.level_row(run)
        rows.append(row)
        report.write(results, args.out)
        print(report.table([row]).splitlines()[-1], file=sys.stderr, flush=True)

    work = Path(tempfile.mkdtemp(prefix="citadel-bench-server-"))
    try:
        with harness.sigterm_as_interrupt():
            prepared = harness.prepare_data(args, work)
            key = prepared.pop("key")
            results["data"] = prepared
            data = work / "data"
            plain = [e for e in endpoints if e != "stream"]
            if plain:  # search mode: the model server's address is a closed port
                closed = f"http://127.0.0.1:{harness.free_port()}"
                with harness.ServerProcess(data, work / "server-search.log", closed) as server:
                    results["servers"]["search_mode"] = workload.measure_server(
                        server, key, plain, args, questions, {}, on_level
                    )
            if "stream" in endpoints:
                delay_s = args.token_ms / 1000
                with (
                    harness.FakeModel(
                        harness.answer_tokens(args.tokens), args.first_token_ms / 1000, delay_s
                    ) as fake,
                    harness.ServerProcess(data, work / "server-stream.log", fake.url) as server,
                ):
                    results["servers"]["fake_model"] = workload.measure_server(
                        server,
                        key,
                        ["stream"],
                        args,
                        questions,
                        {"fake_model": fake.process},
                        on_level,
                    )
    except KeyboardInterrupt:
        print("interrupted: servers stopped", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    report.print_summary(results, args, endpoints)


if __name__ == "__main__":
    main()
