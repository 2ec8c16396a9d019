"""The web UI: a Gradio app mounted at / of the team server.

It only ever calls the Workspace, which checks every permission and audits; the pickers
shown here are a convenience, never a decision. Document text, file names and model
output are rendered by `ui.web_render` as escaped HTML (no Markdown, no chat widget that
would turn a document's image syntax into an outside request).

Offline: no analytics, system fonts only, no run history kept in the browser, no links to
Gradio's API pages.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import FastAPI, Request
from gradio.utils import get_upload_folder

from rag.answering import Delta
from rag.errors import CitadelError
from rag.types import DocumentRecord, Message
from ui.accounts import Caller
from ui.jobs import Job
from ui.sessions import COOKIE
from ui.uploads import MAX_FILES_PER_UPLOAD
from ui.web_render import (
    CSS,
    SOURCE_CLICK_JS,
    FileRow,
    Turn,
    answer_html,
    conversation_html,
    error_html,
    message_html,
    progress_html,
    source_panel_html,
    streaming_html,
    user_html,
)
from ui.workspace import LOCAL_ADMIN, MAX_QUESTION_CHARS, Answered, Workspace

log = logging.getLogger(__name__)

MAX_TURNS_SHOWN = 50
POLL_S = 0.5
STREAM_REFRESH_S = 0.08  # re-render the streamed answer at most this often
EXPORT_KEEP_S = 120.0  # the exported file's own copy; Gradio serves its cached copy
SORTS = {
    "Name": ("source", False),
    "Newest first": ("ingested_at", True),
    "Largest first": ("size", True),
    "Most chunks": ("chunks", True),
}
LIBRARY_HEADERS = ["Document", "Type", "Title", "Pages", "Chunks", "Size (KB)", "Ingested"]
FAILURE_HEADERS = ["File", "Reason", "When"]
NO_ACCOUNT = "Your account is disabled or was removed: ask your administrator."
INTERNAL = "Something went wrong on the server; the administrator can find details in its log."

THEME = gr.themes.Soft(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def mount_web(app: FastAPI, workspace: Workspace) -> None:
    """Mount the web UI at / (after the API routes, which keep precedence)."""
    server = workspace.settings.server
    web = WebApp(workspace)
    blocks = web.build()
    gr.mount_gradio_app(
        app,
        blocks,
        path="/",
        # Citadel's own login (/login, ui/login.py) sets the session Gradio reads here.
        auth_dependency=web.session_user if server.auth else None,
        ssr_mode=False,
        footer_links=[],
        run_history=False,
        mcp_server=False,
        pwa=False,
        enable_monitoring=False,
        show_error=False,
        max_file_size=int(server.max_upload_mb * 2**20),
        theme=THEME,
        css=CSS,
    )


class WebApp:
    """The handlers of the UI, each resolving its caller from the Gradio session."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.auth = workspace.settings.server.auth

    # -- who -----------------------------------------------------------------------------
    def session_user(self, request: Request) -> str | None:
        """The signed-in user of a request to the UI (None: Gradio answers 401)."""
        return self.workspace.sessions.user(request.cookies.get(COOKIE))

    def caller(self, request: gr.Request | None) -> Caller | None:
        if not self.auth:
            return self.workspace.caller_named(LOCAL_ADMIN.name)
        name = getattr(request, "username", None) if request is not None else None
        return self.workspace.caller_named(name) if name else None

    @staticmethod
    def client(request: gr.Request | None) -> str | None:
        client = getattr(request, "client", None) if request is not None else None
        return getattr(client, "host", None)

    def readable(self, caller: Caller) -> list[str]:
        return [c.name for c in self.workspace.collections(caller)]

    # -- layout --------------------------------------------------------------------------
    def build(self) -> gr.Blocks:
        blocks = gr.Blocks(analytics_enabled=False, title="Citadel", delete_cache=(3600, 3600))
        with blocks:
            turns = gr.State([])
            with gr.Row(equal_height=False):
                gr.Markdown("## Citadel", elem_id="citadel-title")
                user = gr.HTML("", elem_id="citadel-user", js_on_load=None)
            with gr.Tabs(elem_id="citadel-tabs"):
                with gr.Tab("Ask", id="ask", elem_id="citadel-tab-ask"):
                    chat = self._chat_tab(turns)
                with gr.Tab("Documents", id="documents", elem_id="citadel-tab-documents"):
                    docs = self._documents_tab()
                with gr.Tab(
                    "Administration", id="admin", elem_id="citadel-tab-admin", visible=False
                ) as admin_tab:
                    self._admin_tab()

            blocks.load(
                self.on_load,
                outputs=[
                    user,
                    chat["collections"],
                    docs["collection"],
                    chat["starters_collection"],
                    chat["starters_admin"],
                    admin_tab,
                ],
                api_visibility="private",
            ).then(
                self.starters_for,
                inputs=[chat["collections"]],
                outputs=[chat["starters"]],
                api_visibility="private",
            ).then(
                self.load_starters_editor,
                inputs=[chat["starters_collection"]],
                outputs=[chat["starters_editor"]],
                api_visibility="private",
            ).then(
                self.library,
                inputs=[docs["collection"], docs["filter"], docs["sort"]],
                outputs=[docs["library"], docs["select"], docs["failures"]],
                api_visibility="private",
            )
        blocks.queue(default_concurrency_limit=16)
        return blocks

    def _chat_tab(self, turns: gr.State) -> dict[str, Any]:
        c: dict[str, Any] = {}
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                c["collections"] = gr.Dropdown(
                    choices=[],
                    multiselect=True,
                    label="Collections to search",
                    elem_id="citadel-collections",
                )
                c["starters"] = gr.Dataset(
                    components=[gr.Textbox(visible=False)],
                    samples=[],
                    label="Suggested questions",
                    elem_id="citadel-starters",
                    visible=False,
                )
                c["conversation"] = gr.HTML(
                    conversation_html([]),
                    elem_id="citadel-conversation",
                    js_on_load=SOURCE_CLICK_JS,
                    autoscroll=True,
                    min_height=240,
                    max_height=720,
                )
                with gr.Row():
                    c["question"] = gr.Textbox(
                        placeholder="Ask a question about your documents…",
                        label="Question",
                        show_label=False,
                        lines=2,
                        max_lines=8,
                        max_length=MAX_QUESTION_CHARS,
                        scale=6,
                        elem_id="citadel-question",
                    )
                    with gr.Column(scale=1, min_width=120):
                        c["send"] = gr.Button("Send", variant="primary", elem_id="citadel-send")
                        c["clear"] = gr.Button("New conversation", elem_id="citadel-new-chat")
                with gr.Accordion("Rate an answer", open=False, elem_id="citadel-feedback"):
                    with gr.Row():
                        c["rate_answer"] = gr.Dropdown(
                            choices=[],
                            label="Answer",
                            elem_id="citadel-feedback-answer",
                            scale=3,
                        )
                        c["up"] = gr.Button("👍 Helpful", elem_id="citadel-thumbs-up", scale=1)
                        c["down"] = gr.Button(
                            "👎 Not helpful", elem_id="citadel-thumbs-down", scale=1
                        )
                    c["comment"] = gr.Textbox(
                        label="Comment (optional)",
                        max_length=2000,
                        elem_id="citadel-feedback-comment",
                    )
                    c["rated"] = gr.HTML("", elem_id="citadel-feedback-status", js_on_load=None)
                with gr.Accordion(
                    "Suggested questions (administrators)",
                    open=False,
                    visible=False,
                    elem_id="citadel-starters-admin",
                ) as c["starters_admin"]:
                    c["starters_collection"] = gr.Dropdown(
                        choices=[], label="Collection", elem_id="citadel-starters-collection"
                    )
                    c["starters_editor"] = gr.Textbox(
                        label="Questions, one per line",
                        lines=4,
                        elem_id="citadel-starters-editor",
                    )
                    c["starters_save"] = gr.Button("Save", elem_id="citadel-starters-save")
                    c["starters_saved"] = gr.HTML(
                        "", elem_id="citadel-starters-status", js_on_load=None
                    )
            with gr.Column(scale=2):
                gr.Markdown("### Source")
                gr.HTML(source_panel_html(), elem_id="citadel-source-panel", js_on_load=None)

        ask_inputs = [c["question"], c["collections"], turns]
        ask_outputs = [c["conversation"], turns, c["question"], c["send"], c["rate_answer"]]
        # Asking is wired to three triggers (send, Enter, a starter question), the same way.
        asking: dict[str, Any] = {
            "fn": self.ask,
            "inputs": ask_inputs,
            "outputs": ask_outputs,
            "api_visibility": "private",
            "concurrency_limit": 16,
        }
        for trigger in (c["send"].click, c["question"].submit):
            trigger(**asking)
        c["starters"].click(
            self.pick_starter,
            inputs=[c["starters"]],
            outputs=[c["question"]],
            api_visibility="private",
        ).then(**asking)
        c["clear"].click(
            self.new_conversation,
            outputs=[c["conversation"], turns, c["rate_answer"], c["rated"]],
            api_visibility="private",
        )
        c["collections"].change(
            self.starters_for,
            inputs=[c["collections"]],
            outputs=[c["starters"]],
            api_visibility="private",
        )
        for button, rating in ((c["up"], 1), (c["down"], -1)):
            button.click(
                self._rater(rating),
                inputs=[c["rate_answer"], c["comment"]],
                outputs=[c["rated"], c["comment"]],
                api_visibility="private",
            )
        c["starters_collection"].change(
            self.load_starters_editor,
            inputs=[c["starters_collection"]],
            outputs=[c["starters_editor"]],
            api_visibility="private",
        )
        c["starters_save"].click(
            self.save_starters,
            inputs=[c["starters_collection"], c["starters_editor"], c["collections"]],
            outputs=[c["starters_saved"], c["starters_editor"], c["starters"]],
            api_visibility="private",
        )
        return c

    def _documents_tab(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        d["collection"] = gr.Dropdown(
            choices=[], label="Collection", elem_id="citadel-doc-collection"
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                gr.Markdown("### Upload")
                d["files"] = gr.File(
                    file_count="multiple",
                    label="Drop files here (PDF, Word, PowerPoint, Excel, HTML, Markdown, text…)",
                    elem_id="citadel-upload",
                )
                d["progress"] = gr.HTML("", elem_id="citadel-upload-status", js_on_load=None)
            with gr.Column(scale=3):
                gr.Markdown("### Library")
                with gr.Row():
                    d["filter"] = gr.Textbox(
                        label="Filter",
                        placeholder="name or title",
                        elem_id="citadel-library-filter",
                    )
                    d["sort"] = gr.Dropdown(
                        choices=list(SORTS),
                        value="Name",
                        label="Sort by",
                        elem_id="citadel-library-sort",
                    )
                    d["refresh"] = gr.Button("Refresh", elem_id="citadel-library-refresh")
                d["library"] = gr.Dataframe(
                    headers=LIBRARY_HEADERS,
                    value=[],
                    datatype="str",
                    interactive=False,
                    wrap=True,
                    elem_id="citadel-library",
                )
                with gr.Row():
                    d["select"] = gr.Dropdown(
                        choices=[], label="Document", elem_id="citadel-doc-select", scale=3
                    )
                    d["reingest"] = gr.Button("Re-ingest", elem_id="citadel-doc-reingest")
                    d["delete"] = gr.Button("Delete…", variant="stop", elem_id="citadel-doc-delete")
                    d["confirm"] = gr.Button(
                        "Yes, delete it",
                        variant="stop",
                        visible=False,
                        elem_id="citadel-doc-delete-confirm",
                    )
                d["status"] = gr.HTML("", elem_id="citadel-doc-status", js_on_load=None)
                gr.Markdown("### Files that could not be ingested")
                d["failures"] = gr.Dataframe(
                    headers=FAILURE_HEADERS,
                    value=[],
                    datatype="str",
                    interactive=False,
                    wrap=True,
                    elem_id="citadel-failures",
                )

        view = [d["collection"], d["filter"], d["sort"]]
        listing = [d["library"], d["select"], d["failures"]]
        for trigger in (
            d["collection"].change,
            d["filter"].submit,
            d["sort"].change,
            d["refresh"].click,
        ):
            trigger(self.library, inputs=view, outputs=listing, api_visibility="private")
        d["files"].upload(
            self.upload,
            inputs=[d["files"], *view],
            outputs=[d["progress"], d["files"], *listing],
            api_visibility="private",
        )
        d["reingest"].click(
            self.reingest,
            inputs=[d["select"], *view],
            outputs=[d["status"], *listing],
            api_visibility="private",
        )
        d["delete"].click(
            self.ask_delete,
            inputs=[d["select"]],
            outputs=[d["confirm"], d["status"]],
            api_visibility="private",
        )
        d["select"].change(
            lambda _: gr.Button(visible=False),
            inputs=[d["select"]],
            outputs=[d["confirm"]],
            api_visibility="private",
        )
        d["confirm"].click(
            self.delete,
            inputs=[d["select"], *view],
            outputs=[d["status"], d["confirm"], *listing],
            api_visibility="private",
        )
        return d

    def _admin_tab(self) -> None:
        gr.Markdown(
            "### Feedback export\nAnswers rated helpful, as a question set (JSONL) for "
            "`citadel eval`."
        )
        export = gr.Button("Export feedback", elem_id="citadel-export-feedback")
        exported = gr.File(label="Export", interactive=False, elem_id="citadel-export-file")
        note = gr.HTML("", elem_id="citadel-export-status", js_on_load=None)
        export.click(self.export, outputs=[exported, note], api_visibility="private")

    # -- start ---------------------------------------------------------------------------
    def on_load(self, request: gr.Request) -> tuple[Any, ...]:
        caller = self.caller(request)
        if caller is None:
            nobody = gr.Dropdown(choices=[], value=None)
            return (
                error_html(NO_ACCOUNT),
                gr.Dropdown(choices=[], value=[]),
                nobody,
                nobody,
                gr.Accordion(visible=False),
                gr.Tab(visible=False),
            )
        try:
            names = self.readable(caller)
        except CitadelError as exc:
            log.warning("listing collections for %s failed: %s", caller.name, exc)
            names = []
        first = names[0] if names else None
        return (
            user_html(caller.name, caller.admin, caller.teams, self.auth),
            gr.Dropdown(choices=names, value=names),
            gr.Dropdown(choices=names, value=first),
            gr.Dropdown(choices=names, value=first),
            gr.Accordion(visible=caller.admin),
            gr.Tab(visible=caller.admin),
        )

    # -- asking --------------------------------------------------------------------------
    def ask(
        self,
        question: str | None,
        collections: Sequence[str] | None,
        turns: list[Turn] | None,
        request: gr.Request,
    ) -> Iterator[tuple[Any, ...]]:
        """Outputs: conversation, turns, question box, send button, answer to rate."""
        turns = list(turns or [])[-MAX_TURNS_SHOWN:]
        question = (question or "").strip()
        skip = gr.skip()
        if not question:
            yield skip, skip, skip, skip, skip
            return
        caller = self.caller(request)
        if caller is None:
            yield conversation_html([Turn(question, error_html(NO_ACCOUNT))]), [], skip, skip, skip
            return
        # The conversation lives in Gradio's session, which a browser names itself: only the
        # turns of this user are ever shown or sent back as history.
        turns = [t for t in turns if t.owner == caller.name]
        if not collections:
            failed = Turn(question, error_html("Choose at least one collection to search."))
            yield conversation_html([*turns, failed]), turns, skip, skip, skip
            return
        history = _history(turns)
        yield (
            conversation_html([*turns, Turn(question, streaming_html(""))]),
            skip,
            "",
            gr.Button(interactive=False),
            skip,
        )
        final: Turn
        try:
            events = self.workspace.ask(
                caller, question, list(collections), history, client=self.client(request)
            )
            written = ""
            shown_at = 0.0
            answered: Answered | None = None
            for event in events:
                if isinstance(event, Delta):
                    written += event.text
                    now = time.monotonic()
                    if now - shown_at >= STREAM_REFRESH_S:
                        shown_at = now
                        pending = Turn(question, streaming_html(written))
                        yield conversation_html([*turns, pending]), skip, skip, skip, skip
                else:
                    answered = event
            if answered is None:
                final = Turn(question, error_html(INTERNAL), owner=caller.name)
            else:
                html = answer_html(
                    answered.id,
                    answered.answer,
                    lambda p: self.workspace.file_link(caller, p),
                )
                final = Turn(question, html, answered.id, answered.answer.text, caller.name)
        except CitadelError as exc:
            final = Turn(question, error_html(str(exc)), owner=caller.name)
        except Exception:
            log.exception("answering in the web UI failed")
            final = Turn(question, error_html(INTERNAL), owner=caller.name)
        done = [*turns, final]
        yield (
            conversation_html(done),
            done,
            skip,
            gr.Button(interactive=True),
            _rate_choices(done) if final.answer_id else skip,
        )

    def pick_starter(self, sample: Any) -> str:
        if isinstance(sample, list | tuple):
            sample = sample[0] if sample else ""
        return str(sample or "")

    def new_conversation(self) -> tuple[Any, ...]:
        return conversation_html([]), [], gr.Dropdown(choices=[], value=None), ""

    def starters_for(self, collections: Sequence[str] | None, request: gr.Request) -> Any:
        caller = self.caller(request)
        questions: list[str] = []
        if caller is not None:
            for name in collections or []:
                try:
                    questions.extend(self.workspace.starters(caller, name))
                except CitadelError:
                    continue
        unique = list(dict.fromkeys(q for q in questions if q.strip()))
        return gr.Dataset(samples=[[q] for q in unique], visible=bool(unique))

    def load_starters_editor(self, collection: str | None, request: gr.Request) -> str:
        caller = self.caller(request)
        if caller is None or not collection:
            return ""
        try:
            return "\n".join(self.workspace.starters(caller, collection))
        except CitadelError:
            return ""

    def save_starters(
        self,
        collection: str | None,
        text: str | None,
        chosen: Sequence[str] | None,
        request: gr.Request,
    ) -> tuple[Any, ...]:
        caller = self.caller(request)
        skip = gr.skip()
        if caller is None:
            return message_html("error", NO_ACCOUNT), skip, skip
        if not collection:
            return message_html("error", "Choose a collection first."), skip, skip
        lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
        try:
            saved = self.workspace.set_starters(caller, collection, lines)
        except CitadelError as exc:
            return message_html("error", str(exc)), skip, skip
        note = f"Saved {len(saved)} suggested question(s) for {collection}."
        return message_html("ok", note), "\n".join(saved), self.starters_for(chosen, request)

    def _rater(self, rating: int) -> Any:
        def rate(
            answer_id: str | None, comment: str | None, request: gr.Request
        ) -> tuple[Any, ...]:
            caller = self.caller(request)
            if caller is None:
                return message_html("error", NO_ACCOUNT), gr.skip()
            if not answer_id:
                return message_html("error", "There is no answer to rate yet."), gr.skip()
            try:
                self.workspace.add_feedback(
                    caller, answer_id, rating, (comment or "")[:2000], self.client(request)
                )
            except CitadelError as exc:
                return message_html("error", str(exc)), gr.skip()
            word = "helpful" if rating > 0 else "not helpful"
            return message_html("ok", f"Thank you: recorded as {word}."), ""

        return rate

    # -- documents -----------------------------------------------------------------------
    def library(
        self,
        collection: str | None,
        text_filter: str | None,
        sort: str | None,
        request: gr.Request,
    ) -> tuple[Any, ...]:
        """Outputs: the documents table, the document picker, the failures table."""
        caller = self.caller(request)
        empty: tuple[Any, ...] = ([], gr.Dropdown(choices=[], value=None), [])
        if caller is None or not collection:
            return empty
        try:
            records = self.workspace.documents(caller, collection)
            failures = self.workspace.failures(caller, collection)
        except CitadelError:
            return empty
        wanted = (text_filter or "").strip().lower()
        if wanted:
            records = [r for r in records if wanted in f"{r.source} {r.title}".lower()]
        field, descending = SORTS.get(sort or "Name", SORTS["Name"])
        records.sort(key=lambda r: getattr(r, field), reverse=descending)
        rows = [_document_row(r) for r in records]
        choices = [(r.source, r.id) for r in records]
        failed = [[f["source"], f["reason"], f["at"][:19].replace("T", " ")] for f in failures]
        return rows, gr.Dropdown(choices=choices, value=None), failed

    def upload(
        self,
        files: Sequence[str] | None,
        collection: str | None,
        text_filter: str | None,
        sort: str | None,
        request: gr.Request,
    ) -> Iterator[tuple[Any, ...]]:
        """Outputs: per-file progress, the file picker (cleared), then the library."""
        skip = gr.skip()
        paths = [Path(p) for p in files or []]
        caller = self.caller(request)
        if not paths:
            yield skip, skip, skip, skip, skip
            return
        if caller is None or not collection:
            problem = NO_ACCOUNT if caller is None else "Choose a collection first."
            _discard(paths)
            yield message_html("error", problem), None, skip, skip, skip
            return
        rejected: list[FileRow] = []
        if len(paths) > MAX_FILES_PER_UPLOAD:
            for extra in paths[MAX_FILES_PER_UPLOAD:]:
                reason = f"at most {MAX_FILES_PER_UPLOAD} files per upload"
                rejected.append(FileRow(extra.name, "rejected", reason=reason))
            _discard(paths[MAX_FILES_PER_UPLOAD:])
            paths = paths[:MAX_FILES_PER_UPLOAD]
        incoming = self.workspace.settings.uploads_path / ".incoming"
        staged: list[tuple[str, Path]] = []
        try:
            incoming.mkdir(parents=True, exist_ok=True)
            for path in paths:
                # The workspace moves accepted files away: it gets a private copy, and
                # Gradio's cached copy is removed at once (no document lingers in /tmp).
                with tempfile.NamedTemporaryFile(dir=incoming, delete=False) as out:
                    staged.append((path.name, Path(out.name)))
                    try:
                        with path.open("rb") as source:
                            shutil.copyfileobj(source, out)
                    except OSError:
                        rejected.append(
                            FileRow(path.name, "rejected", reason="the upload was interrupted")
                        )
                        staged.pop()
                        Path(out.name).unlink(missing_ok=True)
            _discard(paths)
            result = self.workspace.upload(caller, collection, staged, self.client(request))
        except CitadelError as exc:
            yield message_html("error", str(exc)), None, skip, skip, skip
            return
        except OSError:
            log.exception("staging an upload failed")
            yield message_html("error", INTERNAL), None, skip, skip, skip
            return
        finally:
            for _, temp in staged:
                temp.unlink(missing_ok=True)
        rejected += [FileRow(name, "rejected", reason=why) for name, why in result.rejected]
        if result.job is None:
            label = "Nothing to ingest: every file was rejected"
            yield progress_html(rejected, "rejected", label), None, skip, skip, skip
            return
        yield from self._follow(
            caller, result.job, rejected, collection, text_filter, sort, request
        )

    def _follow(
        self,
        caller: Caller,
        job: Job,
        rejected: list[FileRow],
        collection: str | None,
        text_filter: str | None,
        sort: str | None,
        request: gr.Request,
    ) -> Iterator[tuple[Any, ...]]:
        """Per-file progress of a job, polled until it ends, then the refreshed library.
        Outputs: progress, file picker, library, document picker, failures."""
        skip = gr.skip()
        cleared: Any = None
        while True:
            try:
                job = self.workspace.job(caller, job.id)
            except CitadelError as exc:
                yield message_html("error", str(exc)), cleared, skip, skip, skip
                return
            rows = [FileRow(f.name, f.status, f.chunks, f.reason) for f in job.files]
            finished = job.state not in ("queued", "running")
            html = progress_html([*rows, *rejected], job.state, _job_state(job), job.message)
            if finished:
                yield (html, cleared, *self.library(collection, text_filter, sort, request))
                return
            yield html, cleared, skip, skip, skip
            cleared = skip
            time.sleep(POLL_S)

    def reingest(
        self,
        document_id: str | None,
        collection: str | None,
        text_filter: str | None,
        sort: str | None,
        request: gr.Request,
    ) -> Iterator[tuple[Any, ...]]:
        """Outputs: status, library, document picker, failures."""
        skip = gr.skip()
        caller = self.caller(request)
        if caller is None or not document_id:
            problem = NO_ACCOUNT if caller is None else "Choose a document first."
            yield message_html("error", problem), skip, skip, skip
            return
        try:
            job = self.workspace.reingest(caller, document_id, self.client(request))
        except CitadelError as exc:
            yield message_html("error", str(exc)), skip, skip, skip
            return
        for progress, _, *listing in self._follow(
            caller, job, [], collection, text_filter, sort, request
        ):
            yield (progress, *listing)

    def ask_delete(self, document_id: str | None, request: gr.Request) -> tuple[Any, ...]:
        caller = self.caller(request)
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
        request: gr.Request,
    ) -> tuple[Any, ...]:
        """Outputs: status, confirm button, library, document picker, failures."""
        caller = self.caller(request)
        hidden = gr.Button(visible=False)
        skip = gr.skip()
        if caller is None or not document_id:
            problem = NO_ACCOUNT if caller is None else "Choose a document first."
            return message_html("error", problem), hidden, skip, skip, skip
        try:
            record = self.workspace.document(caller, document_id)
            removed = self.workspace.delete_document(caller, document_id, self.client(request))
        except CitadelError as exc:
            return message_html("error", str(exc)), hidden, skip, skip, skip
        note = f"Deleted {record.source} ({removed} passages)."
        return (
            message_html("ok", note),
            hidden,
            *self.library(collection, text_filter, sort, request),
        )

    # -- administration ------------------------------------------------------------------
    def export(self, request: gr.Request) -> tuple[Any, ...]:
        caller = self.caller(request)
        if caller is None:
            return None, message_html("error", NO_ACCOUNT)
        try:
            items = self.workspace.export_feedback(caller)
        except CitadelError as exc:
            return None, message_html("error", str(exc))
        folder = Path(tempfile.mkdtemp(prefix="citadel-export-"))
        target = folder / "citadel-feedback-qa.jsonl"
        lines = [json.dumps(item, ensure_ascii=False) for item in items]
        target.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
        # Gradio serves its own cached copy; this one is removed shortly after.
        timer = threading.Timer(EXPORT_KEEP_S, shutil.rmtree, (folder,), {"ignore_errors": True})
        timer.daemon = True
        timer.start()
        return str(target), message_html("ok", f"{len(items)} question(s) exported.")


def _history(turns: Sequence[Turn]) -> list[Message]:
    history: list[Message] = []
    for turn in turns:
        if turn.answer_id is None:
            continue  # an error: nothing was answered
        history.append(Message("user", turn.question))
        if turn.answer_text:
            history.append(Message("assistant", turn.answer_text))
    return history


def _rate_choices(turns: Sequence[Turn]) -> Any:
    choices = []
    for i, turn in enumerate(turns, start=1):
        if turn.answer_id:
            short = " ".join(turn.question.split())
            short = short if len(short) <= 60 else short[:59] + "…"
            choices.append((f"{i}. {short}", turn.answer_id))
    return gr.Dropdown(choices=choices, value=choices[-1][1] if choices else None)


def _document_row(r: DocumentRecord) -> list[Any]:
    return [
        r.source,
        r.file_type,
        r.title,
        r.pages or "",
        r.chunks,
        f"{r.size / 1024:.0f}",
        r.ingested_at[:19].replace("T", " "),
    ]


def _job_state(job: Job) -> str:
    done = sum(1 for f in job.files if f.status not in ("queued", "processing"))
    if job.state in ("queued", "running"):
        return f"Ingesting: {done} of {len(job.files)} file(s) done…"
    if job.state == "failed":
        return "Ingestion failed"
    return f"Done: {done} of {len(job.files)} file(s) processed"


def _discard(paths: Sequence[Path]) -> None:
    """Remove Gradio's cached copies of uploaded files (and their folder when empty); a
    path outside Gradio's upload folder is never touched."""
    cache = Path(get_upload_folder()).resolve()
    for path in paths:
        try:
            resolved = path.resolve()
            if not resolved.is_relative_to(cache) or resolved == cache:
                continue
            resolved.unlink(missing_ok=True)
            if resolved.parent != cache:
                resolved.parent.rmdir()
        except OSError:
            pass
