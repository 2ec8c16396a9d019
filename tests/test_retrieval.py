"""Retrieval as a user meets it: the right passage first, with its page; filters and
collections honoured; weak evidence detected; neighbours and reranking when configured."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.pipeline import IngestPipeline
from rag.adapters.qdrant.edge import EdgeStore
from rag.errors import InvalidQuestion
from rag.fusion import is_contents_list, reciprocal_rank_fusion
from rag.retrieval import Retriever
from rag.settings import IngestSettings, RetrievalSettings
from rag.sparse import Bm25Encoder
from rag.types import SearchFilter, SearchHit
from tests.conftest import SAMPLES


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, embedder, parsers) -> Iterator[EdgeStore]:
    """The samples in `docs`, plus a canary document in another team's collection."""
    base = tmp_path_factory.mktemp("retrieval")
    shutil.copytree(SAMPLES, base / "docs")
    (base / "secret").mkdir()
    (base / "secret" / "salaries.md").write_text(
        "# Salary bands 2026\n\nThe canary salary band for analysts is 91,000 EUR.\n",
        encoding="utf-8",
    )
    store = EdgeStore(base / "store")
    pipeline = IngestPipeline(store, embedder, Bm25Encoder(), IngestSettings(), parsers=parsers)
    pipeline.run([base / "docs"], "docs")
    pipeline.run([base / "secret"], "finance")
    yield store
    store.close()


def retriever(store, embedder, **settings) -> Retriever:
    return Retriever(store, embedder, Bm25Encoder(), RetrievalSettings(**settings))


def test_answering_passage_comes_first_with_its_page(indexed, embedder) -> None:
    r = retriever(indexed, embedder)

    leave = r.retrieve("How many days of paid annual leave do I get?", ["docs"])
    laptop = r.retrieve("How fast must I report a stolen laptop?", ["docs"])

    assert leave.passages[0].source == "handbook.md"
    assert "25 days of paid annual leave" in leave.passages[0].text
    assert leave.passages[0].location == "Larkspur Analytics Employee Handbook > Leave"
    assert laptop.passages[0].source == "policies/information-security-policy.pdf"
    assert "within one hour" in laptop.passages[0].text
    assert laptop.passages[0].location == "page 2"
    assert not leave.weak_evidence and not laptop.weak_evidence


def test_questions_the_documents_do_not_cover_have_weak_evidence(indexed, embedder) -> None:
    r = retriever(indexed, embedder)

    for question in (
        "Which zpool command creates a mirrored ZFS pool?",
        "How do I configure streaming replication between two PostgreSQL servers?",
    ):
        result = r.retrieve(question, ["docs"])
        assert result.weak_evidence, (question, result.evidence)
        assert result.passages  # the closest passages are still there to show


def test_a_question_naming_what_no_document_mentions_is_refused_with_the_name(
    indexed, embedder
) -> None:
    """The handbook says to request leave in Beacon. Asked about Workday, the leave passage
    is as close as ever, and was the answer's source: the documents say nothing of Workday."""
    r = retriever(indexed, embedder)

    beacon = r.retrieve("How do I request annual leave in Beacon?", ["docs"])
    workday = r.retrieve("How do I request annual leave in Workday?", ["docs"])
    allowed = retriever(indexed, embedder, refuse_absent_names=False).retrieve(
        "How do I request annual leave in Workday?", ["docs"]
    )

    assert not beacon.weak_evidence and beacon.evidence.absent_names == ()
    assert workday.weak_evidence and workday.evidence.absent_names == ("Workday",)
    assert workday.evidence.score >= workday.evidence.threshold  # the score alone would answer
    assert "Request leave in Beacon" in workday.passages[0].text  # still shown as the closest
    assert not allowed.weak_evidence  # the setting turns the rule off
    # Looked up in the collections searched only: the canary collection's words do not count.
    assert r.retrieve("What is the canary band in Beacon?", ["finance"]).evidence.absent_names == (
        "Beacon",
    )


def test_filters_by_file_type_and_folder(indexed, embedder) -> None:
    r = retriever(indexed, embedder)
    question = "What are the rules for passwords?"

    pdf_only = r.retrieve(question, ["docs"], SearchFilter(file_types=("pdf",)))
    under_policies = r.retrieve(question, ["docs"], SearchFilter(source_prefix="policies"))

    assert pdf_only.passages and {p.file_type for p in pdf_only.passages} == {"pdf"}
    assert under_policies.passages
    assert all(p.source.startswith("policies/") for p in under_policies.passages)


