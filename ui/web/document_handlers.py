"""The Documents tab's handlers: uploads with per-file progress, the library a page at a
time, the one "Needs attention" list (files not accepted, and files that could not be
read, with Retry), re-ingestion and deletion. Plain functions of the Gradio events, each
resolving its caller and going through the Workspace, which checks every permission; the
layout and wiring are in ui/web/documents.py.

Every listing handler returns the same outputs (LISTING): the library, its page line,
Previous and Next, the page's offset, the document picker and the Needs attention list.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import gradio as gr

from rag.errors import CitadelError
from ui.metadata.accounts import Caller
from ui.service.jobs import Job
from ui.service.library import PAGE_SIZE
from ui.service.limits import files_per_upload
from ui.web.handlers import INTERNAL, NO_ACCOUNT, SORTS, Handlers, _discard
from ui.web.render import (
    Attention,
    FileRow,
    ago,
    attention_html,
    library_html,
    message_html,
    page_label,
    plain_reason,
    progress_html,
    time_left,
)

log = logging.getLogger(__name__)

POLL_S = 0.5
REJECTED_KEPT = 50  # files not accepted, remembered per browser session for Needs attention
NO_CHOICE = (
    "Nothing was added: choose the collection these files belong to (above), then drop them again."
)

# A file not accepted at upload, as the browser session keeps it: {collection, name, reason}.
Rejected = dict[str, str]


def drop_zone(collection: str | None) -> Any:
    """The drop zone, naming the collection the files will go to, or asking for one."""
    if not collection:
        return gr.File(label="Choose a collection above first, then drop files here")
    return gr.File(label=f"Drop files here to add them to {collection} (PDF, Word, …)")


class DocumentHandlers:
    """The Documents tab's handlers of one workspace's web UI (no layout here)."""

    def __init__(self, web: Handlers) -> None:
        self.web = web
        self.workspace = web.workspace

    # -- start ---------------------------------------------------------------------------
    def open_tab(self, remembered: str | None, request: gr.Request) -> tuple[Any, ...]:
        """The collections the caller may add to. With one, it is chosen; with several,
        none is, unless this browser's last choice is still allowed: files must never go
        to a collection nobody chose. Outputs: the collection picker, the drop zone."""
        caller = self.web.caller(request)
        names: list[str] = []
        if caller is not None:
            try:
                names = self.workspace.writable(caller)
            except CitadelError as exc:
                log.warning("listing collections for %s failed: %s", caller.name, exc)
        chosen = remembered if remembered in names else (names[0] if len(names) == 1 else None)
        return gr.Dropdown(choices=names, value=chosen), drop_zone(chosen)

    # -- the library ---------------------------------------------------------------------
    def library(
        self,
        collection: str | None,
        text_filter: str | None,
        sort: str | None,
        offset: int | None,
        rejected: list[Rejected] | None,
        request: gr.Request,
    ) -> tuple[Any, ...]:
        """Outputs (LISTING): library, page line, Previous, Next, offset, document picker,
        Needs attention."""
        caller = self.web.caller(request)
        offset = max(0, int(offset or 0))
        nothing = (
            library_html([], 0, 0, None, ""),
            "",
            gr.Button(interactive=False),
            gr.Button(interactive=False),
            0,
            gr.Dropdown(choices=[], value=None),
            attention_html([], None),
        )
        if caller is None or not collection:
            return nothing
        field, descending = SORTS.get(sort or "Name", SORTS["Name"])
        try:
            page = self.workspace.library_page(
                caller, collection, text_filter, field, descending, offset, PAGE_SIZE
            )
            failures = self.workspace.attention(caller, collection)
        except CitadelError:
            return nothing
        words = (lambda r: r) if caller.admin else plain_reason
        items = [
            Attention(r["name"], "rejected", r["reason"])
            for r in rejected or []
            if r.get("collection") == collection
        ]
        items += [
            Attention(f["source"], f["status"], words(f["reason"]), ago(f["at"]), f["retry"])
            for f in failures
        ]
        shown = len(page.records)
        line = f'<p class="citadel-page-line">{page_label(page.offset, shown, page.total)}</p>'
        return (
            library_html(page.records, page.total, page.offset, collection, text_filter or ""),
            line,
            gr.Button(interactive=page.offset > 0),
            gr.Button(interactive=page.offset + shown < page.total),
            page.offset,
            gr.Dropdown(choices=[(r.source, r.id) for r in page.records], value=None),
            attention_html(items, collection),
        )

    def first_page(
        self,
        collection: str | None,
        text_filter: str | None,
        sort: str | None,
        rejected: list[Rejected] | None,
        request: gr.Request,
    ) -> tuple[Any, ...]:
        """Another collection, filter or order: from the first page."""
        return self.library(collection, text_filter, sort, 0, rejected, request)

    def previous_page(
        self,
        collection: str | None,
        text_filter: str | None,
        sort: str | None,
        offset: int | None,
        rejected: list[Rejected] | None,
        request: gr.Request,
    ) -> tuple[Any, ...]:
        back = max(0, int(offset or 0) - PAGE_SIZE)
        return self.library(collection, text_filter, sort, back, rejected, request)

    def next_page(
        self,
        collection: str | None,
        text_filter: str | None,
        sort: str | None,
        offset: int | None,
        rejected: list[Rejected] | None,
        request: gr.Request,
    ) -> tuple[Any, ...]:
        ahead = int(offset or 0) + PAGE_SIZE
        return self.library(collection, text_filter, sort, ahead, rejected, request)

    # -- uploads -------------------------------------------------------------------------
    def upload(
        self,
        files: Sequence[str] | None,
        collection: str | None,
        text_filter: str | None,
        sort: str | None,
        offset: int | None,
        rejected: list[Rejected] | None,
        request: gr.Request,
    ) -> Iterator[tuple[Any, ...]]:
        """Outputs: per-file progress, the drop zone (cleared), the files not accepted,
        then LISTING."""
        skip = gr.skip()
        listing_skipped = (skip,) * 7
        paths = [Path(p) for p in files or []]
        caller = self.web.caller(request)
        if not paths:
            yield skip, skip, skip, *listing_skipped
            return
        if caller is None or not collection:
            _discard(paths)  # Gradio's copies: nothing of them is kept anywhere
            problem = NO_ACCOUNT if caller is None else NO_CHOICE
            yield message_html("error", problem), None, skip, *listing_skipped
            return
        received = [FileRow(p.name, "received") for p in paths]
        checking = f"Received {len(paths)} file(s) for {collection}: checking them…"
        yield progress_html(received, "received", checking), skip, skip, *listing_skipped
        refused: list[FileRow] = []
        most = files_per_upload(self.workspace.settings.server.uploads_per_minute)
        if len(paths) > most:
            reason = f"at most {most} files per upload"
            refused.extend(FileRow(extra.name, "rejected", reason=reason) for extra in paths[most:])
            _discard(paths[most:])
            paths = paths[:most]
        try:
            # The service takes private copies (and removes them); Gradio's cached copies
            # are removed at once, so no document lingers in /tmp.
            try:
                staged, unreadable = self.workspace.ingestion.stage(paths)
            finally:
                _discard(paths)
            refused += [FileRow(name, "rejected", reason=why) for name, why in unreadable]
            result = self.workspace.upload(caller, collection, staged, self.web.client(request))
        except CitadelError as exc:
            yield message_html("error", str(exc)), None, skip, *listing_skipped
            return
        except OSError:
            log.exception("staging an upload failed")
            yield message_html("error", INTERNAL), None, skip, *listing_skipped
            return
        refused += [FileRow(name, "rejected", reason=why) for name, why in result.rejected]
        accepted = {f.name for f in result.job.files} if result.job else set()
        kept = _rejected_after(rejected, collection, accepted, refused)
        if result.job is None:
            label = f"Nothing added to {collection}: no file was accepted"
            html = progress_html(refused, "rejected", label)
            yield (
                html,
                None,
                kept,
                *self.library(collection, text_filter, sort, offset, kept, request),
            )
            return
        for html, cleared, listing in self._follow(
            caller, result.job, refused, collection, text_filter, sort, offset, kept, request
        ):
            yield html, cleared, kept, *listing

    def _follow(
        self,
        caller: Caller,
        job: Job,
        refused: list[FileRow],
        collection: str,
        text_filter: str | None,
        sort: str | None,
        offset: int | None,
        rejected: list[Rejected],
        request: gr.Request,
    ) -> Iterator[tuple[Any, Any, tuple[Any, ...]]]:
        """Per-file progress of a job, polled until it ends, then the refreshed listing.
        Yields (progress, drop zone, LISTING)."""
        skip = gr.skip()
        cleared: Any = None
        while True:
            try:
                job = self.workspace.job(caller, job.id)
            except CitadelError as exc:
                yield message_html("error", str(exc)), cleared, (skip,) * 7
                return
            html = self.job_html(caller, job, refused, collection)
            if job.state not in ("queued", "running"):
                listing = self.library(collection, text_filter, sort, offset, rejected, request)
                yield html, cleared, listing
                return
            yield html, cleared, (skip,) * 7
            cleared = skip
            time.sleep(POLL_S)

    @staticmethod
    def job_html(caller: Caller, job: Job, refused: Sequence[FileRow], collection: str) -> str:
        words = (lambda r: r) if caller.admin else plain_reason
        rows = [
            FileRow(
                f.name,
                f.status,
                f.chunks,
                words(f.reason),
                f.stage,
                f.chunks_done,
                f.chunks_total,
            )
            for f in job.files
        ]
        left = time_left(job.seconds_left()) if job.state == "running" else ""
        label = job_state(job, len(refused), collection)
        return progress_html([*rows, *refused], job.state, label, job.message, left)

    # -- Needs attention -----------------------------------------------------------------
    def attend(
        self,
        payload: str | None,
        collection: str | None,
        text_filter: str | None,
        sort: str | None,
        offset: int | None,
        rejected: list[Rejected] | None,
        request: gr.Request,
    ) -> Iterator[tuple[Any, ...]]:
        """Retry or Dismiss pressed in the Needs attention list (the page sends the action
        and the file's name as JSON). Outputs: progress, payload (cleared), the files not
        accepted, then LISTING."""
        skip = gr.skip()
        listing_skipped = (skip,) * 7
        try:
            sent = json.loads(payload or "")
            action, source = str(sent["action"]), str(sent["source"])
        except (ValueError, KeyError, TypeError):
            yield skip, "", skip, *listing_skipped
            return
        caller = self.web.caller(request)
        if caller is None or not collection:
            problem = NO_ACCOUNT if caller is None else "Choose a collection first."
            yield message_html("error", problem), "", skip, *listing_skipped
            return
        if action == "dismiss":
            kept = [
                r
                for r in rejected or []
                if not (r.get("collection") == collection and r.get("name") == source)
            ]
            listing = self.library(collection, text_filter, sort, offset, kept, request)
            yield skip, "", kept, *listing
            return
        if action != "retry":
            yield skip, "", skip, *listing_skipped
            return
        try:
            job = self.workspace.retry(caller, collection, source, self.web.client(request))
        except CitadelError as exc:
            yield message_html("error", str(exc)), "", skip, *listing_skipped
            return
        kept = list(rejected or [])
        for html, _, listing in self._follow(
            caller, job, [], collection, text_filter, sort, offset, kept, request
        ):
            yield html, "", skip, *listing

    # -- one document --------------------------------------------------------------------
    def reingest(
        self,
        document_id: str | None,
        collection: str | None,
        text_filter: str | None,
        sort: str | None,
        offset: int | None,
        rejected: list[Rejected] | None,
        request: gr.Request,
    ) -> Iterator[tuple[Any, ...]]:
        """Read again. Outputs: status, then LISTING."""
        skip = gr.skip()
        caller = self.web.caller(request)
        if caller is None or not document_id or not collection:
            problem = NO_ACCOUNT if caller is None else "Choose a document first."
            yield message_html("error", problem), *(skip,) * 7
            return
        try:
            job = self.workspace.reingest(caller, document_id, self.web.client(request))
        except CitadelError as exc:
            yield message_html("error", str(exc)), *(skip,) * 7
            return
        for html, _, listing in self._follow(
            caller, job, [], collection, text_filter, sort, offset, list(rejected or []), request
        ):
            yield html, *listing

    def ask_delete(self, document_id: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Outputs: the confirm button, status."""
        caller = self.web.caller(request)
        if caller is None or not document_id:
            problem = NO_ACCOUNT if caller is None else "Choose a document first."
            return gr.Button(visible=False), message_html("error", problem)
        try:
            record = self.workspace.document(caller, document_id)
        except CitadelError as exc:
            return gr.Button(visible=False), message_html("error", str(exc))
        question = f"Delete {record.source} from {record.collection}? This cannot be undone."
        return gr.Button(visible=True), message_html("warn", question)

    def delete(
        self,
        document_id: str | None,
        collection: str | None,
        text_filter: str | None,
        sort: str | None,
        offset: int | None,
        rejected: list[Rejected] | None,
        request: gr.Request,
    ) -> tuple[Any, ...]:
        """Outputs: status, confirm button, then LISTING."""
        caller = self.web.caller(request)
        hidden = gr.Button(visible=False)
        skip = gr.skip()
        if caller is None or not document_id:
            problem = NO_ACCOUNT if caller is None else "Choose a document first."
            return message_html("error", problem), hidden, *(skip,) * 7
        try:
            record = self.workspace.document(caller, document_id)
            removed = self.workspace.delete_document(caller, document_id, self.web.client(request))
        except CitadelError as exc:
            return message_html("error", str(exc)), hidden, *(skip,) * 7
        note = f"Deleted {record.source} ({removed} sections)."
        listing = self.library(collection, text_filter, sort, offset, rejected, request)
        return message_html("ok", note), hidden, *listing


def job_state(job: Job, rejected: int, collection: str) -> str:
    """The job's line, naming the collection the files go to and counting every file that
    was dropped (those not accepted before ingestion too)."""
    total = len(job.files) + rejected
    done = sum(1 for f in job.files if f.stage == "done")
    name = job.files[0].name if len(job.files) == 1 else ""
    if job.kind == "reingest":
        doing = f"Reading {name} again in {collection}"
    elif job.kind == "retry":
        doing = f"Trying {name} again in {collection}"
    else:
        doing = f"Adding {total} file(s) to {collection}"
    if job.state == "queued":
        return f"{doing}: waiting for another upload to finish…"
    if job.state == "running":
        return f"{doing}: {done + rejected} of {total} done"
    if job.state == "failed":
        return f"{doing} failed"
    if job.kind in ("reingest", "retry") and len(job.files) == 1:
        outcome = job.files[0].status
        if outcome in ("added", "updated", "unchanged"):
            return f"Done: {name} is {outcome} in {collection}"
        return f"{name} still could not be read: it needs attention"
    failed = rejected + sum(1 for f in job.files if f.status in ("failed", "rejected", "skipped"))
    attention = f"; {failed} need{'s' if failed == 1 else ''} attention" if failed else ""
    return f"Done: {total - failed} of {total} file(s) are now in {collection}{attention}"


def _rejected_after(
    before: list[Rejected] | None,
    collection: str,
    accepted: set[str],
    refused: Sequence[FileRow],
) -> list[Rejected]:
    """The session's files not accepted once an upload is checked: those now accepted
    leave the list, those refused again replace their earlier entry."""
    again = {r.name for r in refused}
    kept = [
        r
        for r in before or []
        if not (r.get("collection") == collection and r.get("name") in accepted | again)
    ]
    kept += [{"collection": collection, "name": r.name, "reason": r.reason} for r in refused]
    return kept[-REJECTED_KEPT:]
