"""Citation checking on its own: markers, alignment, snippets, streaming filter."""

from __future__ import annotations

import pytest

from rag.citations import MarkerFilter, cite, marker_support, names_in
from rag.types import Passage


def _passage(n: int, text: str, pages: tuple[int, ...] = ()) -> Passage:
    return Passage(
        chunk_id=f"c{n}",
        collection="docs",
        document_id=f"d{n}",
        source=f"doc{n}.pdf",
        file_type="pdf",
        title=f"Doc {n}",
        headings=(),
        pages=pages,
        number=0,
        text=text,
        score=1.0,
    )


PASSAGES = [
    _passage(
        1,
        "Laptops lock the screen after 5 minutes. A lost device is reported within one hour.",
        (2,),
    ),
    _passage(2, "Employees receive 25 days of paid annual leave per calendar year.", (1,)),
]


def test_valid_markers_resolve_and_invented_ones_vanish() -> None:
    cited = cite(
        "Report a lost laptop within one hour [1][7]. Leave is 25 days [Source 2, 0].", PASSAGES
    )

    assert cited.text == "Report a lost laptop within one hour [1]. Leave is 25 days [2]."
    assert [(c.number, c.passage.source, c.passage.location) for c in cited.citations] == [
        (1, "doc1.pdf", "page 2"),
        (2, "doc2.pdf", "page 1"),
    ]
    assert cited.citations[0].snippet == "A lost device is reported within one hour."
    assert cited.dropped_markers == ["[7]", "[Source 2, 0]"]


def test_unmarked_claims_are_aligned_or_reported_unsupported() -> None:
    cited = cite(
        "Here is what the policy says:\nEmployees receive 25 days of paid leave each year. "
        "The canteen serves pizza on Fridays.",
        PASSAGES,
    )

    assert "25 days of paid leave each year [~2]." in cited.text  # Citadel's, shown as such
    assert cited.citations[0].aligned
    assert cited.unsupported == ["The canteen serves pizza on Fridays."]


def test_streaming_filter_hides_invalid_markers_split_across_tokens() -> None:
    shown = MarkerFilter(sources=2)
    tokens = ["Within one hour ", "[", "1", "]", " and [", "9]", ". See [a note]", " [2", "]."]

    text = "".join(shown.feed(t) for t in tokens) + shown.flush()

    # The invalid marker goes with the space before it, as in the final text.
    assert text == "Within one hour [1] and. See [a note] [2]."
    assert cite("Within one hour [1] and [9]. See [a note] [2].", PASSAGES).text == text


def test_a_half_written_marker_at_the_end_of_a_cut_stream_is_dropped() -> None:
    shown = MarkerFilter(sources=2)

    text = shown.feed("Leave is 25 days [") + shown.feed("2") + shown.flush()

    assert text == "Leave is 25 days"  # the space goes with the marker, as in the final text


def test_odd_marker_forms_are_checked_too() -> None:
    cited = cite(
        "Rotation is every 90 days [1-3]. Leave is 25 days [^2]. Both apply [1 2].", PASSAGES
    )

    assert (
        cited.text == "Rotation is every 90 days [1][2]. Leave is 25 days [2]. Both apply [1][2]."
    )
    shown = MarkerFilter(sources=2)
    text = shown.feed("See [[9]] now, [see [7]] and [1–2].") + shown.flush()
    assert text == "See [] now, [see] and [1][2]."


def test_a_marker_the_model_wrote_is_not_labelled_as_matched_by_citadel() -> None:
    cited = cite(
        "Report a lost device within one hour [1]. A lost device is reported within one hour.",
        PASSAGES,
    )

    assert cited.text.endswith("within one hour [~1].")  # the sentence Citadel matched
    assert [(c.number, c.aligned) for c in cited.citations] == [(1, False)]


def test_a_marker_after_the_last_sentence_stays_with_it() -> None:
    cited = cite("Staff in Lyon get 25 days of paid annual leave. [2]", PASSAGES)

    assert cited.text == "Staff in Lyon get 25 days of paid annual leave. [2]"
    assert [(c.number, c.aligned) for c in cited.citations] == [(2, False)]


