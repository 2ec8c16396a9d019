"""Terminal rendering of passages, answers and evaluations. Document text is untrusted: it is always
escaped for rich markup, so a document cannot style or hide what the terminal shows."""

from __future__ import annotations

import json
import unicodedata
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from rag.text import printable, shorten
from rag.types import Answer, Passage
from ui.service.sources import shown_sources

if TYPE_CHECKING:
    from rag.evaluation import Step

SNIPPET_CHARS = 240


def printed_json(value: Any, indent: int | None = None) -> str:
    """JSON for a terminal or a file read in one, non-ASCII text kept readable, but every
    invisible character (bidi overrides such as U+202E, zero-width and format characters)
    written as its \\u escape: json.dumps escapes only C0 controls, so a document or a user
    name could reorder what the reader sees. The value read back is the same."""
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    return "".join(
        json.dumps(ch)[1:-1] if ch != "\n" and unicodedata.category(ch).startswith("C") else ch
        for ch in text
    )


def shown(text: str) -> str:
    """Untrusted text for a rich console: control characters removed, markup escaped."""
    return escape(printable(text))


def _shorten(text: str) -> str:
    return shorten(text, SNIPPET_CHARS)


def print_passages(out: Console, passages: list[Passage], numbered: bool = True) -> None:
    for i, p in enumerate(passages, start=1):
        where = shown(p.where)
        label = f"[bold][{i}][/] " if numbered else "- "
        out.print(f"{label}{where}  [dim]({p.collection}, score {p.score:.3f})[/]")
        out.print(f"    {shown(_shorten(p.text))}", style="dim")


def print_sources(out: Console, answer: Answer) -> None:
    sources = shown_sources(answer)
    if answer.refused:
        if sources:
            out.print("\n[bold]Closest documents:[/]")
            print_passages(out, [s.passage for s in sources], numbered=False)
        return
    if answer.search_mode:
        print_passages(out, [s.passage for s in sources])
        return
    if sources:
        out.print("\n[bold]Sources:[/]")
    for source in sources:
        placed = " [dim](matched by Citadel)[/]" if source.aligned else ""
        out.print(f"[bold][{source.number}][/] {shown(source.passage.where)}{placed}")
        out.print(f'    "{shown(_shorten(source.snippet))}"', style="dim")
    for sentence in answer.unsupported:
        out.print(f"[yellow]unsupported by the sources:[/] {shown(_shorten(sentence))}")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.0f}"
    return str(value)


EVAL_COLUMNS = (
    "questions",
    "hit@1",
    "hit@3",
    "hit@5",
    "hit@10",
    "mrr@10",
    "page_accuracy",
    "answer_contains",
    "refusal_recall",
    "false_refusals",
    "latency_p50_ms",
    "latency_p95_ms",
)


def print_eval(out: Console, result: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="Evaluation")
    table.add_column("set")
    for name in EVAL_COLUMNS:
        table.add_column(name.replace("_", " "), justify="right")
    rows = [("all", result["overall"])]
    rows += [(f"kind: {k}", v) for k, v in result["by_kind"].items()]
    rows += [(f"source: {k}", v) for k, v in result["by_group"].items()]
    for label, figures in rows:
        table.add_row(shown(label), *(_fmt(figures.get(name)) for name in EVAL_COLUMNS))
    out.print(table)
    overall = result["overall"]
    if overall.get("not_generated"):
        out.print(
            f"[yellow]{overall['not_generated']} answer(s) were not generated (search mode: "
            "no model reachable or configured); answer-contains counts only generated ones.[/]"
        )
    if overall.get("errors"):
        out.print(f"[red]{overall['errors']} question(s) could not be run (see the list below).[/]")
    sweep = Table(title="Refusal threshold (CITADEL_RETRIEVAL__MIN_EVIDENCE)")
    for name in ("threshold", "refusal recall", "false refusals"):
        sweep.add_column(name, justify="right")
    for row in result["refusal_sweep"]:
        mark = " *" if row["threshold"] == result.get("min_evidence") else ""
        sweep.add_row(
            f"{row['threshold']:.2f}{mark}",
            f"{row['refusal_recall']:.2f}",
            f"{row['false_refusals']:.0f}",
        )
    out.print(sweep)
    if result.get("models"):
        print_comparison(out, result["models"])
    if result["failures"]:
        out.print("[bold]To read:[/]")
    for f in result["failures"]:
        top = ", ".join(f["top"])
        out.print(f"  {shown(f['id'])} ({shown(f['kind'])}): {shown('; '.join(f['problems']))}")
        out.print(f"    [dim]top: {shown(top)}[/]")


# The models side by side: (figure, column title, format).
COMPARISON = (
    ("answer_contains", "answer contains", "{:.2f}"),
    ("citation_precision_model", "citation precision: model", "{:.2f}"),
    ("citation_precision_citadel", "citation precision: Citadel [~n]", "{:.2f}"),
    ("unsupported_per_answer", "unsupported / answer", "{:.2f}"),
    ("refusal_recall", "refusal recall", "{:.2f}"),
    ("false_refusals", "false refusals", "{}"),
    ("ttft_p50_s", "TTFT p50 s", "{:.2f}"),
    ("ttft_p95_s", "TTFT p95 s", "{:.2f}"),
    ("tokens_per_s", "tokens/s", "{:.1f}"),
    ("prompt_tokens_mean", "prompt tokens", "{:.0f}"),
)


def comparison_cell(figures: dict[str, Any], name: str, fmt: str) -> str:
    value = figures.get(name)
    return "-" if value is None else fmt.format(value)


def print_comparison(out: Console, models: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title="Models, on the same retrieval")
    table.add_column("model")
    for _, title, _ in COMPARISON:
        table.add_column(title, justify="right")
    table.add_column("time", justify="right")
    for run in models:
        figures = run["overall"]
        cells = [comparison_cell(figures, name, fmt) for name, _, fmt in COMPARISON]
        table.add_row(shown(run["model"]), *cells, duration(run.get("seconds") or 0.0))
    out.print(table)
    for run in models if len(models) > 1 else ():  # one model: said above already
        figures = run["overall"]
        if figures.get("not_generated"):
            out.print(
                f"[yellow]{shown(run['model'])}: {figures['not_generated']} answer(s) not "
                "generated (search mode: the model failed or is not reachable).[/]"
            )


def duration(seconds: float) -> str:
    """12s, 4m05s, 1h02m."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def progress_line(step: Step) -> str:
    """One question done: `12/100 hb-012 (model) 1m05s elapsed, about 8m left`."""
    model = f" ({step.model})" if step.model else ""
    left = f", about {duration(step.eta_s)} left" if step.n < step.total else ", done"
    return f"{step.n}/{step.total} {step.item.id}{model} {duration(step.elapsed_s)} elapsed{left}"
