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
    "load": "Simulated users at the default limits: every request answered (or a documented "
    "429), the web UI answering throughout",
    "faults": "Each fault (model server down, slow, stalling, failing or killed; the embedded "
    "model killed; Qdrant unreachable; disk full; data read-only; database locked) gives a "
    "clear message within seconds and leaves the data consistent",
}


def markdown(results: dict[str, dict[str, Any]], previous: str = "") -> str:
    """The report; a part with no results keeps its row and section from `previous` (the
    committed report), so that running one part does not erase the others."""
    kept_rows, kept_sections = _kept(previous)
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
            lines.append(kept_rows.get(part, f"| {promise} | not run | |"))
        else:
            held = "**yes**" if result["held"] else "**NO**"
            lines.append(f"| {promise} | {held} | {_figure(part, result)} |")
    for part in PROMISES:
        if part not in results:
            lines += kept_sections.get(part, [])
            continue
        result = results[part]
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


def _kept(previous: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Each part's table row and section (from its blank line before `## part`) in a
    report written earlier."""
    rows: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in previous.splitlines():
        for part, promise in PROMISES.items():
            if line.startswith(f"| {promise} |"):
                rows[part] = line
        if line.startswith("## "):
            current = sections.setdefault(line[3:].strip(), ["", line])
        elif current is not None:
            current.append(line)
    for section in sections.values():
        while section and not section[-1].strip():
            section.pop()
    return rows, sections


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
    if part == "load":
        b = r["browser"]
        return (
            f"{r['users']} users for {r['seconds'] / 60:g} min, "
            f"{r['requests']} requests: {r['error_count']} errors, {r['limited_429']} 429s; "
            f"retrieval p95 {r['retrieval_p95_ms']} ms, first token p95 "
            f"{_seconds(r['ttft_p95_ms'])}; browser {b['answered']}/{len(b['checks'])} "
            f"answers (p95 {b['p95_s']} s); /healthz max {r['healthz']['max_ms']} ms"
        )
    if part == "faults":
        ran = [o for o in r["outcomes"] if o["ran"]]
        clear = sum(o["clear"] for o in ran)
        consistent = sum(o["consistent"] for o in ran)
        slowest = max((o["seconds"] for o in ran), default=0)
        skipped = len(r["outcomes"]) - len(ran)
        return (
            f"{len(ran)} faults: {clear} clear messages (slowest {slowest} s), "
            f"{consistent} consistent afterwards" + (f", {skipped} not run here" if skipped else "")
        )
    return ""


def _seconds(ms: float | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.1f} s"


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
    if part == "load":
        return _load(r)
    if part == "faults":
        rows = [
            "Each fault done to a real `citadel` command (model faults: first-token and idle "
            "limits of 5 s; disk faults: a small tmpfs in a private mount namespace); clear: "
            "ended within its limit, no traceback, the cause named; consistent: checked once "
            "the fault was lifted.",
            "",
            "| fault | command | seconds (limit) | exit | what the person saw | clear | "
            "after | consistent |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for o in r["outcomes"]:
            if not o["ran"]:
                rows.append(f"| {_cell(o['fault'])} | not run: {_cell(o['message'])} |||||||")
                continue
            rows.append(
                f"| {_cell(o['fault'])} | `{_cell(o['command'])}` | {o['seconds']} "
                f"({o['limit_s']:g}) | {o['exit']} | {_cell(o['message'], 400)} | "
                f"{'yes' if o['clear'] else '**no**'} | {_cell(o['after'], 300)} | "
                f"{'yes' if o['consistent'] else '**no**'} |"
            )
        if r.get("error"):
            rows += ["", "```", r["error"][-1500:], "```"]
        return rows
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


def _cell(text: object, width: int = 160) -> str:
    # A file name that is not UTF-8 arrives with surrogate escapes: shown as \udcXX.
    shown = str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    return shown.replace("|", "\\|").replace("\n", " ")[:width]


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


def _load(r: dict[str, Any]) -> list[str]:
    model, limits, b = r["model"], r["limits"], r["browser"]
    mix = ", ".join(f"{a} {w:.0%}" for a, w in r["mix"].items())
    rows = [
        f"{r['users']} members, each with their own API key, for {r['seconds']:g} s: a pause "
        f"of {r['think_s'][0]:g} to {r['think_s'][1]:g} s, then one action ({mix}; stream: "
        "a streamed question through the OpenAI API, ask: the REST API, upload: a note "
        "whose ingestion job is followed to its end, browse: the account, the collections "
        f"and the documents). The model stand-in streams {model['tokens']} tokens at "
        f"{1000 / model['token_ms']:.0f} tokens/s after {model['first_token_ms']:g} ms. One "
        f"Chromium session asks through the web UI every few seconds. Corpus: "
        f"{r['data'].get('corpus', '?')} (ingested in {r['data'].get('ingest_s', '?')} s).",
        "",
        "Limits, the defaults: "
        + ", ".join(f"`server.{k}` {v}" for k, v in limits.items())
        + "; the web UI's answer events 16 at once (Gradio's queue).",
        "",
        "| action | requests | outcomes | errors | 429 | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for action, a in r["actions"].items():
        outcomes = ", ".join(f"{k} {v}" for k, v in a.get("outcomes", {}).items())
        rows.append(
            f"| {action} | {a['requests']} | {outcomes} | {a['errors']} | {a['limited_429']} | "
            f"{a['p50_ms']} | {a['p95_ms']} |"
        )
    h = r["healthz"]
    rows += [
        "",
        f"Retrieval (server-side, searches and questions): p50 {r['retrieval_p50_ms']} ms, "
        f"p95 {r['retrieval_p95_ms']} ms. Time to first token (streamed questions, waiting "
        f"in line included): p50 {_seconds(r['ttft_p50_ms'])}, p95 "
        f"{_seconds(r['ttft_p95_ms'])}. /healthz every second: {h['probes']} probes, "
        f"{h['failed']} failed, p95 {h['p95_ms']} ms, max {h['max_ms']} ms. Browser: logged "
        f"in in {b['login_s']} s, {b['answered']} of {len(b['checks'])} questions answered "
        f"in the page (p95 {b['p95_s']} s)"
        + (f", error: {_cell(b['error'])}" if b.get("error") else "")
        + f". Server peak memory {r['server_rss_mb_peak']} MB; alive at the end: "
        f"{'yes' if r['server_alive'] else 'NO'}.",
        "",
        "![latency under load](proof-load.png)",
    ]
    if r["errors"]:
        rows += ["", "Errors:", ""]
        rows += [f"- {_cell(e['action'])}: {_cell(e['error'])}" for e in r["errors"][:20]]
    if r["log_problems"]:
        rows += ["", "Server log lines reporting problems:", ""]
        rows += [f"- `{_cell(line)}`" for line in r["log_problems"][:10]]
    return rows


def load_plot(result: dict[str, Any], path: Any) -> None:
    """The latencies users saw over the load run, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = result["series"]
    figure, axis = plt.subplots(figsize=(8, 4), dpi=100)
    for key, label, marker in (
        ("stream_ttft", "first token of a streamed answer", "."),
        ("browser", "answer in the browser", "o"),
        ("retrieval", "retrieval (server-side)", "x"),
        ("healthz", "/healthz", "+"),
    ):
        if series.get(key):
            seconds, ms = zip(*series[key], strict=True)
            axis.scatter(seconds, [m / 1000 for m in ms], s=8, marker=marker, label=label)
    axis.set_yscale("log")
    axis.set_xlabel("seconds into the run")
    axis.set_ylabel("seconds (log scale)")
    axis.set_title(f"{result['users']} users: latency over the run")
    axis.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