def test_an_aligned_citation_must_be_earned_by_the_claims_specific_content() -> None:
    """A passage about the same thing with another number, setting or name does not back a
    claim: the sentence is shown as unsupported instead."""
    passages = [
        _passage(1, "The default value of max_connections is 100 on every server."),
        _passage(2, "Employees receive 25 days of paid annual leave per calendar year."),
    ]
    cited = cite(
        "The default value of max_pool_size is 100 on every server. "
        "Employees receive 30 days of paid annual leave per calendar year. "
        "Employees receive 25 days of paid annual leave per calendar year.",
        passages,
    )

    assert cited.unsupported == [
        "The default value of max_pool_size is 100 on every server.",
        "Employees receive 30 days of paid annual leave per calendar year.",
    ]
    assert [(c.number, c.aligned) for c in cited.citations] == [(2, True)]
    assert cited.text.endswith("per calendar year [~2].")


def test_a_model_citation_whose_numbers_its_source_lacks_is_flagged() -> None:
    cited = cite("Leave is 30 days per year [2]. Leave is 25 days per year [2].", PASSAGES)

    assert cited.text == "Leave is 30 days per year [2]. Leave is 25 days per year [2]."
    assert cited.unsupported == ["Leave is 30 days per year."]


def test_the_models_text_is_kept_as_written() -> None:
    """Only invalid markers go: French spacing before punctuation and code stay."""
    answer = (
        "Le fichier de configuration est : `/etc/resolv.conf` [1] ! Voir aussi [9] ; "
        "```\nx = f(a , b) [3]\n```"
    )
    cited = cite(answer, PASSAGES)

    assert cited.text.startswith("Le fichier de configuration est : `/etc/resolv.conf` [1] !")
    assert "Voir aussi ; " in cited.text
    assert "x = f(a , b)\n```" in cited.text


def test_a_number_belonging_to_something_else_in_the_passage_does_not_earn_it() -> None:
    passages = [
        _passage(
            1,
            "Packages of the target release get pin priority 990. "
            "Versions that are already installed get 100. All others get 500.",
        )
    ]
    cited = cite("The target release gets pin priority 500.", passages)

    assert cited.unsupported == ["The target release gets pin priority 500."]
    assert cited.citations == []
    right = cite("The target release gets pin priority 990.", passages)
    assert [(c.number, c.aligned) for c in right.citations] == [(1, True)]


def test_a_call_quoted_in_the_answer_is_found_in_its_documented_signature() -> None:
    """Answers write `timeit.repeat()`; the reference writes the function with its
    parameters. The name and what the answer passes are what must be in the source."""
    passages = [
        _passage(
            1,
            "timeit.repeat(stmt='pass', setup='pass', repeat=5, number=1000000)\n\n"
            "Create a Timer instance and run its repeat() method with the given repeat "
            "count; the default number of repetitions changed from 3 to 5.",
        )
    ]
    right = cite("The default number of repetitions for `timeit.repeat()` is 5.", passages)
    assert [(c.number, c.aligned) for c in right.citations] == [(1, True)]

    wrong = cite("The default number of repetitions for `timeit.repeat(number=7)` is 5.", passages)
    assert wrong.citations == []  # 7 is in no source


def test_a_plural_in_the_source_supports_the_singular_of_the_answer() -> None:
    passages = [
        _passage(
            1,
            "tempfile — Generate temporary files and directories. On completion of the "
            "context, the temporary directories and all their contents are removed.",
        ),
        _passage(2, "The gzip module compresses and decompresses files."),
    ]
    cited = cite(
        "Use the `tempfile` module to create a temporary directory. "
        "The temporary directory and its content are removed on completion of the context.",
        passages,
    )
    assert cited.unsupported == []
    assert cited.text == (
        "Use the `tempfile` module to create a temporary directory [~1]. The temporary "
        "directory and its content are removed on completion of the context [~1]."
    )


def test_each_marker_gets_the_sentence_of_its_source_behind_its_own_claim():
    from rag.citations import marker_support

    sources = {
        1: "Staff get 25 days of annual leave. Parental leave is 16 weeks. Other rules apply.",
        2: "Each employee receives a laptop.",
    }
    text = "Leave is 25 days a year [1]. Parental leave lasts 16 weeks [1][~2].\n[2] [7]"
    assert marker_support(text, sources) == [
        "Staff get 25 days of annual leave.",
        "Parental leave is 16 weeks.",
        "Each employee receives a laptop.",
        # markers alone on a line go with the claim before them; an unknown source has none
        "Each employee receives a laptop.",
        "",
    ]


