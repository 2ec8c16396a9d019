"""Built-in evaluation: a labelled question set in, retrieval and answer metrics out.

The question format (one JSON object per line): `id`, `question`, `answers` (strings a
correct answer contains), `sources` (files, relative to the corpus root, that answer it;
empty when the documents do not), optional `page` (1-based page in the PDF source) and
`kind`. Unknown fields are ignored. Metrics are computed at the document level: each
retrieved passage is mapped to its file and only a file's first occurrence counts.
Hit rate and reciprocal rank come from llama-index's retrieval metrics.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core.evaluation.retrieval.metrics import MRR, HitRate

from rag.errors import InvalidQuestion, InvalidQuestionSet
from rag.types import Answer

if TYPE_CHECKING:
    from rag.answering import AnswerService
    from rag.retrieval import Retriever

HIT_KS = (1, 3, 5, 10)
MRR_CUTOFF = 10
SWEEP_THRESHOLDS = (0.02, 0.05, 0.08, 0.1, 0.12, 0.14, 0.2, 0.3, 0.5)


@dataclass(frozen=True)
class QaItem:
    id: str
    question: str
    answers: tuple[str, ...]
    sources: tuple[str, ...]
    page: int | None
    kind: str

    @property
    def answerable(self) -> bool:
        return bool(self.sources)

    @property
    def group(self) -> str:
        """The first source's top folder (or its extension): en, fr, pdf, docx..."""
        if not self.sources:
            return "none"
        first = self.sources[0]
        return first.split("/", 1)[0] if "/" in first else Path(first).suffix.lstrip(".")


def load_questions(path: Path) -> list[QaItem]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidQuestionSet(f"cannot read {path}: {exc}") from exc
    items: list[QaItem] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidQuestionSet(f"{where}: not JSON ({exc.msg})") from exc
        if not isinstance(raw, dict):
            raise InvalidQuestionSet(f"{where}: expected a JSON object")
        item = _item(raw, where)
        if item.id in seen:
            raise InvalidQuestionSet(f"{where}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise InvalidQuestionSet(f"{path} holds no questions")
    return items


def _item(raw: dict[str, Any], where: str) -> QaItem:
    def strings(name: str) -> tuple[str, ...]:
        value = raw.get(name) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidQuestionSet(f"{where}: {name!r} must be a list of strings")
        return tuple(value)

    question = raw.get("question")
    if not isinstance(question, str) or not question.strip():
        raise InvalidQuestionSet(f"{where}: 'question' must be a non-empty string")
    page = raw.get("page")
    if page is not None and (not isinstance(page, int) or page < 1):
        raise InvalidQuestionSet(f"{where}: 'page' must be a positive integer or null")
    sources = tuple(s.strip("/") for s in strings("sources"))
    if page is not None and not any(s.lower().endswith(".pdf") for s in sources):
        raise InvalidQuestionSet(f"{where}: 'page' is given but no source is a PDF")
    return QaItem(
        id=str(raw.get("id") or where),
        question=question,
        answers=strings("answers"),
        sources=sources,
        page=page,
        kind=str(raw.get("kind") or ("answerable" if sources else "unanswerable")),
    )


# -- one question's outcome --------------------------------------------------------------


@dataclass(frozen=True)
class Retrieved:
    source: str  # relative to the corpus root
    pages: tuple[int, ...]
    score: float


@dataclass
class Outcome:
    """The `--out` line of one question."""

    id: str
    retrieved: list[Retrieved]
    refused: bool
    latency_ms: float
    answer: str | None = None
    evidence: float | None = None
    error: str | None = None  # the question could not be run (e.g. over the length limit)
    notice: str | None = None  # why no answer was generated (search mode)
    cited_pages: dict[str, int] = field(default_factory=dict)  # source -> page cited first

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": self.id,
            "retrieved": [
                {"source": r.source, "pages": list(r.pages), "score": round(r.score, 6)}
                for r in self.retrieved
            ],
            "refused": self.refused,
            "latency_ms": round(self.latency_ms, 2),
        }
        if self.answer is not None:
            row["answer"] = self.answer
        if self.evidence is not None:
            row["evidence"] = round(self.evidence, 6)
        if self.cited_pages:
            row["cited_pages"] = self.cited_pages
        if self.error is not None:
            row["error"] = self.error
        if self.notice is not None:
            row["notice"] = self.notice
        return row

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Outcome:
        return cls(
            id=row["id"],
            retrieved=[
                Retrieved(r["source"], tuple(r.get("pages") or ()), float(r.get("score", 0)))
                for r in row["retrieved"]
            ],
            refused=bool(row.get("refused")),
            latency_ms=float(row.get("latency_ms", 0)),
            answer=row.get("answer"),
            evidence=row.get("evidence"),
            error=row.get("error"),
            notice=row.get("notice"),
            cited_pages=dict(row.get("cited_pages") or {}),
        )

    def documents(self) -> list[str]:
        """Retrieved files in rank order, each once."""
        return list(dict.fromkeys(r.source for r in self.retrieved))

    def page_for(self, source: str) -> int | None:
        """The page cited for `source`, else the first page of its best-ranked passage."""
        if source in self.cited_pages:
            return self.cited_pages[source]
        for r in self.retrieved:
            if r.source == source and r.pages:
                return r.pages[0]
        return None


