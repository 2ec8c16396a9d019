"""`citadel eval --report`: the evaluation as one self-contained HTML page to pick a model
from: the summary table, charts, and each question's answers side by side with their
citations.

Offline by construction: the charts are drawn here (matplotlib, inline SVG, text drawn as
paths, so no font is fetched), the page has no script, and its Content-Security-Policy
forbids loading anything at all. Questions, answers, snippets, file and model names are
untrusted text: every one is HTML-escaped.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import CitadelError
from rag.evaluation import CitedSource, Evaluation, Outcome, QaItem, answers_question
from rag.text import printable
from ui.cli.render import COMPARISON, comparison_cell, duration

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLOURS = ("#2b6cb0", "#dd6b20", "#2f855a", "#c53030", "#6b46c1", "#975a16", "#d53f8c", "#4a5568")
CSP = "default-src 'none'; style-src 'unsafe-inline'"
RETRIEVAL = (
    ("hit@1", "hit@1"),
    ("hit@5", "hit@5"),
    ("mrr@10", "MRR@10"),
    ("page_accuracy", "PDF page accuracy"),
    ("latency_p50_ms", "retrieval p50 ms"),
)
QUALITY = (
    ("answer_contains", "answer\ncontains"),
    ("citation_precision_model", "citation precision\n(model)"),
    ("citation_precision_citadel", "citation precision\n(Citadel [~n])"),
    ("refusal_recall", "refusal\nrecall"),
    ("answered_rate", "answerable\nnot refused"),
)
STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1500px;padding:1em 2em;
color:#1a202c}
h1{margin-bottom:.2em} .meta{color:#4a5568;margin-top:0}
table{border-collapse:collapse;margin:.5em 0 1.5em} th,td{border:1px solid #cbd5e0;
padding:.3em .6em;text-align:right;vertical-align:top} th{background:#edf2f7}
td.name,th.name{text-align:left} .swatch{display:inline-block;width:.8em;height:.8em;
margin-right:.4em;border-radius:2px}
.charts{display:flex;flex-wrap:wrap;gap:1em} .charts figure{margin:0}
.charts svg{max-width:100%;height:auto}
.question{border-top:2px solid #a0aec0;margin-top:1.5em;padding-top:.5em}
.answers{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:1em}
.answer{border:1px solid #cbd5e0;border-radius:6px;padding:.6em .8em;background:#fff}
.text{white-space:pre-wrap;overflow-wrap:anywhere;margin:.4em 0}
.good{background:#c6f6d5} .bad{background:#fed7d7} .neutral{background:#e2e8f0}
.verdict{padding:.05em .4em;border-radius:4px;font-weight:600}
.small,.citations{font-size:.9em;color:#2d3748} .snippet{color:#4a5568;font-style:italic}
.matrix td{text-align:center} .matrix td.name{text-align:left}
"""


def write_report(
    path: Path, items: Sequence[QaItem], evaluation: Evaluation, result: dict[str, Any], title: str
) -> None:
    page = render_report(items, evaluation, result, title)
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise CitadelError(f"cannot write the report to {path}: {exc}") from exc


def render_report(
    items: Sequence[QaItem], evaluation: Evaluation, result: dict[str, Any], title: str
) -> str:
    models = result.get("models") or []
    colours = {m["model"]: COLOURS[n % len(COLOURS)] for n, m in enumerate(models)}
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = [
        "<h1>Citadel evaluation</h1>",
        f'<p class="meta">{_e(title)}: {len(items)} questions, {len(models)} model(s); {when}</p>',
        _retrieval(result["overall"]),
    ]
    if models:
        body += [
            "<h2>Models, on the same retrieval</h2>",
            _summary(models, colours),
            '<div class="charts">',
            *(f"<figure>{svg}</figure>" for svg in _charts(models, colours)),
            "</div>",
        ]
    body += [_matrix(items, evaluation, colours), *_questions(items, evaluation, colours)]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Citadel evaluation: {_e(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _e(text: object) -> str:
    return html.escape(printable(str(text)), quote=True)


def _swatch(label: str, colours: dict[str, str]) -> str:
    colour = colours.get(label, "#718096")
    return f'<span class="swatch" style="background:{colour}"></span>{_e(label)}'


def _retrieval(figures: dict[str, Any]) -> str:
    cells = "".join(f"<td>{_number(figures.get(k))}</td>" for k, _ in RETRIEVAL)
    heads = "".join(f"<th>{_e(t)}</th>" for _, t in RETRIEVAL)
    return f"<h2>Retrieval</h2><table><tr>{heads}</tr><tr>{cells}</tr></table>"


def _number(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) and value < 10 else f"{value:.0f}"


def _summary(models: list[dict[str, Any]], colours: dict[str, str]) -> str:
    heads = "".join(f"<th>{_e(title)}</th>" for _, title, _ in COMPARISON)
    rows = []
    for run in models:
        figures = run["overall"]
        cells = "".join(
            f"<td>{_e(comparison_cell(figures, name, fmt))}</td>" for name, _, fmt in COMPARISON
        )
        extra = f"<td>{figures.get('not_generated', 0)}</td><td>{duration(run['seconds'])}</td>"
        rows.append(
            f'<tr><td class="name">{_swatch(run["model"], colours)}</td>{cells}{extra}</tr>'
        )
    return (
        f'<table><tr><th class="name">model</th>{heads}<th>not generated</th><th>time</th></tr>'
        + "".join(rows)
        + "</table>"
        + '<p class="small">Citation precision: the share of citations whose passage holds an '
        "expected answer string, for the markers the model wrote and those Citadel placed "
        "([~n]). Refusals are the final answers' (evidence gate or the model). TTFT: time to "
        "the first token; tokens/s: written after the first token.</p>"
    )


# -- charts -----------------------------------------------------------------------------


def _charts(models: list[dict[str, Any]], colours: dict[str, str]) -> list[str]:
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "path", "svg.hashsalt": "citadel", "font.size": 9}):
        charts = (_quality, _speed, _trade_off)
        return [_svg(draw(models, colours), f"c{n}-") for n, draw in enumerate(charts)]