def test_an_answer_in_another_language_is_checked_by_what_it_names() -> None:
    """A French answer from English documents: words cannot be compared, so a claim is
    earned by the passage holding all it names, and not by one that lacks a name."""
    passages = [
        _passage(
            1,
            "The recommended approach to invoking subprocesses is to use the subprocess.run() "
            "function. It waits for the command to complete.",
        ),
        _passage(2, "Employees receive 25 days of paid annual leave per calendar year."),
    ]
    answer = (
        "Pour lancer une commande externe et récupérer ce qu'elle affiche, vous pouvez "
        "utiliser la fonction `subprocess.run()` avec les arguments appropriés. "
        "La fonction `os.popen()` est une autre solution, plus ancienne et déconseillée."
    )

    within = cite(answer, passages)
    across = cite(answer, passages, language="fr")

    assert within.citations == []  # too few of the French words are in the passage
    assert [(c.number, c.aligned) for c in across.citations] == [(1, True)]
    assert across.unsupported == [
        "La fonction `os.popen()` est une autre solution, plus ancienne et déconseillée."
    ]


def test_a_passage_in_the_answers_own_language_is_still_compared_word_for_word() -> None:
    """A French answer from a bilingual collection: the French page earns the sentence that
    restates it, though it names nothing, while the English pages could not."""
    passages = [
        _passage(1, "Employees receive 25 days of paid annual leave per calendar year."),
        _passage(2, "Les salariés à temps plein ont droit à des congés payés chaque année civile."),
    ]
    answer = "Les salariés à temps plein ont droit à des congés payés chaque année."

    cited = cite(answer, passages, language="fr")

    assert [(c.number, c.aligned) for c in cited.citations] == [(2, True)]
    assert cited.unsupported == []


CODE_ANSWER = (
    "Report a lost laptop within one hour [1]. Read the arguments like this:\n"
    "```python\n"
    "first = items[0]  # the first one\n"
    "last = sys.argv[2]\n"
    "report = reports[1]\n"
    "```\n"
    "Or take `lst[0]` alone. Leave is 25 days [2][9].\n"
    "~~~\n"
    "cells[0][3] = 25\n"
    "~~~\n"
)


def test_brackets_in_code_are_code_not_citations() -> None:
    """`items[0]` was taken for an invented marker and removed: the code a reader copied
    was broken. In code, nothing is removed, nothing counts as a citation or a claim."""
    cited = cite(CODE_ANSWER, PASSAGES)

    assert cited.text == CODE_ANSWER.replace("[2][9]", "[2]")  # only the prose marker
    assert cited.dropped_markers == ["[9]"]
    assert [c.number for c in cited.citations] == [1, 2]
    assert "[~" not in cited.text and not any("=" in u for u in cited.unsupported)
    # Streamed a character at a time, the reader sees the same text.
    shown = MarkerFilter(sources=2)
    streamed = "".join(shown.feed(ch) for ch in CODE_ANSWER) + shown.flush()
    assert streamed == cited.text
    # One supporting sentence per citation marker, none for the code's brackets.
    texts = {n: p.text for n, p in enumerate(PASSAGES, start=1)}
    assert marker_support(cited.text, texts) == [
        "A lost device is reported within one hour.",
        "Employees receive 25 days of paid annual leave per calendar year.",
    ]


def test_a_code_block_left_open_is_code_to_the_end() -> None:
    answer = "Like this [1]:\n```\nx = rows[0\n"
    shown = MarkerFilter(sources=1)
    streamed = "".join(shown.feed(ch) for ch in answer) + shown.flush()

    assert streamed == answer  # the last line's bracket is the code's, not a cut marker
    assert cite(answer, PASSAGES[:1]).text == answer


@pytest.mark.parametrize(
    ("question", "names"),
    [
        ("How do I publish our package with Poetry?", ["Poetry"]),
        ("Which pandas function reads an Excel sheet into a DataFrame?", ["Excel", "DataFrame"]),
        ("Comment installer Nextcloud sur notre serveur Apache ?", ["Nextcloud", "Apache"]),
        ("What does “EAFP” mean, and is EAFP Pythonic?", ["EAFP", "Pythonic"]),
        # A capital that starts the sentence names nothing; versions and identifiers are
        # written in too many ways to be looked up.
        ("Kubernetes or not, where does isc-dhcp-server read its DHCPv6 settings?", []),
        ("How many days of leave do I get in 2026?", []),
    ],
)
def test_names_of_a_question(question: str, names: list[str]) -> None:
    assert names_in(question) == names