# -- metrics ----------------------------------------------------------------------------


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def contains_answer(answer: str, expected: Iterable[str]) -> bool:
    haystack = normalise(answer)
    return any(normalise(e) in haystack for e in expected)


def _hit(expected: Sequence[str], documents: Sequence[str], k: int) -> float:
    if not documents[:k]:
        return 0.0
    return HitRate().compute(expected_ids=list(expected), retrieved_ids=list(documents[:k])).score


def _rr(expected: Sequence[str], documents: Sequence[str]) -> float:
    if not documents:
        return 0.0
    return (
        MRR().compute(expected_ids=list(expected), retrieved_ids=list(documents[:MRR_CUTOFF])).score
    )


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def metrics(items: Sequence[QaItem], outcomes: dict[str, Outcome]) -> dict[str, Any]:
    """Every figure for one set of questions (None where no question applies)."""
    answerable = [i for i in items if i.answerable]
    unanswerable = [i for i in items if not i.answerable]
    result: dict[str, Any] = {"questions": len(items), "answerable": len(answerable)}
    for k in HIT_KS:
        result[f"hit@{k}"] = _mean(
            [_hit(i.sources, outcomes[i.id].documents(), k) for i in answerable]
        )
    multi = [i for i in answerable if len(i.sources) > 1 and i.kind == "multi"]
    for k in (5, 10):
        result[f"all_hit@{k}"] = _mean(
            [float(set(i.sources) <= set(outcomes[i.id].documents()[:k])) for i in multi]
        )
    result[f"mrr@{MRR_CUTOFF}"] = _mean(
        [_rr(i.sources, outcomes[i.id].documents()) for i in answerable]
    )
    paged = [i for i in answerable if i.page is not None]
    result["page_accuracy"] = _mean([float(_page_right(i, outcomes[i.id])) for i in paged])
    result["paged_questions"] = len(paged)
    generated = [i for i in answerable if outcomes[i.id].answer is not None]
    result["answer_contains"] = _mean(
        [
            float(
                not outcomes[i.id].refused
                and contains_answer(outcomes[i.id].answer or "", i.answers)
            )
            for i in generated
        ]
    )
    result["refusal_recall"] = _mean([float(outcomes[i.id].refused) for i in unanswerable])
    result["false_refusals"] = sum(outcomes[i.id].refused for i in answerable)
    result["false_refusal_rate"] = _mean([float(outcomes[i.id].refused) for i in answerable])
    result["errors"] = sum(outcomes[i.id].error is not None for i in items)
    result["not_generated"] = sum(outcomes[i.id].notice is not None for i in items)
    latencies = [outcomes[i.id].latency_ms for i in items if outcomes[i.id].error is None]
    result["latency_p50_ms"] = percentile(latencies, 50)
    result["latency_p95_ms"] = percentile(latencies, 95)
    return result


def _answered_right(item: QaItem, outcome: Outcome) -> bool:
    return not outcome.refused and contains_answer(outcome.answer or "", item.answers)


def _page_right(item: QaItem, outcome: Outcome) -> bool:
    pdfs = [s for s in item.sources if s.lower().endswith(".pdf")]
    return any(outcome.page_for(s) == item.page for s in pdfs)


def report(items: Sequence[QaItem], outcomes: dict[str, Outcome]) -> dict[str, Any]:
    """Overall figures plus the same broken down by question kind and by source group."""
    missing = [i.id for i in items if i.id not in outcomes]
    if missing:
        raise InvalidQuestionSet(f"no result for {len(missing)} question(s): {missing[:5]}")
    by_kind: dict[str, list[QaItem]] = defaultdict(list)
    by_group: dict[str, list[QaItem]] = defaultdict(list)
    for i in items:
        by_kind[i.kind].append(i)
        by_group[i.group].append(i)
    return {
        "overall": metrics(items, outcomes),
        "by_kind": {k: metrics(v, outcomes) for k, v in sorted(by_kind.items())},
        "by_group": {g: metrics(v, outcomes) for g, v in sorted(by_group.items())},
        "failures": failures(items, outcomes),
    }


