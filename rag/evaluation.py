"""Built-in evaluation: a labelled question set in, retrieval and answer metrics out.

The question format (one JSON object per line): `id`, `question`, `answers` (strings a
correct answer contains: any one of them), optional `answer_groups` (an answer in several
parts: a list of lists of strings; a correct answer contains one string of EVERY group, and
one of `answers` as well when both are given), `sources` (files, relative to the corpus
root, that answer it; empty when the documents do not), optional `page` (1-based page in
the PDF source that states the answer, or the list of its pages that each state it) and
`kind`. Unknown fields are ignored. Expected strings match whatever
the case and spacing, citation markers (`[1]`, `[~2]`) left out.

Retrieval is measured at the document level: each retrieved passage is mapped to its file
and only a file's first occurrence counts. Hit rate and reciprocal rank come from
llama-index's retrieval metrics.

Answers: each question is retrieved once and every model answers that same retrieval
(`AnswerService.answer`), one model after the other. Per model: answer-contains;
citation precision (the share of citations whose passage holds an expected string), apart
for the markers the model wrote and those Citadel placed (`[~n]`); unsupported sentences
per answer; refusal recall and false refusals of the final answers (the evidence gate or
the model saying the documents do not answer); time to first token p50/p95; tokens/s
(tokens after the first, per second after the first); prompt tokens (mean).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core.evaluation.retrieval.metrics import MRR, HitRate

from rag.citations import shown_for
from rag.errors import CitadelError, ConfigurationError, InvalidQuestion, InvalidQuestionSet
from rag.settings import LlmSettings
from rag.types import Answer

if TYPE_CHECKING:
    from rag.answering import AnswerService
    from rag.retrieval import Retrieval, Retriever

HIT_KS = (1, 3, 5, 10)
MRR_CUTOFF = 10
SWEEP_THRESHOLDS = (0.02, 0.05, 0.08, 0.1, 0.12, 0.14, 0.2, 0.3, 0.5)


@dataclass(frozen=True)
class QaItem:
    id: str
    question: str
    answers: tuple[str, ...]
    sources: tuple[str, ...]
    pages: tuple[int, ...]  # of the PDF source, each stating the answer; () when unlabelled
    kind: str
    answer_groups: tuple[tuple[str, ...], ...] = ()

    @property
    def answerable(self) -> bool:
        return bool(self.sources)

    @property
    def expected(self) -> tuple[tuple[str, ...], ...]:
        """The groups a correct answer takes one string of each from."""
        return ((self.answers,) if self.answers else ()) + self.answer_groups

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


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _item(raw: dict[str, Any], where: str) -> QaItem:
    def strings(name: str) -> tuple[str, ...]:
        value = raw.get(name) or []
        if not _strings(value):
            raise InvalidQuestionSet(f"{where}: {name!r} must be a list of strings")
        return tuple(value)

    question = raw.get("question")
    if not isinstance(question, str) or not question.strip():
        raise InvalidQuestionSet(f"{where}: 'question' must be a non-empty string")
    page = raw.get("page")
    pages = tuple(page) if isinstance(page, list) else () if page is None else (page,)
    if (isinstance(page, list) and not page) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in pages
    ):
        raise InvalidQuestionSet(
            f"{where}: 'page' must be a positive integer, a non-empty list of them, or null"
        )
    sources = tuple(s.strip("/") for s in strings("sources"))
    if pages and not any(s.lower().endswith(".pdf") for s in sources):
        raise InvalidQuestionSet(f"{where}: 'page' is given but no source is a PDF")
    groups = raw.get("answer_groups") or []
    if not isinstance(groups, list) or not all(_strings(g) and g for g in groups):
        raise InvalidQuestionSet(
            f"{where}: 'answer_groups' must be a list of non-empty lists of strings"
        )
    return QaItem(
        id=str(raw.get("id") or where),
        question=question,
        answers=strings("answers"),
        sources=sources,
        pages=tuple(sorted(set(pages))),
        kind=str(raw.get("kind") or ("answerable" if sources else "unanswerable")),
        answer_groups=tuple(tuple(g) for g in groups),
    )


# -- matching ---------------------------------------------------------------------------

_MARKER = re.compile(r"\[~?\d+\]")


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def answers_question(answer: str, item: QaItem) -> bool:
    """The answer holds one string of every expected group (False when none is expected)."""
    haystack = normalise(_MARKER.sub(" ", answer))
    return bool(item.expected) and all(
        any(normalise(e) in haystack for e in group) for group in item.expected
    )


def holds_expected(text: str, item: QaItem) -> bool | None:
    """A passage holds one of the expected strings (None when none is expected)."""
    expected = [e for group in item.expected for e in group]
    if not expected:
        return None
    haystack = normalise(text)
    return any(normalise(e) in haystack for e in expected)


# -- one question's outcome --------------------------------------------------------------


@dataclass(frozen=True)
class Retrieved:
    source: str  # relative to the corpus root
    pages: tuple[int, ...]
    score: float
    page: int | None = None  # of its sentence that best matches the question (PDFs)


@dataclass(frozen=True)
class CitedSource:
    """A citation of an answer, as the evaluation judges it."""

    number: int
    source: str  # relative to the corpus root
    pages: tuple[int, ...]
    aligned: bool  # Citadel placed the marker ([~n]); the model did not write it
    holds_answer: bool | None  # its passage holds an expected string (None: none expected)
    snippet: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "source": self.source,
            "pages": list(self.pages),
            "aligned": self.aligned,
            "holds_answer": self.holds_answer,
            "snippet": self.snippet,
        }

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> CitedSource:
        return cls(
            int(row["number"]),
            row["source"],
            tuple(row.get("pages") or ()),
            bool(row.get("aligned")),
            row.get("holds_answer"),
            row.get("snippet") or "",
        )


_MODEL_FIGURES = ("first_token_s", "generation_s", "prompt_tokens", "output_tokens")


@dataclass
class Outcome:
    """The `--out` line of one question (and one model, when answers are generated)."""

    id: str
    retrieved: list[Retrieved]
    refused: bool
    latency_ms: float  # retrieval
    answer: str | None = None
    evidence: float | None = None
    absent_names: list[str] = field(default_factory=list)  # refused for these, whatever the score
    error: str | None = None  # the question could not be run (e.g. over the length limit)
    notice: str | None = None  # why no answer was generated (search mode)
    cited_pages: dict[str, int] = field(default_factory=dict)  # source -> page cited first
    model: str | None = None
    correct: bool | None = None  # the answer holds the expected strings
    first_token_s: float | None = None
    generation_s: float | None = None  # from the request to the model's last token
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    citations: list[CitedSource] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"id": self.id}
        if self.model is not None:
            row["model"] = self.model
        row["refused"] = self.refused
        if self.answer is not None:
            row["answer"] = self.answer
            row["correct"] = self.correct
        for name in _MODEL_FIGURES:
            if (value := getattr(self, name)) is not None:
                row[name] = round(value, 3) if isinstance(value, float) else value
        if self.answer is not None:
            row["citations"] = [c.to_json() for c in self.citations]
            row["unsupported"] = list(self.unsupported)
        row["retrieved"] = [
            {
                "source": r.source,
                "pages": list(r.pages),
                "score": round(r.score, 6),
                **({"page": r.page} if r.page is not None else {}),
            }
            for r in self.retrieved
        ]
        row["latency_ms"] = round(self.latency_ms, 2)
        if self.evidence is not None:
            row["evidence"] = round(self.evidence, 6)
        if self.absent_names:
            row["absent_names"] = self.absent_names
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
                Retrieved(
                    r["source"],
                    tuple(r.get("pages") or ()),
                    float(r.get("score", 0)),
                    r.get("page"),
                )
                for r in row["retrieved"]
            ],
            refused=bool(row.get("refused")),
            latency_ms=float(row.get("latency_ms", 0)),
            answer=row.get("answer"),
            evidence=row.get("evidence"),
            absent_names=list(row.get("absent_names") or []),
            error=row.get("error"),
            notice=row.get("notice"),
            cited_pages=dict(row.get("cited_pages") or {}),
            model=row.get("model"),
            correct=row.get("correct"),
            citations=[CitedSource.from_json(c) for c in row.get("citations") or []],
            unsupported=list(row.get("unsupported") or []),
            **{name: row.get(name) for name in _MODEL_FIGURES},
        )

    def documents(self) -> list[str]:
        """Retrieved files in rank order, each once."""
        return list(dict.fromkeys(r.source for r in self.retrieved))

    def page_for(self, source: str) -> int | None:
        """The page cited for `source`, else that of the sentence of its best-ranked passage
        that best matches the question (the passage's first page in older `--out` files)."""
        if source in self.cited_pages:
            return self.cited_pages[source]
        for r in self.retrieved:
            if r.source == source and r.pages:
                return r.page if r.page is not None else r.pages[0]
        return None


# -- metrics ----------------------------------------------------------------------------


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


def _percentile(values: Sequence[float], q: float) -> float | None:
    return percentile(values, q) if values else None


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
    paged = [i for i in answerable if i.pages]
    result["page_accuracy"] = _mean([float(_page_right(i, outcomes[i.id])) for i in paged])
    result["paged_questions"] = len(paged)
    result.update(_answer_metrics(items, outcomes))
    result["refusal_recall"] = _mean([float(outcomes[i.id].refused) for i in unanswerable])
    result["false_refusals"] = sum(outcomes[i.id].refused for i in answerable)
    result["false_refusal_rate"] = _mean([float(outcomes[i.id].refused) for i in answerable])
    result["errors"] = sum(outcomes[i.id].error is not None for i in items)
    result["not_generated"] = sum(outcomes[i.id].notice is not None for i in items)
    latencies = [outcomes[i.id].latency_ms for i in items if outcomes[i.id].error is None]
    result["latency_p50_ms"] = percentile(latencies, 50)
    result["latency_p95_ms"] = percentile(latencies, 95)
    return result


def _answer_metrics(items: Sequence[QaItem], outcomes: dict[str, Outcome]) -> dict[str, Any]:
    """What the generated answers are worth (None without any)."""
    generated = [(i, outcomes[i.id]) for i in items if outcomes[i.id].answer is not None]
    judged = [(i, o) for i, o in generated if i.answerable and i.expected]
    cited = [c for _, o in judged if not o.refused for c in o.citations]
    written = [float(bool(c.holds_answer)) for c in cited if not c.aligned]
    placed = [float(bool(c.holds_answer)) for c in cited if c.aligned]
    timed = [o for _, o in generated if o.first_token_s is not None]
    writing = [
        (o.output_tokens - 1, o.generation_s - o.first_token_s)
        for o in timed
        if o.output_tokens and o.output_tokens > 1 and o.generation_s and o.first_token_s
    ]
    writing_s = sum(s for _, s in writing)
    prompts = [float(o.prompt_tokens) for _, o in generated if o.prompt_tokens is not None]
    return {
        "answer_contains": _mean([float(_answered_right(i, o)) for i, o in judged]),
        "citation_precision_model": _mean(written),
        "citation_precision_citadel": _mean(placed),
        "citations_model": len(written),
        "citations_citadel": len(placed),
        "unsupported_per_answer": _mean(
            [float(len(o.unsupported)) for _, o in generated if not o.refused]
        ),
        "ttft_p50_s": _percentile([o.first_token_s or 0.0 for o in timed], 50),
        "ttft_p95_s": _percentile([o.first_token_s or 0.0 for o in timed], 95),
        "answer_p50_s": _percentile([o.generation_s or 0.0 for o in timed], 50),
        "tokens_per_s": sum(n for n, _ in writing) / writing_s if writing_s > 0 else None,
        "prompt_tokens_mean": _mean(prompts),
    }


def _answered_right(item: QaItem, outcome: Outcome) -> bool:
    return not outcome.refused and answers_question(outcome.answer or "", item)


def _page_right(item: QaItem, outcome: Outcome) -> bool:
    pdfs = [s for s in item.sources if s.lower().endswith(".pdf")]
    return any(outcome.page_for(s) in item.pages for s in pdfs)


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
        if i.answerable and i.pages and not _page_right(i, o):
            pdf = next((s for s in i.sources if s.lower().endswith(".pdf")), "")
            expected = " or ".join(map(str, i.pages))
            problems.append(f"cited page {o.page_for(pdf)}, not {expected}")
        if o.error is not None:
            problems.append(f"not run: {o.error}")
        if i.answerable and o.refused:
            absent = ", ".join(o.absent_names)
            problems.append(f"refused: no document mentions {absent}" if absent else "refused")
        if not i.answerable and not o.refused:
            problems.append("answered an unanswerable question")
        judged = o.answer is not None and i.answerable and i.expected and not o.refused
        if judged and not _answered_right(i, o):
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
            outcome = outcomes[i.id]
            evidence = outcome.evidence
            return bool(outcome.absent_names) or (evidence is not None and evidence < t)

        unanswerable = [i for i in items if not i.answerable]
        rows.append(
            {
                "threshold": t,
                "refusal_recall": _mean([float(refused(i)) for i in unanswerable]) or 0.0,
                "false_refusals": float(sum(refused(i) for i in items if i.answerable)),
            }
        )
    return rows


# -- the models compared ----------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """A model named on the command line: `ollama:NAME`, `openai:NAME` (at `llm.host`) or
    the path of a .gguf file (the embedded llama.cpp), with the settings that build it."""

    spec: str
    label: str  # how tables name it: the spec, or the file's name for a .gguf file
    llm: LlmSettings


def model_spec(spec: str, base: LlmSettings) -> ModelSpec:
    """One model spec, checked (ConfigurationError with what to write instead)."""
    text = spec.strip()
    for provider in ("ollama", "openai"):
        if text.startswith(f"{provider}:"):
            name = text[len(provider) + 1 :].strip()
            if not name:
                raise ConfigurationError(f"model {spec!r}: the model's name is missing")
            update = {"provider": provider, "model": name, "model_path": None}
            return ModelSpec(text, text, base.model_copy(update=update))
    if text.lower().endswith(".gguf"):
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConfigurationError(f"model {spec!r}: no such file")
        gguf = {"provider": "llamacpp", "model_path": path.resolve()}
        return ModelSpec(text, path.name, base.model_copy(update=gguf))
    raise ConfigurationError(
        f"model {spec!r}: say who serves it: ollama:NAME, openai:NAME (the server at "
        "llm.host), or the path of a .gguf file (the embedded llama.cpp)"
    )


def model_specs(specs: Sequence[str], base: LlmSettings) -> list[ModelSpec]:
    """The models to compare, each named once; labels made unique."""
    parsed = [model_spec(s, base) for s in specs]
    given = [p.spec for p in parsed]
    if twice := sorted({s for s in given if given.count(s) > 1}):
        raise ConfigurationError(f"model {twice[0]!r} is given twice")
    labels = [p.label for p in parsed]
    return [replace(p, label=p.spec) if labels.count(p.label) > 1 else p for p in parsed]


@dataclass(frozen=True)
class ModelRun:
    """One model of an evaluation: its name in the figures and the service answering."""

    label: str
    answers: AnswerService
    finish: Callable[[], None] | None = None  # called after its last question (stops a model)


@dataclass(frozen=True)
class Step:
    """A question done (for one model): where the run is, for its progress line."""

    n: int
    total: int
    item: QaItem
    model: str | None
    elapsed_s: float
    pace_s: float | None = None  # seconds per question of the current model so far

    @property
    def eta_s(self) -> float:
        """Time left at the current model's pace (models differ), else the run's."""
        pace = self.pace_s if self.pace_s is not None else self.elapsed_s / self.n
        return pace * (self.total - self.n)


@dataclass
class Evaluation:
    """Outcomes by question ID: of the retrieval, and of each model's answers."""

    retrieval: dict[str, Outcome] = field(default_factory=dict)
    answers: dict[str, dict[str, Outcome]] = field(default_factory=dict)  # by model label
    seconds: dict[str, float] = field(default_factory=dict)  # each model's wall time


# The question in the language of the passages it found, or None (AnswerService.translated).
Translate = Callable[[str, "Retrieval"], "str | None"]


def run(
    items: Sequence[QaItem],
    retriever: Retriever,
    collections: Sequence[str],
    to_source: Callable[[str], str],
    models: Sequence[ModelRun] = (),
    progress: Callable[[Step], None] | None = None,
    record: Callable[[Outcome], None] | None = None,
    top_k: int = 10,
    answer_top_k: int | None = None,
    translate: Translate | None = None,
) -> Evaluation:
    """Retrieve each question once (`top_k` passages ranked), then answer it with each model
    in turn from that retrieval (its first `answer_top_k` passages, as `ask` would have).
    With `translate` (AnswerService.translated), a question in another language than the
    passages it found is searched again translated, as `ask` does.
    Each outcome goes to `record` as soon as it is done; `to_source` maps a document ID to
    its corpus-relative path."""
    result = Evaluation(answers={m.label: {} for m in models})
    retrievals: dict[str, Retrieval | None] = {}
    started = time.monotonic()
    total = len(items) * max(1, len(models))

    def retrieved(item: QaItem) -> Retrieval | None:
        if item.id not in result.retrieval:
            outcome, retrievals[item.id] = _retrieve(
                item, retriever, collections, to_source, top_k, translate
            )
            result.retrieval[item.id] = outcome
        return retrievals[item.id]

    def done(outcome: Outcome, item: QaItem, model: ModelRun | None = None) -> None:
        if record is not None:
            record(outcome)
        if progress is not None:
            now = time.monotonic()
            if model is None:
                step = Step(len(result.retrieval), total, item, None, now - started)
            else:
                answered = result.answers[model.label]
                pace = (now - model_started) / len(answered)
                n = sum(map(len, result.answers.values()))
                step = Step(n, total, item, model.label, now - started, pace)
            progress(step)

    for item in [] if models else items:
        retrieved(item)
        done(result.retrieval[item.id], item)
    for model in models:
        model_started = time.monotonic()
        try:
            for item in items:
                retrieval = retrieved(item)
                if retrieval is not None and answer_top_k:
                    retrieval = replace(retrieval, passages=retrieval.passages[:answer_top_k])
                outcome = _answered(item, result.retrieval[item.id], retrieval, model, to_source)
                result.answers[model.label][item.id] = outcome
                done(outcome, item, model)
        finally:
            result.seconds[model.label] = time.monotonic() - model_started
            if model.finish is not None:
                model.finish()
    return result


def _retrieve(
    item: QaItem,
    retriever: Retriever,
    collections: Sequence[str],
    to_source: Callable[[str], str],
    top_k: int,
    translate: Translate | None = None,
) -> tuple[Outcome, Retrieval | None]:
    try:
        retrieval = retriever.retrieve(item.question, collections, top_k=top_k)
        translated = translate(item.question, retrieval) if translate is not None else None
        if translated:
            retrieval = retriever.retrieve(item.question, collections, top_k=top_k, also=translated)
    except InvalidQuestion as exc:
        return Outcome(item.id, [], refused=False, latency_ms=0.0, error=str(exc)), None
    outcome = Outcome(
        id=item.id,
        retrieved=[
            Retrieved(
                to_source(p.document_id), p.pages, p.score, shown_for(p, retrieval.question).page
            )
            for p in retrieval.passages
        ],
        refused=retrieval.weak_evidence,
        latency_ms=retrieval.latency_ms,
        evidence=retrieval.evidence.score,
        absent_names=list(retrieval.evidence.absent_names),
    )
    return outcome, retrieval


def _answered(
    item: QaItem,
    retrieved: Outcome,
    retrieval: Retrieval | None,
    model: ModelRun,
    to_source: Callable[[str], str],
) -> Outcome:
    outcome = replace(retrieved, model=model.label, cited_pages={}, citations=[], unsupported=[])
    if retrieval is None:
        return outcome  # not run: the retrieval's error says why
    try:
        answer = _final(model.answers.answer(retrieval, retrieval.question))
    except CitadelError as exc:
        outcome.error = str(exc)
        return outcome
    outcome.refused = answer.refused
    if answer.search_mode:
        outcome.notice = answer.notice  # no answer generated: not counted as one
        return outcome
    outcome.answer = answer.text
    outcome.correct = answers_question(answer.text, item) if item.expected else None
    outcome.first_token_s, outcome.generation_s = answer.first_token_s, answer.generation_s
    outcome.prompt_tokens, outcome.output_tokens = answer.prompt_tokens, answer.output_tokens
    outcome.unsupported = list(answer.unsupported)
    for c in answer.citations:
        source = to_source(c.passage.document_id)
        outcome.citations.append(
            CitedSource(
                c.number,
                source,
                c.passage.pages,
                c.aligned,
                holds_expected(c.passage.text, item),
                c.snippet,
            )
        )
        if c.passage.page is not None:
            outcome.cited_pages.setdefault(source, c.passage.page)
    return outcome


def evaluate(
    items: Sequence[QaItem],
    retriever: Retriever,
    collections: Sequence[str],
    to_source: Callable[[str], str],
    answers: AnswerService | None = None,
    top_k: int = 10,
) -> dict[str, Outcome]:
    """`run` with one answer service, or none: its outcomes by question ID."""
    models = [ModelRun("answers", answers)] if answers is not None else []
    result = run(items, retriever, collections, to_source, models, top_k=top_k)
    return result.answers["answers"] if answers is not None else result.retrieval


def full_report(items: Sequence[QaItem], evaluation: Evaluation) -> dict[str, Any]:
    """What `citadel eval --json` prints: the figures of the retrieval with the answers of
    the one model (of the retrieval alone when several are compared), the refusal sweep,
    and under `models` each model's own figures."""
    runs = evaluation.answers
    main = next(iter(runs.values())) if len(runs) == 1 else evaluation.retrieval
    result = report(items, main)
    result["refusal_sweep"] = refusal_sweep(items, evaluation.retrieval)
    if runs:
        result["models"] = [
            {"model": label, "seconds": round(evaluation.seconds.get(label, 0.0), 1)}
            | report(items, outcomes)
            for label, outcomes in runs.items()
        ]
    return result


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