def _label(text: str) -> str:
    """Plain text for matplotlib: a `$` would start mathematics."""
    return text.replace("$", r"\$")


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _grouped(ax: Any, groups: Sequence[str], models: list[dict[str, Any]], values: Any) -> None:
    """Bars: one group per figure, one bar per model; a missing figure is marked n/a."""
    width = 0.8 / max(1, len(models))
    for n, run in enumerate(models):
        for g in range(len(groups)):
            x = g - 0.4 + width * (n + 0.5)
            value = values(run, g)
            if value is None:
                ax.text(x, 0.01, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
            else:
                ax.bar(x, value, width, color=run["colour"])
    ax.set_xticks(range(len(groups)), [_label(g) for g in groups])


def _with_colours(models: list[dict[str, Any]], colours: dict[str, str]) -> list[dict[str, Any]]:
    return [{**m, "colour": colours[m["model"]]} for m in models]


def _quality(models: list[dict[str, Any]], colours: dict[str, str]) -> Figure:
    fig = _figure(7.5, 3.4)
    ax = fig.subplots()
    runs = _with_colours(models, colours)

    def value(run: dict[str, Any], g: int) -> float | None:
        figures, name = run["overall"], QUALITY[g][0]
        if name == "answered_rate":
            rate = figures.get("false_refusal_rate")
            return None if rate is None else 1 - rate
        return figures.get(name)  # type: ignore[no-any-return]

    _grouped(ax, [t for _, t in QUALITY], runs, value)
    ax.set_ylim(0, 1.05)
    ax.set_title("Quality (higher is better)")
    _legend(fig, runs)
    return fig


def _speed(models: list[dict[str, Any]], colours: dict[str, str]) -> Figure:
    fig = _figure(7.5, 3.4)
    left, right = fig.subplots(1, 2, width_ratios=(3, 1.3))
    runs = _with_colours(models, colours)
    names = ("ttft_p50_s", "ttft_p95_s", "answer_p50_s")
    _grouped(
        left,
        ["first token\np50", "first token\np95", "whole answer\np50"],
        runs,
        lambda run, g: run["overall"].get(names[g]),
    )
    left.set_ylabel("seconds")
    left.set_title("Time (lower is better)")
    _grouped(right, ["tokens/s"], runs, lambda run, g: run["overall"].get("tokens_per_s"))
    right.set_title("Writing speed")
    _legend(fig, runs)
    return fig


def _trade_off(models: list[dict[str, Any]], colours: dict[str, str]) -> Figure:
    fig = _figure(5.0, 3.4)
    ax = fig.subplots()
    for run in _with_colours(models, colours):
        x, y = run["overall"].get("answer_p50_s"), run["overall"].get("answer_contains")
        if x is None or y is None:
            continue
        ax.scatter([x], [y], s=60, color=run["colour"])
        ax.annotate(_label(run["model"]), (x, y), xytext=(5, 5), textcoords="offset points")
    ax.set_xlabel("whole answer p50 (s)")
    ax.set_ylabel("answer contains")
    ax.set_ylim(0, 1.05)
    ax.set_xlim(left=0)
    ax.set_title("Quality against time (top left is best)")
    return fig


def _legend(fig: Figure, runs: list[dict[str, Any]]) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=r["colour"], label=_label(r["model"])) for r in runs]
    fig.legend(handles=handles, fontsize=7, loc="outside lower center", ncols=min(3, len(runs)))


