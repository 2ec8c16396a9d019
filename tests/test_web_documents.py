"""The Documents tab without a browser: per-file stages from the real pipeline, time left,
re-ingestion reported as updated, the Needs attention list with Retry, the library a page
at a time, and which collection the tab starts on.

One workspace (real embedder, real store, real parser processes) serves the module.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from ingest.report import FileOutcome
from rag.ids import document_id
from rag.types import CollectionSpec, DocumentRecord
from tests.live_server import add_user, server_settings, workspace_with
from ui.service.jobs import FileProgress, Job
from ui.service.library import page_of
from ui.service.workspace import Workspace
from ui.web import document_handlers
from ui.web.document_handlers import NO_CHOICE, DocumentHandlers
from ui.web.handlers import Handlers
from ui.web.render import Attention, FileRow, attention_html, library_html, progress_html

BROKEN_PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog"  # a PDF cut short


@dataclass
class FakeRequest:
    """What the handlers read of gr.Request: the logged-in user and the client."""

    username: str | None
    client: None = None


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, embedder) -> Iterator[Workspace]:
    settings = server_settings(tmp_path_factory.mktemp("docs"), auth=True)
    ws = workspace_with(settings, embedder)
    add_user(ws, "alice", ("hr",))
    add_user(ws, "carol", ("hr", "eng"))
    add_user(ws, "root", admin=True)
    ws.catalog.assign("hr-docs", "hr")
    ws.catalog.assign("eng-docs", "eng")
    yield ws
    ws.close()


def caller(ws: Workspace, name: str) -> Any:
    found = ws.caller_named(name)
    assert found is not None
    return found


def staged(tmp_path: Path, files: dict[str, bytes | str]) -> list[tuple[str, Path]]:
    out = []
    for name, data in files.items():
        path = tmp_path / f"staged-{name}"
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        out.append((name, path))
    return out


def run_upload(ws: Workspace, user: str, collection: str, files: list[tuple[str, Path]]) -> Job:
    result = ws.upload(caller(ws, user), collection, files)
    assert result.job is not None, result.rejected
    assert ws.jobs.wait(result.job, 300), result.job
    return result.job


def status_of(job: Job) -> dict[str, str]:
    return {f.name: f.status for f in job.files}


# -- the pipeline's stages -----------------------------------------------------------------


class Recording:
    def __init__(self) -> None:
        self.stages: list[tuple[str, str, int, int]] = []

    def start(self, files: int) -> None: ...
    def step(self, text: str) -> None: ...
    def chunks_embedded(self, chunks: int) -> None: ...
    def file_done(self, outcome: FileOutcome) -> None:
        self.stages.append((outcome.source, f"done:{outcome.status}", outcome.chunks, 0))

    def finish(self) -> None: ...
    def file_stage(self, source: str, stage: str, done: int = 0, total: int = 0) -> None:
        self.stages.append((source, stage, done, total))


def test_the_pipeline_reports_reading_then_indexing_counts_then_done(make_pipeline, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    text = "\n\n".join(
        f"## Part {i}\n\n" + f"Rule {i} says something useful. " * 40 for i in range(8)
    )
    (folder / "rules.md").write_text("# Rules\n\n" + text)
    pipeline = make_pipeline()
    sink = Recording()
    pipeline._progress = sink
    pipeline.run([folder], "stages")
    mine = [s for s in sink.stages if s[0] == "rules.md"]
    assert mine[0][1] == "reading"
    indexing = [s for s in mine if s[1] == "indexing"]
    total = indexing[0][3]
    assert total > 1 and indexing[0][2] == 0 and indexing[-1][2:] == (total, total)
    assert [d for _, _, d, _ in indexing] == sorted(d for _, _, d, _ in indexing)
    assert mine[-1][1] == "done:added"
    # Unchanged: decided without work, and said so at once; forced: read again, updated.
    again = Recording()
    pipeline._progress = again
    pipeline.run([folder], "stages")
    assert ("rules.md", "unchanged", total, total) in again.stages
    forced = Recording()
    pipeline._progress = forced
    report = pipeline.run([folder], "stages", force=True)
    assert [f.status for f in report.files] == ["updated"]
    assert any(s[1] == "reading" for s in forced.stages)


def test_time_left_is_estimated_from_the_rate_only_once_there_is_a_basis():
    job = Job("j", "alice", "hr-docs", "upload", [FileProgress("a.pdf", size=1000)])
    job.files.append(FileProgress("b.pdf", size=3000))
    assert job.seconds_left() is None  # not started
    job.state, job.started = "running", 100.0
    job.files[0].stage = "reading"
    assert job.seconds_left(now=110.0) is None  # nothing indexed yet: "estimating…"
    job.file_stage("a.pdf", "indexing", 10, 20)
    # 10 sections in 10 s: 10 left of a.pdf, and b.pdf (3000 bytes at 20 sections per
    # 1000 bytes) 60 more: 70 s.
    assert job.seconds_left(now=110.0) == pytest.approx(70.0)
    assert job.to_json()["files"][0] | {} == {
        "name": "a.pdf",
        "status": "queued",
        "chunks": 0,
        "reason": "",
        "stage": "indexing",
        "chunks_done": 10,
        "chunks_total": 20,
    }
    job.state = "done"
    assert job.seconds_left() == 0.0


def test_progress_rows_say_the_stage_in_plain_words_and_escape_names():
    rows = [
        FileRow("a.pdf", "queued", stage="waiting"),
        FileRow("b.pdf", "processing", stage="reading"),
        FileRow("c.pdf", "processing", stage="indexing", done=12, total=40),
        FileRow("d.pdf", "updated", 40, stage="done"),
        FileRow('<img src=x onerror="alert(1)">.exe', "rejected", reason="cannot read this type"),
    ]
    html = progress_html(rows, "running", "Adding 5 file(s) to hr-docs", left="· about 20 s left")
    for words in ("Waiting its turn", "Reading…", "Indexing: 12 of 40 sections", "Updated: 40"):
        assert words in html
    assert "chunk" not in html.lower()
    assert "<img" not in html and "&lt;img" in html
    assert "Save it as PDF or Word" in html  # what to do about it


# -- uploads, re-ingestion, Needs attention, Retry -----------------------------------------


def test_an_upload_of_three_reports_stages_rejects_one_fails_one_then_retry(
    workspace: Workspace, tmp_path: Path
):
    files = staged(
        tmp_path,
        {
            "notes.md": "# Notes\n\nThe canteen opens at noon on weekdays.\n",
            "tool.exe": b"MZ\x90\x00 a program",
            "budget.pdf": BROKEN_PDF,
        },
    )
    alice = caller(workspace, "alice")
    result = workspace.upload(alice, "hr-docs", files)
    assert [name for name, _ in result.rejected] == ["tool.exe"]
    job = result.job
    assert job is not None and workspace.jobs.wait(job, 300)
    assert status_of(job) == {"notes.md": "added", "budget.pdf": "failed"}
    shown = job.to_json()
    # The REST shape keeps its keys, and gains the stages.
    assert {"id", "collection", "kind", "state", "message", "files"} <= shown.keys()
    assert shown["seconds_left"] == 0.0
    notes = next(f for f in shown["files"] if f["name"] == "notes.md")
    assert notes["stage"] == "done" and notes["chunks_done"] == notes["chunks_total"] > 0
    # Needs attention: the failed file, which Citadel keeps, can be retried.
    (failed,) = workspace.attention(alice, "hr-docs")
    assert failed["source"] == "budget.pdf" and failed["retry"] is True
    again = workspace.retry(alice, "hr-docs", "budget.pdf")
    assert workspace.jobs.wait(again, 300) and status_of(again) == {"budget.pdf": "failed"}
    # The cause fixed (the kept original replaced by a good file): Retry adds it.
    kept = workspace.settings.uploads_path / "hr-docs" / "budget.pdf"
    shutil.copy(
        Path(__file__).parent.parent / "samples" / "policies" / "information-security-policy.pdf",
        kept,
    )
    fixed = workspace.retry(alice, "hr-docs", "budget.pdf")
    assert workspace.jobs.wait(fixed, 300) and status_of(fixed) == {"budget.pdf": "added"}
    assert workspace.attention(alice, "hr-docs") == []
    # Nothing to retry, or another team's collection: refused.
    with pytest.raises(Exception, match="no such file needs attention"):
        workspace.retry(alice, "hr-docs", "notes.md")
    with pytest.raises(Exception, match="no such collection"):
        workspace.retry(alice, "eng-docs", "budget.pdf")


def test_a_file_replaced_or_read_again_is_updated_and_an_identical_one_unchanged(
    workspace: Workspace, tmp_path: Path
):
    first = staged(tmp_path, {"menu.md": "# Menu\n\nSoup on Mondays.\n"})
    assert status_of(run_upload(workspace, "alice", "hr-docs", first)) == {"menu.md": "added"}
    same = staged(tmp_path, {"menu.md": "# Menu\n\nSoup on Mondays.\n"})
    assert status_of(run_upload(workspace, "alice", "hr-docs", same)) == {"menu.md": "unchanged"}
    changed = staged(tmp_path, {"menu.md": "# Menu\n\nSoup on Tuesdays.\n"})
    assert status_of(run_upload(workspace, "alice", "hr-docs", changed)) == {"menu.md": "updated"}
    alice = caller(workspace, "alice")
    record = next(r for r in workspace.documents(alice, "hr-docs") if r.source == "menu.md")
    job = workspace.reingest(alice, record.id)
    assert workspace.jobs.wait(job, 300)
    assert job.to_json()["files"][0]["status"] == "updated"
    assert [r.source for r in workspace.documents(alice, "hr-docs")].count("menu.md") == 1


# -- the library, a page at a time ---------------------------------------------------------


def records(collection: str, n: int) -> list[DocumentRecord]:
    return [
        DocumentRecord(
            id=document_id(collection, f"memo-{i:05d}.md"),
            collection=collection,
            source=f"memo-{i:05d}.md",
            file_type="md",
            title=f"Memo {i}",
            pages=0,
            chunks=1,
            sha256=f"{i:064x}",
            size=1500 + i,
            ingested_at="2026-12-01T10:00:00+00:00",
            root="/nowhere",
        )
        for i in range(n)
    ]


def test_a_page_holds_its_slice_and_the_total_and_a_gone_page_moves_back():
    many = records("x", 10_000)
    page = page_of(many, 50, 50)
    assert (page.total, page.offset, [r.source for r in page.records][:1]) == (
        10_000,
        50,
        ["memo-00050.md"],
    )
    assert page_of(many[:30], 50, 50).offset == 0  # the library shrank under the reader
    html = library_html(page.records, page.total, page.offset, "x", "")
    assert "Documents 51–100 of 10,000" in html and "2 KB" in html and "font-family" not in html


def test_the_library_handler_pages_through_the_store(workspace: Workspace, monkeypatch):
    store = workspace.services.store
    spec = CollectionSpec(
        workspace.services.embedder.model_name, workspace.services.embedder.dimension
    )
    store.ensure_collection("eng-docs", spec)
    for record in records("eng-docs", 5):
        store.put_document(record)
    monkeypatch.setattr(document_handlers, "PAGE_SIZE", 2)
    docs = DocumentHandlers(Handlers(workspace))
    carol = FakeRequest("carol")
    _, line, previous, following, offset, _, _ = docs.first_page("eng-docs", "", "Name", [], carol)
    assert "Documents 1–2 of 5" in line and offset == 0
    assert previous.interactive is False and following.interactive is True
    shown, line, previous, following, offset, *_ = docs.next_page(
        "eng-docs", "", "Name", offset, [], carol
    )
    assert "Documents 3–4 of 5" in line and "memo-00002.md" in shown and offset == 2
    *_, offset, _, _ = docs.next_page("eng-docs", "", "Name", offset, [], carol)
    _, line, _, following, *_ = docs.library("eng-docs", "", "Name", offset, [], carol)
    assert "Documents 5–5 of 5" in line and following.interactive is False
    # Not alice's collection: nothing, whatever the browser sends.
    assert "memo" not in docs.library("eng-docs", "", "Name", 0, [], FakeRequest("alice"))[0]


# -- which collection the tab starts on ----------------------------------------------------


def test_no_collection_is_preselected_among_several_and_an_upload_then_is_refused(
    workspace: Workspace, tmp_path: Path
):
    docs = DocumentHandlers(Handlers(workspace))
    carol, alice = FakeRequest("carol"), FakeRequest("alice")
    picker, zone = docs.open_tab("", carol)
    assert picker.value is None and set(picker.choices) >= {("eng-docs", "eng-docs")}
    assert "Choose a collection" in zone.label
    picker, zone = docs.open_tab("eng-docs", carol)  # remembered by this browser, allowed
    assert picker.value == "eng-docs" and "eng-docs" in zone.label
    picker, _ = docs.open_tab("eng-docs", alice)  # remembered, but not alice's
    assert picker.value == "hr-docs"  # her only one
    dropped = tmp_path / "x.md"
    dropped.write_text("# X\n")
    steps = list(docs.upload([str(dropped)], None, "", "Name", 0, [], carol))
    assert NO_CHOICE in str(steps[-1][0])


def test_rejected_files_are_listed_until_dismissed_and_failed_ones_offer_retry(
    workspace: Workspace, tmp_path: Path
):
    docs = DocumentHandlers(Handlers(workspace))
    alice = FakeRequest("alice")
    bad = tmp_path / "report.pdf"
    bad.write_bytes(b"MZ\x90\x00 not a pdf at all")
    steps = list(docs.upload([str(bad)], "hr-docs", "", "Name", 0, [], alice))
    progress, _, rejected, *listing = steps[-1]
    assert 'data-status="rejected"' in progress and "report.pdf" in progress
    assert rejected == [
        {"collection": "hr-docs", "name": "report.pdf", "reason": rejected[0]["reason"]}
    ]
    attention = listing[-1]
    assert "report.pdf" in attention and 'data-action="dismiss"' in attention
    payload = json.dumps({"action": "dismiss", "source": "report.pdf"})
    _, cleared, kept, *listing = list(
        docs.attend(payload, "hr-docs", "", "Name", 0, rejected, alice)
    )[-1]
    assert cleared == "" and kept == [] and "report.pdf" not in listing[-1]
    # A forged payload does nothing.
    for forged in ("", "nope", '{"action": "retry"}'):
        assert list(docs.attend(forged, "hr-docs", "", "Name", 0, [], alice))[-1][1] == ""


def test_the_attention_list_escapes_names_and_says_what_to_do():
    items = [
        Attention('<img src=x onerror="x">.pdf', "failed", "no text found", "just now", True),
        Attention("a.exe", "rejected", "a.exe: Citadel cannot read this type of file"),
    ]
    html = attention_html(items, "hr-docs")
    assert "<img" not in html and 'data-action="retry"' in html
    assert "OCR" in html and "Save it as PDF or Word" in html and "2 files in hr-docs" in html
    synced = attention_html([replace(items[0], reason="parser failed", retry=False)], "hr-docs")
    assert 'data-action="retry"' not in synced and "ingest its folder again" in synced