def test_never_returns_chunks_of_collections_not_asked_for(indexed, embedder) -> None:
    r = retriever(indexed, embedder, top_k=50)

    own = r.retrieve("What is the canary salary band for analysts?", ["docs"])
    both = r.retrieve("What is the canary salary band for analysts?", ["docs", "finance"])

    assert all("canary" not in p.text for p in own.passages)
    assert {p.collection for p in own.passages} == {"docs"}
    assert both.passages[0].collection == "finance"
    assert "91,000 EUR" in both.passages[0].text


def test_neighbouring_chunks_come_as_context(indexed, embedder) -> None:
    question = "How many days of paid annual leave do I get?"
    with_context = retriever(indexed, embedder, neighbours=1).retrieve(question, ["docs"])
    without = retriever(indexed, embedder, neighbours=0).retrieve(question, ["docs"])

    best = with_context.passages[0]
    chunks = {
        h.payload["chunk"]: h.payload["text"] for h in indexed.chunks("docs", best.document_id)
    }
    shown = {p.number for p in with_context.passages if p.document_id == best.document_id}

    def expected(n: int) -> str:  # a neighbour that is itself a passage is not repeated
        return "" if n in shown else chunks.get(n, "")

    assert best.before == expected(best.number - 1)
    assert best.after == expected(best.number + 1)
    assert any(p.before or p.after for p in with_context.passages)
    assert not without.passages[0].before and not without.passages[0].after


def test_empty_or_oversized_questions_are_clear_errors(indexed, embedder) -> None:
    r = retriever(indexed, embedder, max_query_chars=100)

    with pytest.raises(InvalidQuestion, match="empty"):
        r.retrieve("   ", ["docs"])
    with pytest.raises(InvalidQuestion, match="limit is 100"):
        r.retrieve("why " * 50, ["docs"])


def test_cross_encoder_reranks_and_gives_the_evidence(indexed, embedder, tmp_path: Path) -> None:
    from sentence_transformers import CrossEncoder

    from rag.adapters.embedder import resolve_model_path
    from rag.adapters.reranker import CrossEncoderReranker

    # No reranking model ships with Citadel; a cross-encoder built on the packaged MiniLM
    # (untrained head) is enough to check that its scores, not the fusion, decide the order.
    folder = tmp_path / "cross-encoder"
    CrossEncoder(resolve_model_path("all-MiniLM-L6-v2"), num_labels=1).save(str(folder))
    # Diversity off: the order checked is the reranker's alone.
    settings = RetrievalSettings(rerank_model=str(folder), neighbours=0, diverse_top=0)
    reranker = CrossEncoderReranker(str(folder))
    r = Retriever(indexed, embedder, Bm25Encoder(), settings, reranker)

    result = r.retrieve("How many days of paid annual leave do I get?", ["docs"])

    scores = [p.score for p in result.passages]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert result.evidence.score == pytest.approx(scores[0])


def test_a_collection_built_with_another_model_is_refused(indexed, embedder) -> None:
    from rag.errors import EmbeddingModelMismatch
    from rag.types import CollectionSpec

    indexed.ensure_collection("other-model", CollectionSpec("some-other-model", 384))

    with pytest.raises(EmbeddingModelMismatch, match="some-other-model"):
        retriever(indexed, embedder).retrieve("anything at all?", ["docs", "other-model"])


# Each identifier has a passage that holds it exactly and one with only its parts.
IDENTIFIER_NOTES = {
    "dns.md": "# DNS\n\nThe resolver reads its name servers from /etc/resolv.conf at boot.\n",
    "resolver.md": "# Resolver\n\nThe resolv helper keeps its conf apart; each conf names a "
    "resolv backend.\n",
    "uploads.md": "# Uploads\n\nRaise max_upload_size in the server file for large scans.\n",
    "sizes.md": "# Sizes\n\nThe max size of an upload is set per server; the upload size "
    "shown is the max.\n",
    "backups.md": "# Backups\n\nRun the backup with --dry-run first to list what it copies.\n",
    "drills.md": "# Drills\n\nThe fire drill is a dry run held each spring; the run is not "
    "dry if it rains.\n",
    "env.md": "# Images\n\nSet PYTHONDONTWRITEBYTECODE in the image so that no compiled files "
    "are written.\n",
    "logging.md": "# Logging\n\nEach module calls getLogger with its own name.\n",
    "loggers.md": "# Loggers\n\nGet the logger of the week from the team lead; every logger "
    "gets a badge.\n",
}


