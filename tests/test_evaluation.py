"""The scorer on its own: the figures an admin reads must be computed exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.evaluation import (
    InvalidQuestionSet,
    Outcome,
    Retrieved,
    load_questions,
    refusal_sweep,
    report,
)


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


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "x", "question": ""}', "non-empty"),
        ('{"id": "x", "question": "q", "sources": ["a.docx"], "page": 3}', "no source is a PDF"),
        ('{"id": "x", "question": "q", "page": 0}', "positive integer"),
        ('{"id": "x", "question": "q", "answers": "25"}', "list of strings"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_bad_question_lines_are_reported_with_their_line(tmp_path: Path, line, message) -> None:
    path = tmp_path / "qa.jsonl"
    path.write_text('{"id": "ok", "question": "fine?"}\n' + line + "\n", encoding="utf-8")

    with pytest.raises(InvalidQuestionSet, match=message) as raised:
        load_questions(path)
    assert "qa.jsonl:2" in str(raised.value)
