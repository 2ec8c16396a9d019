"""`python -m bench.proof`: runs the parts asked for, saves each one's results as it ends,
and rebuilds bench/PROOF.md from the latest results of every part."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bench.proof
from bench.environment import environment
from bench.proof import crash, egress, faults, hostile, load, report

# Committed: the evidence behind bench/PROOF.md, and what keeps a one-part run from
# erasing the others.
RESULTS = Path("bench/proof/results")
REPORT = Path("bench/PROOF.md")
PARTS = ("crash", "metadata", "hostile", "egress", "load", "faults")
SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf"  # the embedded model answering in the egress part
QWEN = "Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf"  # answers the injection questions


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.proof", description=(bench.proof.__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--corpus", type=Path, default=Path("data/bench-corpus"))
    parser.add_argument(
        "--kills", default="25,10,15", help="kills per round: ingest,replace,reindex"
    )
    parser.add_argument(
        "--max-delay", type=float, default=6.0, help="latest kill, s after the first store"
    )
    parser.add_argument("--metadata-kills", type=int, default=50)
    parser.add_argument("--model", type=Path, default=Path("models") / SMOLLM2)
    parser.add_argument(
        "--answer-model", type=Path, default=Path("models") / QWEN, help="injection answers"
    )
    parser.add_argument("--users", type=int, default=load.USERS, help="load: simulated users")
    parser.add_argument("--seconds", type=float, default=load.SECONDS, help="load: duration")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}; the parts are {', '.join(PARTS)}")
    command = "python -m bench.proof " + " ".join(argv if argv is not None else sys.argv[1:])
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="citadel-proof-"))
    held = True
    try:
        for part in parts:
            started = time.monotonic()
            result = _run(part, args, work / part)
            result.update(
                command=command.strip(),
                commit=_commit(),
                machine=environment("qdrant-edge-py", "xllamacpp"),
                finished=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                minutes=round((time.monotonic() - started) / 60, 1),
            )
            (RESULTS / f"{part}.json").write_text(json.dumps(result, indent=1) + "\n")
            held &= bool(result["held"])
            print(f"== {part}: {'held' if result['held'] else 'NOT HELD'}", flush=True)
    finally:
        if not args.keep:
            # Not shutil.rmtree: it recurses per folder, and the hostile corpus has a tree
            # 1,100 folders deep.
            subprocess.run([shutil.which("rm") or "rm", "-rf", str(work)], check=False)
    results = {
        p: json.loads((RESULTS / f"{p}.json").read_text())
        for p in PARTS
        if (RESULTS / f"{p}.json").exists()
    }
    if "hostile" in results:
        report.memory_plot(results["hostile"], Path("bench/proof-memory.png"))
    if "load" in results:
        report.load_plot(results["load"], Path("bench/proof-load.png"))
    previous = REPORT.read_text(encoding="utf-8") if REPORT.exists() else ""
    text = report.markdown(results, previous)
    # Hostile file names that are not UTF-8 carry surrogate escapes: written as \udcXX.
    REPORT.write_text(text.encode("utf-8", "backslashreplace").decode("utf-8"), encoding="utf-8")
    print("report: bench/PROOF.md")
    return 0 if held else 1


def _run(part: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    work.mkdir(parents=True)

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    if part == "crash":
        kills = [int(k) for k in args.kills.split(",")]
        rounds = crash.store_rounds(args.corpus, work, kills, args.max_delay, args.seed, log)
        return {
            "rounds": [r.__dict__ for r in rounds],
            "held": all(r.identical for r in rounds),
        }
    if part == "metadata":
        found = crash.metadata_round(work, args.metadata_kills, args.seed, log)
        return {**found, "held": found["identical"]}
    if part == "hostile":
        return hostile.run(work, args.answer_model.resolve(), log)
    if part == "load":
        return load.run(args.corpus, work, args.users, args.seconds, log, args.seed)
    if part == "faults":
        return faults.run(work, args.model.resolve(), args.corpus.resolve(), log)
    return egress.run(work, args.model.resolve(), log)


def _commit() -> str:
    """The commit the run tested (with "+changes" when the work tree differed from it)."""
    git = shutil.which("git") or "git"
    head = subprocess.run([git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    # What the runs themselves write (results, report, plots) does not make the tree dirty.
    written = [":!bench/proof/results", ":!bench/PROOF.md", ":!bench/proof-*.png"]
    dirty = subprocess.run(
        [git, "status", "--porcelain", "--untracked-files=no", "--", ".", *written],
        capture_output=True,
        text=True,
    )
    return head.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


if __name__ == "__main__":
    sys.exit(main())
