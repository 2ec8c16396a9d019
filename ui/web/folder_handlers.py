"""The Administration tab's Folders screen: folders (mounted shares) attached to
collections, Sync now with the job's progress, and per folder its last sync (when, how
long, the counts) and the files that could not go in, with why.

Every handler goes through the Workspace, which refuses a non-administrator the attaching
and detaching, and shows anyone only the folders of collections they may read. Paths, file
names and reasons are untrusted text: escaped (ui/web/render.py `esc`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import gradio as gr

from rag.errors import CitadelError
from ui.metadata.folders import FolderSource
from ui.service.jobs import Job
from ui.web.admin_handlers import table_html
from ui.web.handlers import NO_ACCOUNT, Handlers
from ui.web.render import ago, esc, message_html

COUNTED = ("added", "updated", "unchanged", "removed", "failed", "skipped")
POLL_S = 0.5  # how often Sync now's progress is shown again
SHOWN_FAILURES = 50  # files that could not go in shown per folder (the CLI lists them all)


def folders_html(sources: Sequence[FolderSource]) -> str:
    """The folders with their last sync, then each one's problems."""
    rows = [
        (
            s.id,
            s.collection,
            s.path,
            ago(s.synced_at) if s.synced_at else "never",
            f"{s.seconds:.1f} s" if s.seconds is not None else "—",
            *(s.counts.get(name, "—") for name in COUNTED),
        )
        for s in sources
    ]
    headers = ["Id", "Collection", "Folder", "Last sync", "Took", *[n.title() for n in COUNTED]]
    parts = [table_html("Folders kept in sync", headers, rows)]
    for s in sources:
        if not s.error and not s.failures:
            continue
        items = "".join(
            f"<li><code>{esc(f['source'])}</code> ({esc(f['status'])}): {esc(f['reason'])}</li>"
            for f in s.failures[:SHOWN_FAILURES]
        )
        more = len(s.failures) - SHOWN_FAILURES
        if more > 0:
            items += f"<li>… and {more} more (`citadel sources list`)</li>"
        error = message_html("error", s.error) if s.error else ""
        parts.append(
            f'<div class="citadel-folder-problems"><h4>{esc(s.path)} ({esc(s.collection)})'
            f"</h4>{error}<ul>{items}</ul></div>"
        )
    return "".join(parts)


def progress_html(jobs: Sequence[Job]) -> str:
    """Sync now's jobs as they run: each folder's files so far, by status."""
    shown = []
    for job in jobs:
        tally: dict[str, int] = {}
        for f in job.files:
            tally[f.status] = tally.get(f.status, 0) + 1
        seen = ", ".join(f"{n} {status}" for status, n in sorted(tally.items())) or "starting"
        state = {"queued": "waiting", "running": "syncing"}.get(job.state, job.state)
        problem = f": {job.message}" if job.message else ""
        kind = {"done": "ok", "failed": "error"}.get(job.state, "info")
        shown.append(message_html(kind, f"{job.root} — {state} ({seen}){problem}"))
    return "".join(shown)


class FolderHandlers:
    def __init__(self, web: Handlers) -> None:
        self.web = web
        self.workspace = web.workspace

    def view(self, request: gr.Request) -> tuple[Any, Any, Any]:
        """Outputs: the folders' table, the folder picker, the collection picker."""
        caller = self.web.caller(request)
        if caller is None:
            return message_html("error", NO_ACCOUNT), gr.skip(), gr.skip()
        try:
            sources = self.workspace.folder_sources(caller)
            collections = [c.name for c in self.workspace.collections(caller)]
        except CitadelError as exc:
            return message_html("error", str(exc)), gr.skip(), gr.skip()
        picks = [(f"{s.id}: {s.path} → {s.collection}", str(s.id)) for s in sources]
        return (
            folders_html(sources),
            gr.Dropdown(choices=picks, value=None),
            gr.Dropdown(choices=collections),
        )

    def attach(
        self, collection: str | None, path: str | None, request: gr.Request
    ) -> tuple[Any, ...]:
        """Outputs: status, path, then the view's."""
        caller = self.web.caller(request)
        if caller is None:
            return message_html("error", NO_ACCOUNT), gr.skip(), *self.view(request)
        if not (collection or "").strip() or not (path or "").strip():
            problem = "Choose a collection and type the folder's absolute path on the server."
            return message_html("error", problem), gr.skip(), *self.view(request)
        try:
            source = self.workspace.attach_folder(
                caller, (collection or "").strip(), path or "", self.web.client(request)
            )
        except CitadelError as exc:
            return message_html("error", str(exc)), gr.skip(), *self.view(request)
        note = f"Attached {source.path} to {source.collection}: press Sync now to read it."
        return message_html("ok", note), "", *self.view(request)

    def detach(self, pick: str | None, keep: bool, request: gr.Request) -> tuple[Any, ...]:
        """Outputs: status, then the view's."""
        caller = self.web.caller(request)
        if caller is None or not pick:
            problem = NO_ACCOUNT if caller is None else "Choose a folder first."
            return message_html("error", problem), *self.view(request)
        try:
            removed = self.workspace.detach_folder(caller, pick, keep, self.web.client(request))
        except CitadelError as exc:
            return message_html("error", str(exc)), *self.view(request)
        note = f"Detached; {removed} document(s) removed from the collection."
        return message_html("ok", note), *self.view(request)

    def sync_now(self, pick: str | None, request: gr.Request) -> Iterator[tuple[Any, ...]]:
        """Outputs: status, then the view's. The chosen folder (none: every folder shown)
        is synced; its progress is shown until it ends, then the refreshed table."""
        caller = self.web.caller(request)
        if caller is None:
            yield message_html("error", NO_ACCOUNT), *self.view(request)
            return
        try:
            jobs = self.workspace.sync_folders(caller, ref=pick or None)
        except CitadelError as exc:
            yield message_html("error", str(exc)), *self.view(request)
            return
        if not jobs:
            yield message_html("error", "No folder is attached yet."), *self.view(request)
            return
        while any(j.state in ("queued", "running") for j in jobs):
            yield progress_html(jobs), gr.skip(), gr.skip(), gr.skip()
            time.sleep(POLL_S)
        yield progress_html(jobs), *self.view(request)