def failures(items: Sequence[QaItem], outcomes: dict[str, Outcome]) -> list[dict[str, Any]]:
    """What to read: misses at 5, wrong pages, wrong refusal decisions."""
    rows = []
    for i in items:
        o = outcomes[i.id]
        problems = []
        if i.answerable and not set(i.sources) & set(o.documents()[:5]):
            problems.append("not in top 5")
        if i.answerable and i.page is not None and not _page_right(i, o):
            pdf = next((s for s in i.sources if s.lower().endswith(".pdf")), "")
            problems.append(f"cited page {o.page_for(pdf)}, not {i.page}")
        if o.error is not None:
            problems.append(f"not run: {o.error}")
        if i.answerable and o.refused:
            problems.append("refused")
        if not i.answerable and not o.refused:
            problems.append("answered an unanswerable question")
        if (
            o.answer is not None
            and i.answerable
            and not o.refused
            and not contains_answer(o.answer, i.answers)
        ):
            problems.append("answer lacks the expected text")
        if problems:
            rows.append(
                {"id": i.id, "kind": i.kind, "problems": problems, "top": o.documents()[:3]}
            )
    return rows


def refusal_sweep(
    items: Sequence[QaItem],
    outcomes: dict[str, Outcome],
    thresholds: Sequence[float] = SWEEP_THRESHOLDS,
) -> list[dict[str, float]]:
    """What each evidence threshold would give: refusal recall and false refusals, so an
    admin can pick CITADEL_RETRIEVAL__MIN_EVIDENCE on their own documents."""
    rows = []
    for t in thresholds:

        def refused(i: QaItem, t: float = t) -> bool:
            evidence = outcomes[i.id].evidence
            return evidence is not None and evidence < t

        unanswerable = [i for i in items if not i.answerable]
        rows.append(
            {
                "threshold": t,
                "refusal_recall": _mean([float(refused(i)) for i in unanswerable]) or 0.0,
                "false_refusals": float(sum(refused(i) for i in items if i.answerable)),
            }
        )
    return rows


ProgressFn = Callable[[int, int, QaItem], None]


def evaluate(
    items: Sequence[QaItem],
    retriever: Retriever,
    collections: Sequence[str],
    to_source: Callable[[str], str],
    answers: AnswerService | None = None,
    progress: ProgressFn | None = None,
    top_k: int = 10,
) -> dict[str, Outcome]:
    """Run every question: ranking (top_k passages) and refusal decision; with `answers`,
    the generated answer too. `to_source` maps a document ID to its corpus-relative path."""
    outcomes: dict[str, Outcome] = {}
    for n, item in enumerate(items, start=1):
        try:
            retrieval = retriever.retrieve(item.question, collections, top_k=top_k)
        except InvalidQuestion as exc:
            outcomes[item.id] = Outcome(item.id, [], refused=False, latency_ms=0.0, error=str(exc))
            if progress is not None:
                progress(n, len(items), item)
            continue
        outcome = Outcome(
            id=item.id,
            retrieved=[
                Retrieved(to_source(p.document_id), p.pages, p.score) for p in retrieval.passages
            ],
            refused=retrieval.weak_evidence,
            latency_ms=retrieval.latency_ms,
            evidence=retrieval.evidence.score,
        )
        if answers is not None:
            answer = _final(answers.ask(item.question, collections))
            outcome.refused = answer.refused
            if answer.search_mode:
                outcome.notice = answer.notice  # no answer generated: not counted as one
            else:
                outcome.answer = answer.text
            for c in answer.citations:
                if c.passage.pages:
                    outcome.cited_pages.setdefault(
                        to_source(c.passage.document_id), c.passage.pages[0]
                    )
        outcomes[item.id] = outcome
        if progress is not None:
            progress(n, len(items), item)
    return outcomes


def _final(events: Iterable[object]) -> Answer:
    last = None
    for event in events:
        last = event
    assert isinstance(last, Answer)
    return last


def source_mapper(documents: Iterable[tuple[str, str, str]], root: Path) -> Callable[[str], str]:
    """Maps a document ID to its path relative to `root`, from (id, ingested-from folder,
    source) triples; a document outside `root` keeps its absolute path (it can never match)."""
    root = root.resolve()
    paths: dict[str, str] = {}
    for document_id, folder, source in documents:
        absolute = (Path(folder) / source).resolve()
        try:
            paths[document_id] = absolute.relative_to(root).as_posix()
        except ValueError:
            paths[document_id] = absolute.as_posix()
    return lambda document_id: paths.get(document_id, document_id)
