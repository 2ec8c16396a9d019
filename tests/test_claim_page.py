"""The page of the claim: a PDF passage that runs from one page onto the next is cited at
the page of the sentence that supports the claim (or, shown without an answer, of the
sentence that best matches the question), wherever a citation shows its page."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ingest.pipeline import IngestPipeline
from ingest.workers import ParserPool
from rag import evaluation
from rag.adapters.embedder import SentenceTransformerEmbedder
from rag.adapters.qdrant.edge import EdgeStore
from rag.answering import AnswerService
from rag.citations import cite, shown_for
from rag.retrieval import Retriever
from rag.settings import IngestSettings, LlmSettings, RetrievalSettings
from rag.sparse import Bm25Encoder
from rag.types import Answer, Passage
from tests.docgen import write_pdf
from ui.http.wire import CitationOut
from ui.service.links import FileLinks
from ui.web.render import answer_html

COLLECTION = "records"
# One paragraph that a page break cuts mid-sentence: its last two sentences are on page 2.
PAGE_ONE = [
    "## 4.2 Retention of records",
    "Records are kept in the archive room on the second floor of the main",
    "building, next to the server room. Access to the room is logged and only",
]
PAGE_TWO = [
    "the records officer and the auditors may enter it. Invoices are kept for ten",
    "years after the end of the financial year. Personnel files are destroyed",
    "two years after an employee leaves.",
]
PAGE_THREE = ["## 4.3 Visitors", "Visitors sign the register at the front desk on arrival."]
INVOICES = "How many years are invoices kept after the end of the financial year?"


@dataclass(frozen=True)
class Indexed:
    store: EdgeStore
    retriever: Retriever
    embedder: SentenceTransformerEmbedder
    root: Path


@pytest.fixture(scope="module")
def indexed(
    tmp_path_factory: pytest.TempPathFactory,
    embedder: SentenceTransformerEmbedder,
    parsers: ParserPool,
) -> Iterator[Indexed]:
    base = tmp_path_factory.mktemp("claim-page")
    (base / "docs").mkdir()
    write_pdf(base / "docs" / "records.pdf", [PAGE_ONE, PAGE_TWO, PAGE_THREE])
    store = EdgeStore(base / "store")
    pipeline = IngestPipeline(store, embedder, Bm25Encoder(), IngestSettings(), parsers=parsers)
    assert pipeline.run([base / "docs"], COLLECTION).counts()["added"] == 1
    retriever = Retriever(store, embedder, Bm25Encoder(), RetrievalSettings())
    yield Indexed(store, retriever, embedder, base / "docs")
    store.close()


def _retention(indexed: Indexed, question: str = INVOICES) -> Passage:
    passages = indexed.retriever.retrieve(question, [COLLECTION]).passages
    return next(p for p in passages if "Invoices" in p.text)


def test_a_passage_across_a_page_break_keeps_where_its_second_page_starts(indexed):
    retention = _retention(indexed)
    visitors = next(
        p
        for p in indexed.retriever.retrieve("Where do visitors sign in?", [COLLECTION]).passages
        if "Visitors" in p.text
    )

    assert retention.pages == (1, 2)
    assert retention.location == "pages 1-2"
    (second,) = [at for at, page in retention.page_starts if page == 2]
    assert retention.text[second:].startswith("the records officer and the auditors")
    # A passage on one page stores no offsets: its payload is as small as before.
    assert visitors.pages == (3,) and visitors.page_starts == ()
    raw = indexed.store.chunks_by_id(COLLECTION, [visitors.chunk_id])[0].payload
    assert "page_starts" not in raw


def test_each_claim_is_cited_at_the_page_of_its_own_sentence(indexed):
    retention = _retention(indexed)

    on_two = cite("Invoices are kept for ten years [1].", [retention]).citations[0]
    on_one = cite("The archive room is on the second floor [1].", [retention]).citations[0]

    assert (on_two.passage.page, on_two.passage.where) == (2, "records.pdf, page 2")
    assert (on_one.passage.page, on_one.passage.where) == (1, "records.pdf, page 1")
    wire = CitationOut.cited(on_two, "/files/x#page=2").model_dump()
    assert (wire["page"], wire["location"], wire["pages"]) == (2, "page 2", [1, 2])
    assert CitationOut(**wire).citation().passage.where == "records.pdf, page 2"


def test_the_web_answer_opens_each_claims_sentence_at_its_page(indexed):
    retention = _retention(indexed)
    written = "The archive room is on the second floor [1]. Invoices are kept for ten years [1]."
    cited = cite(written, [retention])
    answer = Answer(
        question=INVOICES,
        standalone_question=INVOICES,
        text=cited.text,
        citations=cited.citations,
        passages=[retention],
    )
    links = FileLinks(b"k" * 32, 60)

    markup = answer_html("a1", answer, lambda p: links.make("alice", p))

    chips = re.findall(r'<a class="citadel-cite" href="#([^"]+)"', markup)[:2]
    shown = []
    for key in chips:
        block = re.search(
            rf'class="citadel-src {key}" hidden>.*?citadel-src-where">([^<]+)<.*?'
            r'citadel-open" href="[^"#]+#(page=\d+)"',
            markup,
            re.S,
        )
        assert block is not None
        shown.append((block.group(1).strip(), block.group(2)))
    assert shown == [("page 1", "page=1"), ("page 2", "page=2")]


def test_search_mode_and_page_accuracy_use_the_sentence_matching_the_question(indexed):
    answers = AnswerService(indexed.retriever, None, LlmSettings(model=""))
    retrieval = indexed.retriever.retrieve(INVOICES, [COLLECTION])
    (searched,) = list(answers.answer(retrieval, INVOICES))
    shown = next(c.passage for c in searched.citations if "Invoices" in c.passage.text)
    item = evaluation.QaItem(
        id="q1",
        question=INVOICES,
        answers=("ten years",),
        sources=("records.pdf",),
        pages=(2,),
        kind="numeric",
    )

    outcomes = evaluation.evaluate([item], indexed.retriever, [COLLECTION], lambda _: "records.pdf")

    assert searched.search_mode and shown.location == "page 2"
    assert shown_for(_retention(indexed), "Where is the archive room?").page == 1
    assert evaluation.report([item], outcomes)["overall"]["page_accuracy"] == 1.0
    row = outcomes["q1"].to_json()
    assert evaluation.Outcome.from_json(json.loads(json.dumps(row))).page_for("records.pdf") == 2


def test_a_collection_indexed_before_sentence_pages_cites_the_first_page(indexed):
    # What chunking version 3 stored: the passage's pages, no offsets.
    hit = indexed.store.chunks_by_id(COLLECTION, [_retention(indexed).chunk_id])[0]
    old = {k: v for k, v in hit.payload.items() if k != "page_starts"}
    passage = Passage.from_hit(type(hit)(hit.id, hit.score, old), 1.0)

    cited = cite("Invoices are kept for ten years [1].", [passage]).citations[0]

    assert passage.page_starts == () and cited.passage.page == 1
    assert cited.passage.where == "records.pdf, pages 1-2"
    assert shown_for(passage, INVOICES).page == 1
