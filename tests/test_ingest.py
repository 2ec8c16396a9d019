"""Ingesting the bundled samples end to end: real parsers, real embedder, real Qdrant Edge."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.pipeline import IngestPipeline
from rag.adapters.qdrant.edge import EdgeStore
from rag.errors import EmbeddingModelMismatch
from rag.types import CollectionSpec, SparseVector
from tests.docgen import write_pdf

SAMPLE_FILES = {
    "handbook.md": "md",
    "it/faq.html": "html",
    "it/equipment-budget.xlsx": "xlsx",
    "office-closure-2026.eml": "eml",
    "offices.csv": "csv",
    "onboarding-deck.pptx": "pptx",
    "policies/information-security-policy.pdf": "pdf",
    "policies/travel-and-expenses.docx": "docx",
}


def _chunks_of(store: EdgeStore, source: str) -> list[dict]:
    return [h.payload for h in store.chunks("docs") if h.payload["source"] == source]


def test_every_sample_format_is_ingested_with_its_metadata(make_pipeline, store, sample_folder):
    report = make_pipeline().run([sample_folder], "docs")

    assert report.counts()["added"] == len(SAMPLE_FILES)
    assert report.counts()["failed"] == 0
    assert report.truncated_chunks == 0
    docs = {d.source: d for d in store.documents("docs")}
    assert {s: d.file_type for s, d in docs.items()} == SAMPLE_FILES
    for doc in docs.values():
        assert doc.chunks == len(_chunks_of(store, doc.source)) > 0

    pdf = _chunks_of(store, "policies/information-security-policy.pdf")
    assert docs["policies/information-security-policy.pdf"].pages == 3
    incident = next(c for c in pdf if "within one hour, by phone" in c["text"])
    assert incident["pages"] == [3]
    assert "5. Reporting a security incident" in incident["headings"]

    slides = _chunks_of(store, "onboarding-deck.pptx")
    first_week = next(c for c in slides if "room 2.14" in c["text"])
    assert first_week["slide"] == 2
    assert "Your first week" in first_week["headings"]

    sheets = _chunks_of(store, "it/equipment-budget.xlsx")
    assert {c["sheet"] for c in sheets} == {"Laptops", "Accessories"}
    laptops = next(c for c in sheets if c["sheet"] == "Laptops")
    assert "Data engineer | ThinkPad P14s 64 GB | 2300 | 4" in laptops["text"]

    travel = _chunks_of(store, "policies/travel-and-expenses.docx")
    table = next(c for c in travel if "Berlin" in c["text"])
    assert "City | Hotel cap per night (EUR) | Meal allowance per day (EUR)" in table["text"]

    handbook = _chunks_of(store, "handbook.md")
    leave = next(c for c in handbook if "25 days of paid annual leave" in c["text"])
    assert leave["headings"][-1] == "Leave"
    assert leave["title"] == "Larkspur Analytics Employee Handbook"


def test_passage_is_found_by_a_question_naming_its_section(
    make_pipeline, store, embedder, tmp_path
):
    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "settings.md").write_text(
        "# Gateway settings\n\n## max_connections\n\nIt defaults to 100.\n\n"
        "## request_timeout\n\nIt defaults to 30 seconds.\n\n"
        "## log_level\n\nIt defaults to info.\n",
        encoding="utf-8",
    )
    make_pipeline().run([folder], "docs")
    from rag.retrieval import Retriever
    from rag.settings import RetrievalSettings
    from rag.sparse import Bm25Encoder

    retriever = Retriever(store, embedder, Bm25Encoder(), RetrievalSettings())
    best = retriever.retrieve("What is the default of max_connections?", ["docs"]).passages[0]

    assert best.text == "It defaults to 100."
    assert best.headings == ("Gateway settings", "max_connections")


def test_second_run_on_unchanged_folder_parses_nothing(make_pipeline, store, sample_folder):
    first = make_pipeline().run([sample_folder], "docs")
    points_before = {h.id: h.payload for h in store.chunks("docs")}

    second = make_pipeline().run([sample_folder], "docs")

    assert second.counts()["unchanged"] == len(SAMPLE_FILES)
    assert second.counts()["added"] == second.counts()["updated"] == 0
    assert second.times.parse_cpu == 0 and second.times.embed == 0
    assert second.times.optimize == 0  # nothing written: the index is not rebuilt
    assert first.times.optimize > 0
    assert {h.id: h.payload for h in store.chunks("docs")} == points_before
    assert second.seconds < first.seconds


def test_edited_file_replaces_its_old_chunks(make_pipeline, store, sample_folder):
    pipeline = make_pipeline()
    pipeline.run([sample_folder], "docs")
    handbook = sample_folder / "handbook.md"
    handbook.write_text(
        "# Handbook\n\nThe canteen opens at 11:45 every weekday.\n", encoding="utf-8"
    )

    report = pipeline.run([sample_folder], "docs")

    assert [f.source for f in report.files if f.status == "updated"] == ["handbook.md"]
    texts = [c["text"] for c in _chunks_of(store, "handbook.md")]
    assert texts == ["The canteen opens at 11:45 every weekday."]
    assert not any("annual leave" in h.payload["text"] for h in store.chunks("docs"))
    record = next(d for d in store.documents("docs") if d.source == "handbook.md")
    assert record.chunks == 1


def test_prune_removes_documents_whose_files_disappeared(make_pipeline, store, sample_folder):
    pipeline = make_pipeline()
    pipeline.run([sample_folder], "docs")
    (sample_folder / "offices.csv").unlink()

    without_prune = pipeline.run([sample_folder], "docs")
    assert "offices.csv" in {d.source for d in store.documents("docs")}
    assert without_prune.counts()["removed"] == 0

    report = pipeline.run([sample_folder], "docs", prune=True)

    assert [(f.source, f.status) for f in report.files if f.status == "removed"] == [
        ("offices.csv", "removed")
    ]
    assert "offices.csv" not in {d.source for d in store.documents("docs")}
    assert not _chunks_of(store, "offices.csv")


def test_identical_copies_are_stored_once(make_pipeline, store, sample_folder):
    copy = sample_folder / "archive" / "handbook-copy.md"
    copy.parent.mkdir()
    copy.write_bytes((sample_folder / "handbook.md").read_bytes())

    report = make_pipeline().run([sample_folder], "docs")

    skipped = {f.source: f.reason for f in report.files if f.status == "skipped"}
    assert skipped == {"handbook.md": "same content as archive/handbook-copy.md"}
    assert len({c["text"] for c in (h.payload for h in store.chunks("docs"))}) == len(
        store.chunks("docs")
    )


def test_collection_built_with_another_model_is_refused(make_pipeline, store, sample_folder):
    store.ensure_collection("docs", CollectionSpec("some-other-model", 384))

    with pytest.raises(EmbeddingModelMismatch, match="some-other-model"):
        make_pipeline().run([sample_folder], "docs")
    assert store.count_chunks("docs") == 0


def test_long_pdf_page_is_split_within_the_window_and_keeps_its_page(
    make_pipeline, store, tmp_path
):
    folder = tmp_path / "long"
    folder.mkdir()
    lines = [
        f"Line {i}: the retention period for audit logs is {i} days in region {i % 7}."
        for i in range(50)
    ]
    write_pdf(folder / "long.pdf", [["1.1 Intro", "Short first page."], lines])

    report = make_pipeline().run([folder], "docs")

    assert report.truncated_chunks == 0
    chunks = _chunks_of(store, "long.pdf")
    page_two = [c for c in chunks if c["pages"] == [2]]
    assert len(page_two) >= 2
    assert all(c["pages"] in ([1], [2]) for c in chunks)
    joined = " ".join(c["text"] for c in page_two)
    assert "Line 0:" in joined and "Line 49:" in joined


def test_pipeline_reports_missing_paths_before_doing_anything(make_pipeline, store, tmp_path):
    from rag.errors import CitadelError

    with pytest.raises(CitadelError, match="no such file or folder"):
        make_pipeline().run([tmp_path / "nope"], "docs")
    assert store.collections() == []


def test_pipeline_accepts_single_files(make_pipeline, store, sample_folder):
    report = make_pipeline().run([sample_folder / "it" / "faq.html"], "docs")
    assert [(f.source, f.status) for f in report.files] == [("faq.html", "added")]
    assert isinstance(make_pipeline(), IngestPipeline)
    assert Path(store.documents("docs")[0].root) == (sample_folder / "it").resolve()


@pytest.mark.parametrize("older", [{"chunking": 1}, {"sparse": 1}], ids=["chunking", "sparse"])
def test_documents_chunked_or_encoded_by_older_rules_are_reindexed_once(
    make_pipeline, store, sample_folder, older
):
    from dataclasses import replace

    from rag.ids import chunk_id

    make_pipeline().run([sample_folder], "docs")
    clean = {h.id: h.payload for h in store.chunks("docs")}
    old = next(d for d in store.documents("docs") if d.source == "handbook.md")
    # As an older Citadel left it: older rules (chunking, or BM25 terms), and one chunk more
    # than today's rules give.
    store.put_document(replace(old, **older))
    leftover = old.chunk(old.chunks, "stale passage", "stale passage")
    store.upsert_chunks("docs", [leftover], [[0.1] * 384], [SparseVector([], [])])
    assert leftover.id == chunk_id(old.id, old.chunks)

    again = make_pipeline().run([sample_folder], "docs")
    third = make_pipeline().run([sample_folder], "docs")

    assert [f.source for f in again.files if f.status == "updated"] == ["handbook.md"]
    assert again.counts()["unchanged"] == len(SAMPLE_FILES) - 1
    assert {h.id: h.payload["text"] for h in store.chunks("docs")} == {
        i: p["text"] for i, p in clean.items()
    }
    assert third.counts()["unchanged"] == len(SAMPLE_FILES)
