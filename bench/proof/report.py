"""bench/PROOF.md from the latest results of each part: every promise, what was done to it,
the figure measured, whether it held, the machine and the command."""

from __future__ import annotations

from typing import Any

PROMISES = {
    "crash": "No lost or duplicated data when ingestion, replacement or re-indexing is killed",
    "metadata": "No committed audit entry or conversation lost when the writer is killed",
    "hostile": "Hostile input is contained: no crash, a reason for every file within its "
    "time limit, bounded memory, answers unchanged by injected instructions",
    "egress": "Nothing leaves the machine: no connection attempt beyond loopback",
}


def markdown(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# Citadel's promises, tested with faults",
        "",
        "Written by `make proof` (`python -m bench.proof`); each part's section shows the "
        "run that last produced it. What each part does: `bench/proof/__init__.py`.",
        "",
        "| promise | held | figure |",
        "|---|---|---|",
    ]
    for part, promise in PROMISES.items():
        result = results.get(part)
        if result is None:
            lines.append(f"| {promise} | not run | |")
        else:
            held = "**yes**" if result["held"] else "**NO**"
            lines.append(f"| {promise} | {held} | {_figure(part, result)} |")
    for part, result in results.items():
        lines += ["", f"## {part}", "", f"{PROMISES.get(part, part)}.", ""]
        lines += _details(part, result)
        machine = result.get("machine", {})
        lines += [
            "",
            f"Run {result.get('finished')} in {result.get('minutes')} min, "
            f"`{result.get('command')}` at commit {result.get('commit', '?')}; "
            f"{machine.get('cpus')} cores, "
            f"{machine.get('memory_gb')} GB, load at start "
            f"{machine.get('load_average_at_start')}, Python {machine.get('python')}.",
        ]
    return "\n".join(lines) + "\n"


def _figure(part: str, r: dict[str, Any]) -> str:
    if part == "crash":
        kills = sum(x["kills"] for x in r["rounds"])
        points = ", ".join(f"{x['name']} {x['points']}" for x in r["rounds"])
        same = "identical to" if r["held"] else "NOT identical to"
        return f"{kills} SIGKILLs; points {same} a clean run ({points})"
    if part == "metadata":
        lost = len(r["problems"])
        return f"{r['kills']} SIGKILLs, {r['acknowledged']} committed entries, {lost} problems"
    if part == "hostile":
        cli, up = r["cli"], r["upload"]
        fine = sum(o["as_expected"] for o in cli["outcomes"])
        same = sum(q["same_answer"] for q in r["injection"]["questions"])
        marked = sum(
            q["marker_in_answer"] or q["image_rendered"] for q in r["injection"]["questions"]
        )
        return (
            f"{r['kinds']} kinds: {fine} ended as expected (CLI, peak {cli['peak_mb']} MB); "
            f"server {'up' if up['server_alive'] else 'DOWN'} after {len(up['files'])} uploads "
            f"(peak {up['peak_mb']} MB); {same}/{len(r['injection']['questions'])} unrelated "
            f"answers unchanged, {marked} carrying the injection"
        )
    if part == "egress":
        where = "network namespace (loopback only) + guard" if r["namespace"] else "guard"
        return f"{len(r['attempts_outside_loopback'])} attempts beyond loopback ({where})"
    return ""


