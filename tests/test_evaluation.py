"""The scorer on its own: the figures an admin reads must be computed exactly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.errors import ConfigurationError
from rag.evaluation import (
    CitedSource,
    InvalidQuestionSet,
    ModelRun,
    Outcome,
    QaItem,
    Retrieved,
    Step,
    answers_question,
    failures,
    full_report,
    load_questions,
    model_specs,
    refusal_sweep,
    report,
    run,
)
from rag.evidence import Evidence
from rag.retrieval import Retrieval
from rag.settings import LlmSettings
from rag.types import Answer, AnswerEvent, Citation, Delta, Passage


def _write(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "qa.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_document_level_metrics_pages_and_refusals(tmp_path: Path) -> None:
    items = load_questions(
        _write(
            tmp_path,
            [
                {"id": "a", "question": "q", "answers": ["25 days"], "sources": ["en/a.html"]},
                {"id": "b", "question": "q", "answers": ["x"], "sources": ["pdf/b.pdf"], "page": 4},
                {"id": "c", "question": "q", "answers": [], "sources": [], "kind": "unanswerable"},
            ],
        )
    )
    outcomes = {
        # a.html appears twice (two chunks) at ranks 2 and 3: document rank 2.
        "a": Outcome(
            "a",
            [
                Retrieved("x.md", (), 0.9),
                Retrieved("en/a.html", (), 0.8),
                Retrieved("en/a.html", (), 0.7),
            ],
            False,
            10.0,
            "It is 25 DAYS.",
            0.5,
        ),
        "b": Outcome(
            "b",
            [Retrieved("pdf/b.pdf", (3,), 0.9), Retrieved("pdf/b.pdf", (4,), 0.8)],
            False,
            30.0,
            "wrong",
            0.05,
        ),
        "c": Outcome("c", [Retrieved("x.md", (), 0.1)], True, 20.0, None, 0.01),
    }

    figures = report(items, outcomes)

    overall = figures["overall"]
    assert overall["hit@1"] == 0.5 and overall["hit@3"] == 1.0
    assert overall["mrr@10"] == pytest.approx((1 / 2 + 1) / 2)
    assert overall["page_accuracy"] == 0.0  # the best-ranked chunk of b.pdf is on page 3
    assert overall["answer_contains"] == 0.5  # case and spacing do not matter
    assert overall["refusal_recall"] == 1.0 and overall["false_refusals"] == 0
    assert overall["latency_p50_ms"] == 20.0 and overall["latency_p95_ms"] == 30.0
    assert set(figures["by_group"]) == {"en", "pdf", "none"}
    assert [
        (r["threshold"], r["false_refusals"]) for r in refusal_sweep(items, outcomes, [0.1])
    ] == [(0.1, 1.0)]
    outcomes["b"].cited_pages["pdf/b.pdf"] = 4  # what the answer cited wins
    assert report(items, outcomes)["overall"]["page_accuracy"] == 1.0
    assert Outcome.from_json(outcomes["b"].to_json()).cited_pages == {"pdf/b.pdf": 4}


def test_a_question_refused_for_a_name_is_refused_at_every_threshold(tmp_path: Path) -> None:
    """The sweep tells an admin what each evidence threshold would refuse; a question
    naming what no document mentions is refused whatever the threshold, and says why."""
    (item,) = load_questions(
        _write(tmp_path, [{"id": "c", "question": "Poetry?", "answers": [], "sources": []}])
    )
    named = Outcome("c", [Retrieved("x.md", (), 0.9)], True, 1.0, evidence=0.9)
    named.absent_names.append("Poetry")

    sweep = refusal_sweep([item], {"c": Outcome.from_json(named.to_json())}, [0.1, 0.5])

    assert [r["refusal_recall"] for r in sweep] == [1.0, 1.0]
    # An answerable question refused so says which name the documents lack.
    (answerable,) = load_questions(
        _write(tmp_path, [{"id": "c", "question": "Poetry?", "answers": [], "sources": ["a.md"]}])
    )
    assert failures([answerable], {"c": named})[0]["problems"] == [
        "not in top 5",
        "refused: no document mentions Poetry",
    ]
    assert "absent_names" not in Outcome("c", [], False, 1.0, evidence=0.9).to_json()


def test_a_question_may_name_every_page_that_states_its_answer(tmp_path: Path) -> None:
    line = {"id": "b", "question": "q", "answers": ["x"], "sources": ["b.pdf"], "page": [5, 3]}
    (item,) = load_questions(_write(tmp_path, [line]))
    cited = {page: Outcome("b", [Retrieved("b.pdf", (page,), 0.9)], False, 1.0) for page in (3, 4)}

    assert item.pages == (3, 5)
    assert report([item], {"b": cited[3]})["overall"]["page_accuracy"] == 1.0
    assert report([item], {"b": cited[4]})["overall"]["page_accuracy"] == 0.0
    assert "cited page 4, not 3 or 5" in failures([item], {"b": cited[4]})[0]["problems"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "x", "question": ""}', "non-empty"),
        ('{"id": "x", "question": "q", "sources": ["a.docx"], "page": 3}', "no source is a PDF"),
        ('{"id": "x", "question": "q", "page": 0}', "positive integer"),
        ('{"id": "x", "question": "q", "page": []}', "non-empty list"),
        ('{"id": "x", "question": "q", "page": [2, "3"]}', "positive integer"),
        ('{"id": "x", "question": "q", "answers": "25"}', "list of strings"),
        ("[1, 2]", "JSON object"),
        ('{"id": "x", "question": "q", "answer_groups": ["a", "b"]}', "answer_groups"),
        ('{"id": "x", "question": "q", "answer_groups": [[]]}', "non-empty lists"),
    ],
)
def test_bad_question_lines_are_reported_with_their_line(tmp_path: Path, line, message) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text('{"id": "ok", "question": "fine?"}\n' + line + "\n", encoding="utf-8")

    with pytest.raises(InvalidQuestionSet, match=message) as raised:
        load_questions(path)
    assert "qa.jsonl:2" in str(raised.value)


# -- answers: groups, citations, figures, with fake answer services -----------------------


def test_answer_groups_need_one_string_of_every_group(tmp_path: Path) -> None:
    [item] = load_questions(
        _write(
            tmp_path,
            [
                {
                    "id": "dhcp",
                    "question": "Which facility, and what is it for?",
                    "answers": [],
                    "answer_groups": [["local7"], ["boot messages", "boot"]],
                    "sources": ["docx/sect.dhcp.docx"],
                }
            ],
        )
    )

    assert item.expected == (("local7",), ("boot messages", "boot"))
    assert answers_question("It logs to LOCAL7 [1], meant for boot\nmessages [~2].", item)
    assert not answers_question("It logs to local7 [1].", item)  # one part missing
    assert not answers_question("Boot messages go to syslog.", item)
    both = QaItem("x", "q", ("dhcpd",), ("a.md",), (), "fact", (("local7",),))
    assert answers_question("dhcpd uses local7", both) and not answers_question("local7", both)


def _passage(n: int, text: str, source: str = "a.md", pages: tuple[int, ...] = ()) -> Passage:
    return Passage(f"c{n}", "hr", source, source, "md", source, (), pages, n, text, 1.0 / n)


class FakeRetriever:
    """Passages given per question; counts the retrievals."""

    def __init__(self, passages: dict[str, list[Passage]], weak: set[str] = frozenset()) -> None:
        self.passages, self.weak, self.calls = passages, weak, []

    def retrieve(self, question, collections, search_filter=None, top_k=None) -> Retrieval:
        self.calls.append((question, top_k))
        score = 0.01 if question in self.weak else 0.5
        return Retrieval(
            question, self.passages[question][:top_k], Evidence(score, 0.1, score, None), 12.0
        )


class ScriptedAnswers:
    """An answer service that answers from the retrieval it is given, as scripted per question
    (cited passages are numbered in the retrieval's order), and logs what it saw."""

    def __init__(self, scripts: dict[str, dict], seen: list | None = None) -> None:
        self.scripts, self.seen = scripts, seen if seen is not None else []

    def answer(self, retrieval: Retrieval, question: str) -> Iterator[AnswerEvent]:
        self.seen.append((question, len(retrieval.passages)))
        base = {"question": question, "standalone_question": question}
        if retrieval.weak_evidence:
            yield Answer(
                **base, text="I could not find this.", citations=[], passages=[], refused=True
            )
            return
        script = self.scripts[question]
        yield Delta(script["text"])
        citations = [
            Citation(n, retrieval.passages[n - 1], f"snippet {n}", aligned)
            for n, aligned in script.get("cites", [])
        ]
        yield Answer(
            **base,
            text=script["text"],
            citations=citations,
            passages=retrieval.passages,
            refused=script.get("refused", False),
            unsupported=script.get("unsupported", []),
            prompt_tokens=script.get("prompt", 100),
            output_tokens=script.get("output", 11),
            first_token_s=script.get("ttft", 1.0),
            generation_s=script.get("total", 2.0),
            model="fake",
        )


QA = [
    {"id": "leave", "question": "leave?", "answers": ["25 days"], "sources": ["a.md"]},
    {
        "id": "laptop",
        "question": "laptop?",
        "answers": ["one hour"],
        "sources": ["b.pdf"],
        "page": 2,
    },
    {"id": "zfs", "question": "zfs?", "answers": [], "sources": []},
]
PASSAGES = {
    "leave?": [
        _passage(1, "Employees get 25 days of leave."),
        _passage(2, "Leave requests go to the manager."),
        _passage(3, "Unused leave: 5 days carry over."),
    ],
    "laptop?": [_passage(1, "Report a lost laptop within one hour.", "b.pdf", (2,))],
    "zfs?": [_passage(1, "Nothing about pools.")],
}


def test_citation_precision_is_split_between_model_written_and_citadel_placed(
    tmp_path: Path,
) -> None:
    items = load_questions(_write(tmp_path, QA))
    answers = ScriptedAnswers(
        {
            # the model cited [1] (holds "25 days") and [2] (does not); Citadel placed [~3]
            "leave?": {
                "text": "25 days [1], ask [2]; more [~3].",
                "cites": [(1, False), (2, False), (3, True)],
            },
            "laptop?": {
                "text": "Within one hour [~1].",
                "cites": [(1, True)],
                "unsupported": ["x", "y"],
            },
        }
    )
    retriever = FakeRetriever(PASSAGES, weak={"zfs?"})

    done = run(items, retriever, ["hr"], lambda d: d, [ModelRun("m", answers)])
    figures = full_report(items, done)["overall"]

    assert figures["citation_precision_model"] == 0.5  # 1 of the 2 the model wrote
    assert figures["citation_precision_citadel"] == 0.5  # [~3] no, laptop's [~1] yes
    assert (figures["citations_model"], figures["citations_citadel"]) == (2, 2)
    assert figures["answer_contains"] == 1.0
    assert figures["unsupported_per_answer"] == 1.0  # 0 and 2, over the two answers
    assert figures["page_accuracy"] == 1.0
    leave = done.answers["m"]["leave"]
    assert [(c.number, c.aligned, c.holds_answer) for c in leave.citations] == [
        (1, False, True),
        (2, False, False),
        (3, True, False),
    ]
    assert done.answers["m"]["zfs"].citations == [] and done.answers["m"]["zfs"].refused


def test_retrieval_runs_once_per_question_and_every_model_answers_it(tmp_path: Path) -> None:
    items = load_questions(_write(tmp_path, QA))
    scripts = {
        "leave?": {"text": "25 days [1].", "cites": [(1, False)]},
        "laptop?": {"text": "one hour [1].", "cites": [(1, False)]},
    }
    retriever = FakeRetriever(PASSAGES, weak={"zfs?"})
    first, second = ScriptedAnswers(scripts), ScriptedAnswers(scripts)
    finished: list[str] = []

    done = run(
        items,
        retriever,
        ["hr"],
        lambda d: d,
        [ModelRun("a", first, lambda: finished.append("a")), ModelRun("b", second)],
        top_k=10,
        answer_top_k=2,
    )

    assert retriever.calls == [("leave?", 10), ("laptop?", 10), ("zfs?", 10)]
    # each model got the same retrieval, cut to what `ask` gives the model (top_k 2)
    assert first.seen == second.seen == [("leave?", 2), ("laptop?", 1), ("zfs?", 1)]
    assert finished == ["a"]
    assert len(done.retrieval["leave"].retrieved) == 3  # the metrics see the 10 best
    assert set(done.answers) == {"a", "b"} and set(done.seconds) == {"a", "b"}
    result = full_report(items, done)
    assert [m["model"] for m in result["models"]] == ["a", "b"]
    assert result["overall"]["answer_contains"] is None  # two models: see "models"


def test_each_outcome_is_recorded_before_the_next_question_is_answered(tmp_path: Path) -> None:
    items = load_questions(_write(tmp_path, QA))
    recorded: list[dict] = []
    seen: list = []
    scripts = {q: {"text": "25 days [1].", "cites": [(1, False)]} for q in ("leave?", "laptop?")}
    answers = ScriptedAnswers(scripts, seen)
    steps: list[Step] = []

    def record(outcome: Outcome) -> None:
        assert len(recorded) == len(seen) - 1  # written as soon as its answer is done
        recorded.append(json.loads(json.dumps(outcome.to_json())))

    run(
        items,
        FakeRetriever(PASSAGES, weak={"zfs?"}),
        ["hr"],
        lambda d: d,
        [ModelRun("a", answers), ModelRun("b", ScriptedAnswers(scripts, seen))],
        progress=steps.append,
        record=record,
    )

    assert [(r["id"], r["model"]) for r in recorded] == [
        (i, m) for m in "ab" for i in ("leave", "laptop", "zfs")
    ]
    line = recorded[0]
    assert line["first_token_s"] == 1.0 and line["generation_s"] == 2.0
    assert line["prompt_tokens"] == 100 and line["output_tokens"] == 11
    assert line["correct"] is True and line["unsupported"] == []
    assert line["citations"] == [
        {
            "number": 1,
            "source": "a.md",
            "pages": [],
            "aligned": False,
            "holds_answer": True,
            "snippet": "snippet 1",
        }
    ]
    assert Outcome.from_json(line).citations == [
        CitedSource(1, "a.md", (), False, True, "snippet 1")
    ]
    assert [(s.n, s.total, s.model) for s in steps] == [
        (n, 6, m) for n, m in zip(range(1, 7), "aaabbb", strict=True)
    ]
    assert steps[-1].eta_s == 0.0
    # what is left goes at the pace of the model answering now
    assert steps[3].pace_s is not None and steps[3].eta_s == pytest.approx(steps[3].pace_s * 2)
    assert steps[3].pace_s <= steps[3].elapsed_s


def test_model_figures_and_refusals_are_those_of_the_final_answers(tmp_path: Path) -> None:
    items = load_questions(_write(tmp_path, QA))
    answers = ScriptedAnswers(
        {
            "leave?": {
                "text": "25 days [1].",
                "cites": [(1, False)],
                "ttft": 1.0,
                "total": 3.0,
                "output": 21,
                "prompt": 300,
            },
            # the model refuses a question the documents answer: a false refusal
            "laptop?": {
                "text": "I could not find this.",
                "refused": True,
                "ttft": 2.0,
                "total": 2.5,
                "output": 6,
                "prompt": 100,
            },
            # evidence is strong, but the model rightly says the documents do not cover it
            "zfs?": {
                "text": "I could not find this.",
                "refused": True,
                "ttft": 3.0,
                "total": 3.5,
                "output": 6,
                "prompt": 200,
            },
        }
    )

    done = run(items, FakeRetriever(PASSAGES), ["hr"], lambda d: d, [ModelRun("m", answers)])
    figures = full_report(items, done)["models"][0]["overall"]

    assert figures["refusal_recall"] == 1.0 and figures["false_refusals"] == 1
    assert figures["answer_contains"] == 0.5
    assert (figures["ttft_p50_s"], figures["ttft_p95_s"]) == (2.0, 3.0)
    assert figures["tokens_per_s"] == pytest.approx((20 + 5 + 5) / (2.0 + 0.5 + 0.5))
    assert figures["prompt_tokens_mean"] == 200
    assert figures["unsupported_per_answer"] == 0.0  # of the one answer not refused
    assert done.retrieval["zfs"].refused is False  # the gate alone would have answered


def test_model_specs_name_their_provider(tmp_path: Path) -> None:
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    base = LlmSettings(host="http://models:11434", temperature=0.3)

    specs = model_specs(["ollama:llama3.1:8b", "openai:qwen2.5", str(gguf)], base)

    assert [(s.label, s.llm.provider, s.llm.model) for s in specs[:2]] == [
        ("ollama:llama3.1:8b", "ollama", "llama3.1:8b"),
        ("openai:qwen2.5", "openai", "qwen2.5"),
    ]
    assert specs[2].label == "tiny.gguf" and specs[2].llm.provider == "llamacpp"
    assert specs[2].llm.model_path == gguf.resolve()
    assert all(s.llm.host == base.host and s.llm.temperature == 0.3 for s in specs)
    other = tmp_path / "other"
    other.mkdir()
    (other / "tiny.gguf").write_bytes(b"GGUF")
    same_name = model_specs([str(gguf), str(other / "tiny.gguf")], base)
    assert [s.label for s in same_name] == [str(gguf), str(other / "tiny.gguf")]


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["llama3.1:8b"], "say who serves it"),
        (["ollama:"], "name is missing"),
        (["/nowhere/model.gguf"], "no such file"),
        (["ollama:a", "ollama:a"], "given twice"),
    ],
)
def test_bad_model_specs_are_refused_with_what_to_write(specs, message) -> None:
    with pytest.raises(ConfigurationError, match=message):
        model_specs(specs, LlmSettings())
