"""bench/PROOF.md from the latest results of each part: every promise, what was done to it,
the figure measured, whether it held, the machine and the command."""

from __future__ import annotations

from typing import Any

PROMISES = {
    "crash": "No lost or duplicated data when ingestion, replacement or re-indexing is killed",
    "metadata": "No committed audit entry or conversation lost when the writer is killed",
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
            f"`{result.get('command')}`; {machine.get('cpus')} cores, "
            f"{machine.get('memory_gb')} GB, load at start "
            f"{machine.get('load_average_at_start')}, Python {machine.get('python')}.",
        ]
    return "\n".join(lines) + "\n"


def _figure(part: str, r: dict[str, Any]) -> str:
    if part == "crash":
        kills = sum(x["kills"] for x in r["rounds"])
        mid = sum(x["kills_mid_work"] for x in r["rounds"])
        points = ", ".join(f"{x['name']} {x['points']}" for x in r["rounds"])
        return (
            f"{kills} SIGKILLs ({mid} after the store had changed); points vs a clean run: {points}"
        )
    if part == "metadata":
        lost = len(r["problems"])
        return f"{r['kills']} SIGKILLs, {r['acknowledged']} committed entries, {lost} problems"
    if part == "egress":
        where = "network namespace (loopback only) + guard" if r["namespace"] else "guard"
        return f"{len(r['attempts_outside_loopback'])} attempts beyond loopback ({where})"
    return ""


def _details(part: str, r: dict[str, Any]) -> list[str]:
    if part == "crash":
        rows = [
            "| round | kills | store changed since the previous kill | restarts | minutes "
            "| documents | points | identical to a clean run |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for x in r["rounds"]:
            rows.append(
                f"| {x['name']} | {x['kills']} | {x['kills_mid_work']} | {x['restarts']} | "
                f"{x['seconds'] / 60:.1f} | {x['documents']} | {x['points']} | "
                f"{'yes' if x['identical'] else 'no: ' + '; '.join(x['differences'][:5])} |"
            )
        return rows
    if part == "metadata":
        return [
            f"{r['kills']} kills of a writer appending audit entries and conversations, "
            f"{r['acknowledged']} entries acknowledged after their commit; after each kill, "
            "SQLite's integrity check and every acknowledged entry: "
            + ("all there." if not r["problems"] else "; ".join(r["problems"][:10]))
        ]
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