def ingested(base: Path, documents: dict[str, str], collection: str, embedder, parsers):
    """A store with these Markdown documents ingested into `collection`."""
    for name, text in documents.items():
        (base / name).write_text(text, encoding="utf-8")
    store = EdgeStore(base / "store")
    IngestPipeline(store, embedder, Bm25Encoder(), IngestSettings(), parsers=parsers).run(
        [base], collection
    )
    return store


@pytest.fixture(scope="module")
def identifiers(tmp_path_factory, embedder, parsers) -> Iterator[EdgeStore]:
    base = tmp_path_factory.mktemp("identifiers")
    store = ingested(base, IDENTIFIER_NOTES, "ops", embedder, parsers)
    yield store
    store.close()


@pytest.mark.parametrize(
    ("question", "exact", "parts_only"),
    [
        ("resolv.conf", "dns.md", "resolver.md"),
        ("max_upload_size", "uploads.md", "sizes.md"),
        ("--dry-run", "backups.md", "drills.md"),
        ("getLogger", "logging.md", "loggers.md"),
    ],
)
def test_an_identifier_question_ranks_its_exact_passage_above_its_parts(
    identifiers, embedder, question: str, exact: str, parts_only: str
) -> None:
    ranked = [
        p.source for p in retriever(identifiers, embedder).retrieve(question, ["ops"]).passages
    ]

    assert ranked[0] == exact
    assert parts_only in ranked
    assert ranked.index(exact) < ranked.index(parts_only)


def test_an_environment_variable_alone_finds_the_passage_that_sets_it(
    identifiers, embedder
) -> None:
    found = retriever(identifiers, embedder).retrieve("PYTHONDONTWRITEBYTECODE", ["ops"])

    assert found.passages[0].source == "env.md"


def test_a_second_wording_of_the_question_joins_the_search(identifiers, embedder) -> None:
    """A translation searched beside the question as asked (`also`): what either wording
    finds is ranked, with the stronger evidence of the two; the question stays the one
    asked."""
    search = retriever(identifiers, embedder)
    asked = "Zorblax quuxifie le wibble ?"
    alone = search.retrieve(asked, ["ops"])
    both = search.retrieve(asked, ["ops"], also="Which module function is getLogger?")

    assert alone.passages[0].source != "logging.md"
    assert both.passages[0].source == "logging.md"
    assert both.evidence.score > alone.evidence.score
    assert both.question == asked
    # Neither wording loses what it finds alone.
    mixed = search.retrieve("resolv.conf", ["ops"], also="getLogger")
    assert {p.source for p in mixed.passages[:2]} == {"dns.md", "logging.md"}


OFFICES = ["Paris", "Lyon", "Lille", "Nantes", "Nice", "Brest", "Metz"]
EXPENSES_GUIDE = "# Expenses guide\n\n" + "\n".join(
    f"## Expense claims in {office}\n\nSubmit your expense claims for travel with receipts "
    f"through the expenses portal; claims from the {office} office are reviewed weekly.\n"
    for office in OFFICES
)
TRAVEL_POLICY = (
    "# Travel policy\n\n## Reimbursement\n\nTravel costs are reimbursed within 30 days of "
    "the claim, by bank transfer.\n"
)
PER_DIEM = "# Per diem\n\nMeals on business trips are covered by a daily allowance of 40 EUR.\n"
MILEAGE = "# Mileage\n\nA private car used for a business trip is paid 0.45 EUR per kilometre.\n"
EXPENSES_QUESTION = "How do I submit travel expense claims?"