def _details(part: str, r: dict[str, Any]) -> list[str]:
    if part == "crash":
        rows = [
            "Each run was SIGKILLed (with its parser processes) at a random moment after its "
            "first progress line (a file stored, chunks re-embedded and written), then "
            "restarted; the last run of each round went to its end.",
            "",
            "| round | kills | restarts | minutes | documents | points | same as a clean run |",
            "|---|---|---|---|---|---|---|",
        ]
        for x in r["rounds"]:
            same = "yes" if x["identical"] else "no: " + "; ".join(x["differences"][:5])
            rows.append(
                f"| {x['name']} | {x['kills']} | {x['restarts']} | {x['seconds'] / 60:.1f} | "
                f"{x['documents']} | {x['points']} | {same} |"
            )
        return rows
    if part == "metadata":
        return [
            f"{r['kills']} kills of a writer appending audit entries and conversations, "
            f"{r['acknowledged']} entries acknowledged after their commit; after each kill, "
            "SQLite's integrity check and every acknowledged entry: "
            + ("all there." if not r["problems"] else "; ".join(r["problems"][:10]))
        ]
    if part == "hostile":
        return _hostile(r)
    if part == "egress":
        rows = ["| step | ok | detail |", "|---|---|---|"]
        for s in r["steps"]:
            detail = s["detail"].replace("|", "\\|").replace("\n", " ")[:300]
            rows.append(f"| {s['step']} | {'yes' if s['ok'] else 'no'} | {detail} |")
        attempts = r["attempts_outside_loopback"]
        rows += ["", f"Attempts beyond loopback: {len(attempts)}."]
        rows += [f"- `{a}`" for a in attempts[:20]]
        if r.get("error"):
            rows += ["", "```", r["error"][-1500:], "```"]
        return rows
    return []


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")[:160]


def _hostile(r: dict[str, Any]) -> list[str]:
    cli, up = r["cli"], r["upload"]
    uploads = {f["name"]: f for f in up["files"]}
    rows = [
        f"Per-file time limit {r['parse_timeout_s']} s. CLI: exit {cli['exit']}, "
        f"{cli['seconds']} s for all, the longest gap between two files' outcomes "
        f"{cli['longest_file_s']} s (embedding included), peak resident "
        f"memory of Citadel and its parser processes {cli['peak_mb']} MB. Server: "
        f"{'answered /healthz after every upload' if up['server_alive'] else 'FAILED'}, "
        f"peak {up['peak_mb']} MB. Memory over time: `bench/proof-memory.png`.",
        "",
        "![memory](proof-memory.png)",
        "",
        "| file | kind | expected | CLI | upload |",
        "|---|---|---|---|---|",
    ]
    for o in cli["outcomes"]:
        u = uploads.get(o["name"][:80], {})
        mark = "" if o["as_expected"] else " **unexpected**"
        upload = f"{u.get('status', '-')} {u.get('seconds', '')} s: {u.get('reason', '')}"
        rows.append(
            f"| `{_cell(o['name'][:40])}` | {_cell(o['kind'])} | {o['expect']} | "
            f"{o['status']}{mark}: {_cell(o['reason'])} | {_cell(upload)} |"
        )
    long_name = [
        f for f in up["files"] if f["name"] not in {o["name"][:80] for o in cli["outcomes"]}
    ]
    for f in long_name:
        rows.append(
            f"| `{_cell(f['name'][:40])}…` | 2,000-byte name (upload only) | rejected | - | "
            f"{_cell(f.get('status'))}: {_cell(f.get('reason'))} |"
        )
    rows += [
        "",
        f"Injection documents added to the samples; the same unrelated questions answered by "
        f"{r['injection']['model']} (embedded llama.cpp, temperature 0) without and with them:",
        "",
        "| question | unchanged | injected marker | image rendered | answer with the injections |",
        "|---|---|---|---|---|",
    ]
    for q in r["injection"]["questions"]:
        rows.append(
            f"| {_cell(q['question'])} | {'yes' if q['same_answer'] else 'no'} | "
            f"{'YES' if q['marker_in_answer'] else 'no'} | "
            f"{'YES' if q['image_rendered'] else 'no'} | {_cell(q['injected'])} |"
        )
    return rows


def memory_plot(result: dict[str, Any], path: Any) -> None:
    """Resident memory over time, the CLI run and the server's, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 3.5), dpi=100)
    for label, run in (
        ("citadel ingest (CLI)", result["cli"]),
        ("citadel serve (uploads)", result["upload"]),
    ):
        if run["memory"]:
            seconds, mb = zip(*run["memory"], strict=True)
            axis.plot(seconds, mb, label=label)
    axis.set_xlabel("seconds")
    axis.set_ylabel("resident memory, MB (with parser processes)")
    axis.set_title(f"Memory over the hostile corpus ({result['kinds']} kinds of files)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