def _svg(fig: Figure, prefix: str) -> str:
    """The figure as SVG to inline; its IDs prefixed, unique among the page's charts."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]  # no XML declaration or DOCTYPE inside HTML
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.DOTALL)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.DOTALL)  # matplotlib repeats texts there
    svg = re.sub(r'\bid="', f'id="{prefix}', svg)
    return re.sub(r'(href="#|url\(#)', rf"\g<1>{prefix}", svg)


# -- the questions ----------------------------------------------------------------------


def _verdict(item: QaItem, outcome: Outcome) -> tuple[str, str]:
    """(class, words) of an outcome: good, bad or neutral."""
    if outcome.error is not None:
        return "neutral", "not run"
    if not item.answerable:
        return ("good", "refused") if outcome.refused else ("bad", "answered (should refuse)")
    if outcome.refused:
        return "bad", "refused (should answer)"
    if outcome.answer is None:
        return "neutral", "no answer (search mode)" if outcome.notice else "retrieval only"
    if not item.expected:
        return "neutral", "answered (nothing expected to check)"
    if answers_question(outcome.answer, item):
        return "good", "contains the answer"
    return "bad", "lacks the answer"


def _runs(evaluation: Evaluation) -> dict[str, dict[str, Outcome]]:
    return evaluation.answers or {"retrieval": evaluation.retrieval}


def _matrix(items: Sequence[QaItem], evaluation: Evaluation, colours: dict[str, str]) -> str:
    runs = _runs(evaluation)
    heads = "".join(f"<th>{_swatch(label, colours)}</th>" for label in runs)
    rows = []
    for n, item in enumerate(items, start=1):
        cells = []
        for outcomes in runs.values():
            css, words = _verdict(item, outcomes[item.id])
            mark = {"good": "✓", "bad": "✗"}.get(css, "–")
            cells.append(f'<td class="{css}" title="{_e(words)}">{mark}</td>')
        rows.append(
            f'<tr><td class="name"><a href="#q{n}">{_e(item.id)}</a></td>'
            f'<td class="name">{_e(item.kind)}</td>{"".join(cells)}</tr>'
        )
    return (
        '<h2>Questions</h2><table class="matrix"><tr><th class="name">question</th>'
        f'<th class="name">kind</th>{heads}</tr>{"".join(rows)}</table>'
    )


def _questions(
    items: Sequence[QaItem], evaluation: Evaluation, colours: dict[str, str]
) -> list[str]:
    runs = _runs(evaluation)
    sections = []
    for n, item in enumerate(items, start=1):
        retrieved = evaluation.retrieval[item.id]
        expected = " AND ".join(" or ".join(f"“{_e(s)}”" for s in g) for g in item.expected)
        top = ", ".join(_e(d) for d in retrieved.documents()[:5]) or "-"
        cards = "".join(
            _card(item, label, outcomes[item.id], colours) for label, outcomes in runs.items()
        )
        sections.append(
            f'<section class="question" id="q{n}"><h3>{_e(item.id)} ({_e(item.kind)}): '
            f"{_e(item.question)}</h3>"
            f'<p class="small">Expected: {expected or "-" if item.answerable else "a refusal"}'
            f"; sources: {', '.join(_e(s) for s in item.sources) or 'none'}"
            f"{f' (page {_pages(item.pages)})' if item.pages else ''}; retrieved: {top}; "
            f"evidence {_number(retrieved.evidence)}</p>"
            f'<div class="answers">{cards}</div></section>'
        )
    return sections


def _card(item: QaItem, label: str, outcome: Outcome, colours: dict[str, str]) -> str:
    css, words = _verdict(item, outcome)
    parts = [
        f"<div><strong>{_swatch(label, colours)}</strong> "
        f'<span class="verdict {css}">{_e(words)}</span></div>'
    ]
    timing = []
    if outcome.first_token_s is not None:
        timing.append(f"first token {outcome.first_token_s:.1f} s")
    if outcome.generation_s is not None:
        timing.append(f"answer {outcome.generation_s:.1f} s")
    if outcome.prompt_tokens is not None:
        timing.append(f"{outcome.prompt_tokens} prompt tokens")
    if outcome.output_tokens is not None:
        timing.append(f"{outcome.output_tokens} written")
    if timing:
        parts.append(f'<div class="small">{_e(", ".join(timing))}</div>')
    if outcome.answer is not None:
        parts.append(f'<div class="text">{_e(outcome.answer)}</div>')
    if outcome.citations:
        parts.append(f'<ol class="citations">{"".join(map(_citation, outcome.citations))}</ol>')
    if outcome.unsupported:
        rows = "".join(f"<li>{_e(s)}</li>" for s in outcome.unsupported)
        parts.append(f'<div class="small">Unsupported by the sources:<ul>{rows}</ul></div>')
    for note in (outcome.notice, outcome.error):
        if note:
            parts.append(f'<div class="small">{_e(note)}</div>')
    return f'<div class="answer">{"".join(parts)}</div>'


def _citation(c: CitedSource) -> str:
    pages = f", page {', '.join(map(str, c.pages))}" if c.pages else ""
    who = "placed by Citadel" if c.aligned else "written by the model"
    holds = {True: "holds an expected answer", False: "no expected answer", None: ""}
    mark = holds[c.holds_answer]
    return (
        f'<li value="{int(c.number)}">{_e(c.source)}{_e(pages)} '
        f'<span class="small">({who}{", " + mark if mark else ""})</span>'
        f'<div class="snippet">{_e(c.snippet)}</div></li>'
    )


def _pages(pages: tuple[int, ...]) -> str:
    return " or ".join(map(str, pages))