@pytest.fixture(scope="module")
def repetitive(tmp_path_factory, embedder, parsers) -> Iterator[EdgeStore]:
    """One document with a near-duplicate matching chunk per office, and other documents
    with one relevant chunk each."""
    documents = {
        "expenses-guide.md": EXPENSES_GUIDE,
        "travel-policy.md": TRAVEL_POLICY,
        "per-diem.md": PER_DIEM,
        "mileage.md": MILEAGE,
    }
    store = ingested(tmp_path_factory.mktemp("repetitive"), documents, "hr", embedder, parsers)
    yield store
    store.close()


def test_one_document_does_not_fill_the_top_of_the_list(repetitive, embedder) -> None:
    undiversified = retriever(repetitive, embedder, diverse_top=0)
    diversified = retriever(repetitive, embedder)

    before = [p.source for p in undiversified.retrieve(EXPENSES_QUESTION, ["hr"]).passages]
    after = diversified.retrieve(EXPENSES_QUESTION, ["hr"]).passages

    assert before[:5] == ["expenses-guide.md"] * 5  # what users saw
    top = [p.source for p in after[:5]]
    assert top.count("expenses-guide.md") == 2
    assert {"travel-policy.md", "per-diem.md", "mileage.md"} <= set(top)
    assert after[0].source == before[0]  # the best passage stays first
    # the guide's passages moved down follow in their order, with their neighbours
    guide = [p for p in after if p.source == "expenses-guide.md"]
    assert len(guide) == 3
    assert [p.score for p in guide] == sorted((p.score for p in guide), reverse=True)
    assert any(p.before or p.after for p in guide)


CONTENTS_PAGE = "# Finance handbook\n\n" + "\n".join(
    f"- {entry}"
    for entry in [
        "Travel expense claims",
        "Reimbursement of travel costs",
        "Expense claim forms",
        "Corporate credit cards",
        "Per diem rates",
        "Mileage allowance",
        "Travel booking",
        "Receipts and invoices",
    ]
)
REIMBURSEMENT = (
    "# Reimbursement\n\nTravel costs are reimbursed within 30 days of the claim, by bank "
    "transfer, once your manager has approved it.\n"
)
REIMBURSEMENT_QUESTION = "How are travel expense claims reimbursed?"


@pytest.fixture(scope="module")
def with_contents(tmp_path_factory, embedder, parsers) -> Iterator[EdgeStore]:
    """A contents page naming every subject of a handbook, and the page that answers."""
    documents = {"contents.md": CONTENTS_PAGE, "reimbursement.md": REIMBURSEMENT}
    store = ingested(tmp_path_factory.mktemp("contents"), documents, "fin", embedder, parsers)
    yield store
    store.close()


def test_a_contents_list_ranks_below_the_passage_that_answers(with_contents, embedder) -> None:
    """A table of contents shares the question's words and subject (its embedding lies
    close to every question on the subject) but answers nothing: the page that answers
    comes first, and the list is still found."""
    ranked_as_others = retriever(with_contents, embedder, contents_list_weight=1)
    before = [p.source for p in ranked_as_others.retrieve(REIMBURSEMENT_QUESTION, ["fin"]).passages]
    after = [
        p.source
        for p in retriever(with_contents, embedder)
        .retrieve(REIMBURSEMENT_QUESTION, ["fin"])
        .passages
    ]

    assert before[0] == "contents.md"  # what users saw
    assert after[0] == "reimbursement.md"
    assert "contents.md" in after


@pytest.mark.parametrize(
    ("text", "is_list"),
    [
        (
            "TestCase\n\nTestCase.setUp()\n\nTestCase.tearDown()\n\nTestCase.run()\n\n"
            "TestCase.skipTest()\n\nTestSuite\n\nTestLoader",
            True,
        ),
        (
            "The modules described in this chapter support data compression.\n"
            "zlib — Compression compatible with gzip\ngzip — Support for gzip files\n"
            "bz2 — Support for bzip2 compression\nlzma — Compression using the LZMA algorithm\n"
            "zipfile — Work with ZIP archives\ntarfile — Read and write tar archive files",
            True,
        ),
        # code, a table and prose are not
        (
            "import csv\nwith open('names.csv', 'w', newline='') as f:\n"
            "    writer = csv.DictWriter(f, fieldnames=names)\n    writer.writeheader()\n"
            "    writer.writerow({'first': 'Ann'})\n    writer.writerow({'first': 'Bob'})",
            False,
        ),
        (
            "feature | optional in | mandatory in\nnested_scopes | 2.1 | 2.2\n"
            "generators | 2.2 | 2.3\ndivision | 2.2 | 3.0\nwith_statement | 2.5 | 2.6\n"
            "print_function | 2.6 | 3.0",
            False,
        ),
        (
            "Travel costs are reimbursed within 30 days.\nClaims need receipts.\n"
            "Managers approve them.\nThe portal sends a mail.\nPayment is by transfer.\n"
            "Questions go to finance.",
            False,
        ),
    ],
)
def test_contents_lists_are_told_from_code_tables_and_prose(text: str, is_list: bool) -> None:
    assert is_contents_list(text) is is_list


