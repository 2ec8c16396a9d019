"""`citadel eval --report` and the progress lines, on hand-made outcomes: the page is
self-contained and shows untrusted text as text. (The page in a real browser, from a real
run, is in tests/test_cli.py.)"""

from __future__ import annotations

import re

from rag.evaluation import (
    CitedSource,
    Evaluation,
    Outcome,
    QaItem,
    Retrieved,
    Step,
    full_report,
)
from ui.cli.render import duration, progress_line
from ui.cli.report import CSP, render_report

HOSTILE = '<img src="http://evil.example/x.png" onerror="alert(1)">'
ITEMS = [
    QaItem("q1", f"Leave days? {HOSTILE}", ("25 days",), ("handbook.md",), (), "fact"),
    QaItem("q2", "ZFS pools?", (), (), (), "unanswerable"),
]


def _evaluation(labels: list[str]) -> Evaluation:
    retrieved = [Retrieved(f"docs/{HOSTILE}.md", (), 0.9), Retrieved("handbook.md", (3,), 0.5)]
    result = Evaluation(
        retrieval={
            "q1": Outcome("q1", retrieved, False, 20.0, evidence=0.5),
            "q2": Outcome("q2", retrieved, True, 20.0, evidence=0.01),
        }
    )
    for n, label in enumerate(labels):
        cited = CitedSource(1, f"docs/{HOSTILE}.md", (3,), bool(n), True, f"snip {HOSTILE}")
        result.answers[label] = {
            "q1": Outcome(
                "q1",
                retrieved,
                False,
                20.0,
                answer=f"25 days [1]. {HOSTILE}",
                model=label,
                correct=True,
                first_token_s=1.0 + n,
                generation_s=3.0 + n,
                prompt_tokens=900,
                output_tokens=40,
                citations=[cited],
                unsupported=[f"Also {HOSTILE}"],
            ),
            "q2": Outcome(
                "q2", retrieved, True, 20.0, answer="I could not find this.", model=label
            ),
        }
        result.seconds[label] = 12.0
    return result


def test_the_report_is_one_offline_page_with_untrusted_text_escaped() -> None:
    labels = ["ollama:a", "weird$model$<b>.gguf"]
    evaluation = _evaluation(labels)

    page = render_report(ITEMS, evaluation, full_report(ITEMS, evaluation), f"qa {HOSTILE}")

    assert f'http-equiv="Content-Security-Policy" content="{CSP}"' in page
    assert "default-src 'none'" in CSP and "script" not in page.lower().replace("noscript", "")
    assert HOSTILE not in page and "&lt;img src=&quot;http://evil.example" in page
    assert "<b>" not in page and "weird$model$&lt;b&gt;.gguf" in page
    # the only addresses are the SVG namespaces (names, never fetched) and the page's anchors
    addresses = set(re.findall(r"(?:src|href)=\"([^\"#][^\"]*)\"", page))
    assert addresses == set()
    assert set(re.findall(r"https?://[^\s\"'<>)&]+", page)) <= {
        "http://www.w3.org/2000/svg",
        "http://www.w3.org/1999/xlink",
        "http://evil.example/x.png",  # escaped text only, checked above
    }
    assert page.count("<svg") == 3
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # three inline charts, no ID shared
    assert page.count('class="answer"') == 4  # two questions, two models side by side
    assert "written by the model" in page and "placed by Citadel" in page


def test_a_report_without_models_shows_the_retrieval_alone() -> None:
    evaluation = _evaluation([])

    page = render_report(ITEMS, evaluation, full_report(ITEMS, evaluation), "qa")

    assert "<svg" not in page and "retrieval only" in page and "refused" in page


def test_progress_lines_say_where_the_run_is_and_how_long_is_left() -> None:
    step = Step(3, 100, ITEMS[1], "ollama:a", 45.0)

    assert progress_line(step) == "3/100 q2 (ollama:a) 45s elapsed, about 24m15s left"
    assert progress_line(Step(4, 4, ITEMS[1], None, 4000)).endswith("1h06m elapsed, done")
    assert [duration(s) for s in (0.4, 59.6, 61, 3599, 7260)] == [
        "0s",
        "1m00s",
        "1m01s",
        "59m59s",
        "2h01m",
    ]
