"""Terminal rendering of passages and answers. Document text is untrusted: it is always
escaped for rich markup, so a document cannot style or hide what the terminal shows."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from rag.answering import Answer
from rag.citations import Citation
from rag.retrieval import Retrieval
from rag.text import printable, shorten
from rag.types import Passage

SNIPPET_CHARS = 240


def shown(text: str) -> str:
    """Untrusted text for a rich console: control characters removed, markup escaped."""
    return escape(printable(text))


def passage_json(p: Passage, rank: int) -> dict[str, Any]:
    return {
        "rank": rank,
        "chunk_id": p.chunk_id,
        "number": p.number,
        "score": round(p.score, 6),
        "dense_score": None if p.dense_score is None else round(p.dense_score, 6),
        "collection": p.collection,
        "document_id": p.document_id,
        "source": p.source,
        "file_type": p.file_type,
        "title": p.title,
        "location": p.location,
        "pages": list(p.pages),
        "slide": p.slide,
        "sheet": p.sheet,
        "headings": list(p.headings),
        "text": p.text,
    }


def retrieval_json(r: Retrieval) -> dict[str, Any]:
    return {
        "question": r.question,
        "evidence": round(r.evidence.score, 6),
        "weak_evidence": r.weak_evidence,
        "latency_ms": round(r.latency_ms, 2),
        "passages": [passage_json(p, i) for i, p in enumerate(r.passages, start=1)],
    }


def answer_json(a: Answer) -> dict[str, Any]:
    return {
        "question": a.question,
        "standalone_question": a.standalone_question,
        "answer": a.text,
        "refused": a.refused,
        "search_mode": a.search_mode,
        "notice": a.notice,
        "incomplete": a.incomplete,
        "truncated": a.truncated,
        "dropped_passages": a.dropped_passages,
        "unsupported": a.unsupported,
        "evidence": round(a.evidence, 6),
        "model": a.model,
        "num_ctx": a.num_ctx,
        "prompt_tokens": a.prompt_tokens,
        "retrieval_ms": round(a.retrieval_ms, 2),
        "citations": [
            {
                "n": c.number,
                "snippet": c.snippet,
                "aligned": c.aligned,
                **passage_json(c.passage, c.number),
            }
            for c in a.citations
        ],
        "passages": [passage_json(p, i) for i, p in enumerate(a.passages, start=1)],
    }


def passage_from_json(data: dict[str, Any]) -> Passage:
    """The inverse of passage_json (the CLI reads a server's answers with it)."""
    return Passage(
        chunk_id=data["chunk_id"],
        collection=data["collection"],
        document_id=data["document_id"],
        source=data["source"],
        file_type=data["file_type"],
        title=data["title"],
        headings=tuple(data["headings"]),
        pages=tuple(data["pages"]),
        number=data["number"],
        text=data["text"],
        score=data["score"],
        dense_score=data["dense_score"],
        slide=data["slide"],
        sheet=data["sheet"],
    )


def answer_from_json(data: dict[str, Any]) -> Answer:
    """The inverse of answer_json."""
    return Answer(
        question=data["question"],
        standalone_question=data["standalone_question"],
        text=data["answer"],
        citations=[
            Citation(c["n"], passage_from_json(c), c["snippet"], c["aligned"])
            for c in data["citations"]
        ],
        passages=[passage_from_json(p) for p in data["passages"]],
        refused=data["refused"],
        search_mode=data["search_mode"],
        notice=data["notice"],
        dropped_passages=data["dropped_passages"],
        truncated=data["truncated"],
        incomplete=data["incomplete"],
        unsupported=data["unsupported"],
        evidence=data["evidence"],
        model=data["model"],
        num_ctx=data["num_ctx"],
        prompt_tokens=data["prompt_tokens"],
        retrieval_ms=data["retrieval_ms"],
    )


def _shorten(text: str) -> str:
    return shorten(text, SNIPPET_CHARS)


def print_passages(out: Console, passages: list[Passage], numbered: bool = True) -> None:
    for i, p in enumerate(passages, start=1):
        where = shown(p.source) + (f", {shown(p.location)}" if p.location else "")
        label = f"[bold][{i}][/] " if numbered else "- "
        out.print(f"{label}{where}  [dim]({p.collection}, score {p.score:.3f})[/]")
        out.print(f"    {shown(_shorten(p.text))}", style="dim")


def print_sources(out: Console, answer: Answer) -> None:
    if answer.refused:
        if answer.passages:
            out.print("\n[bold]Closest documents:[/]")
            print_passages(out, answer.passages, numbered=False)
        return
    if answer.search_mode:
        print_passages(out, answer.passages)
        return
    if answer.citations:
        out.print("\n[bold]Sources:[/]")
    for c in answer.citations:
        p = c.passage
        where = shown(p.source) + (f", {shown(p.location)}" if p.location else "")
        placed = " [dim](matched by Citadel)[/]" if c.aligned else ""
        out.print(f"[bold][{c.number}][/] {where}{placed}")
        out.print(f'    "{shown(_shorten(c.snippet))}"', style="dim")
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
    if result["failures"]:
        out.print("[bold]To read:[/]")
    for f in result["failures"]:
        top = ", ".join(f["top"])
        out.print(f"  {shown(f['id'])} ({shown(f['kind'])}): {shown('; '.join(f['problems']))}")
        out.print(f"    [dim]top: {shown(top)}[/]")