def test_a_tie_of_ranks_goes_to_the_passage_further_above_the_rest() -> None:
    # Page 1 is first by meaning but barely (0.90 against 0.89) and a poor second by words;
    # page 2 is a close second by meaning and far first by words. Their ranks tie; which
    # comes first is the page a PDF is cited at, and must not depend on the rankings' order.
    def hit(page: int, score: float) -> SearchHit:
        return SearchHit(id=f"p{page}", score=score, payload={"pages": [page]})

    by_meaning = [hit(1, 0.90), hit(2, 0.89), hit(3, 0.50)]
    by_words = [hit(2, 10.0), hit(1, 3.0), hit(3, 2.0)]
    for rankings in ([by_meaning, by_words], [by_words, by_meaning]):
        fused = reciprocal_rank_fusion(rankings, [1.0, 1.0])
        assert [h.id for h, _ in fused] == ["p2", "p1", "p3"]
        assert fused[0][1] == pytest.approx(fused[1][1])  # a tie of ranks indeed


HUB_NOTES = {
    # Close to any question, answering none: an author line, a code example's imports.
    "logging-howto.md": "# Logging HOWTO\n\nAuthor:\n\nJane Marchetti <jane_marchetti at "
    "example dot org>\n",
    "email-example.md": "# Sending mail\n\n```\n#!/usr/bin/env python3\n\nimport smtplib\n\n"
    "from email.message import EmailMessage\nfrom email.utils import make_msgid\n```\n",
    "pretty-printing.md": "# Pretty printing\n\npprint.pprint(data) prints nested "
    "dictionaries and lists over several indented lines, easier to read when debugging.\n",
    "logging-levels.md": "# Logging levels\n\nThe root logger starts at level WARNING: "
    "messages of a lower severity, such as INFO and DEBUG, are dropped until you configure "
    "logging otherwise.\n",
    "subprocess.md": "# Running external commands\n\nsubprocess.run(args, capture_output=True, "
    "text=True) runs a program and waits for it; the CompletedProcess it returns holds what "
    "the program printed in its stdout attribute.\n",
}


@pytest.fixture(scope="module")
def hubs(tmp_path_factory, embedder, parsers) -> Iterator[EdgeStore]:
    store = ingested(tmp_path_factory.mktemp("hubs"), HUB_NOTES, "dev", embedder, parsers)
    yield store
    store.close()


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        (
            "Comment afficher joliment un gros dictionnaire imbriqué pour le déboguer ?",
            "pretty-printing.md",
        ),
        ("Quel est le niveau de journalisation par défaut ?", "logging-levels.md"),
    ],
)
def test_a_passage_close_to_any_question_does_not_outrank_the_answer(
    hubs, embedder, question: str, answer: str
) -> None:
    """A French question over English notes matches them by meaning alone, where an author
    line lies closer to every question than the note that answers: with the direction all
    questions share taken out of the question, the answer comes first. The evidence, judged
    on the plain cosines, is the same either way; a question in the notes' language is
    ranked as it was."""
    plain = retriever(hubs, embedder, question_centring=0)
    centring = retriever(hubs, embedder)
    before, after = (r.retrieve(question, ["dev"]) for r in (plain, centring))

    assert before.passages[0].source == "logging-howto.md"  # what users saw
    assert after.passages[0].source == answer
    assert after.evidence == before.evidence
    english = "How do I run an external command and get its output?"
    assert [p.chunk_id for p in centring.retrieve(english, ["dev"]).passages] == [
        p.chunk_id for p in plain.retrieve(english, ["dev"]).passages
    ]
