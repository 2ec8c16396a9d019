"""The web UI's handlers: plain functions of the Gradio events, each resolving its caller
from the Gradio session and going through the Workspace, which checks every permission and
audits. They return what the components show (HTML from ui/web/render.py, component
updates); the layout and the wiring of events are in ui/web/app.py.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import Request
from gradio.utils import get_upload_folder

from rag.errors import CitadelError
from rag.types import Delta, Message, Thinking
from ui.metadata.accounts import Caller
from ui.metadata.conversations import ConversationInfo, new_conversation_id
from ui.service.access import LOCAL_ADMIN
from ui.service.answer_slots import Ticket, places_in_line
from ui.service.library import SortField
from ui.service.sessions import COOKIE
from ui.service.workspace import Answered, Workspace
from ui.web.render import (
    Turn,
    answer_html,
    chat_messages,
    error_html,
    message_html,
    stopped_html,
    streaming_html,
    thinking_html,
    user_html,
    waiting_html,
)

log = logging.getLogger(__name__)

MAX_TURNS_SHOWN = 50
POLL_S = 0.5
STREAM_REFRESH_S = 0.08  # re-render the streamed answer at most this often
STREAMS_KEPT = 256  # answers being written, remembered for Stop (one per browser session)
EXPORT_KEEP_S = 120.0  # the exported file's own copy; Gradio serves its cached copy
SORTS: dict[str, tuple[SortField, bool]] = {
    "Name": ("source", False),
    "Newest first": ("ingested_at", True),
    "Largest first": ("size", True),
    "Most sections": ("chunks", True),
}
NO_ACCOUNT = "Your account is disabled or was removed: ask your administrator."
INTERNAL = "Something went wrong on the server; the administrator can find details in its log."


class Handlers:
    """The handlers of one workspace's web UI (no layout here)."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.auth = workspace.settings.server.auth
        # What each session's answer has written so far (caller, question, text): Stop
        # cancels the answer's event, so the text shown when it stopped is kept from here.
        self._streams: OrderedDict[str, tuple[str, str, str]] = OrderedDict()
        self._streams_lock = threading.Lock()

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
        return self.workspace.readable(caller)

    # -- start ---------------------------------------------------------------------------
    def on_load(self, request: gr.Request) -> tuple[Any, ...]:
        caller = self.caller(request)
        if caller is None:
            return (
                error_html(NO_ACCOUNT),
                gr.Dropdown(choices=[], value=[]),
                gr.Tab(visible=False),
            )
        try:
            names = self.readable(caller)
        except CitadelError as exc:
            log.warning("listing collections for %s failed: %s", caller.name, exc)
            names = []
        return (
            user_html(caller.name, caller.admin, caller.teams, self.auth),
            gr.Dropdown(choices=names, value=names),
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
        """Outputs: conversation, turns, question box, then Send and Stop (Stop replaces
        Send while the answer streams)."""
        turns = list(turns or [])[-MAX_TURNS_SHOWN:]
        question = (question or "").strip()
        skip = gr.skip()
        if not question:
            yield skip, skip, skip, skip, skip
            return
        caller = self.caller(request)
        if caller is None:
            yield chat_messages([Turn(question, error_html(NO_ACCOUNT))]), [], *[skip] * 3
            return
        # The conversation lives in Gradio's session, which a browser names itself: only the
        # turns of this user are ever shown or sent back as history.
        turns = [t for t in turns if t.owner == caller.name]
        if collections is None:  # asked before the page filled the list: all of the caller's
            collections = self.readable(caller)
        if not collections:
            failed = Turn(question, error_html("Choose at least one collection to search."))
            yield chat_messages([*turns, failed]), turns, *[skip] * 3
            return
        history = _history(turns)
        session = getattr(request, "session_hash", None) or ""
        self._remember(session, caller.name, question, "")
        yield (
            chat_messages([*turns, Turn(question, streaming_html(""))]),
            skip,
            "",
            *_streaming(True),
        )
        final: Turn
        thought = ""
        ticket: Ticket | None = None
        try:
            ticket = self.workspace.admit_answer(caller)
            for ahead in places_in_line(ticket):  # the model is busy with others' answers
                waiting = Turn(question, waiting_html(ahead))
                yield chat_messages([*turns, waiting]), *[skip] * 4
            events = self.workspace.ask(
                caller,
                question,
                list(collections),
                history,
                client=self.client(request),
                ticket=ticket,
            )
            written = ""
            shown_at = 0.0
            answered: Answered | None = None
            for event in events:
                if isinstance(event, Thinking | Delta):
                    if isinstance(event, Thinking):
                        thought += event.text
                    else:
                        written += event.text
                        self._remember(session, caller.name, question, written)
                    now = time.monotonic()
                    if now - shown_at >= STREAM_REFRESH_S:
                        shown_at = now
                        shown = _thought(thought, writing=not written) + streaming_html(written)
                        yield chat_messages([*turns, Turn(question, shown)]), *[skip] * 4
                else:
                    answered = event
            if answered is None:
                final = Turn(question, error_html(INTERNAL), owner=caller.name)
            else:
                html = answer_html(
                    answered.id,
                    answered.answer,
                    lambda p: self.workspace.file_link(caller, p),
                    technical=caller.admin,
                )
                final = Turn(
                    question,
                    _thought(thought) + html,
                    answered.id,
                    answered.answer.text,
                    caller.name,
                )
        except CitadelError as exc:
            final = Turn(question, error_html(str(exc)), owner=caller.name)
        except Exception:
            log.exception("answering in the web UI failed")
            final = Turn(question, error_html(INTERNAL), owner=caller.name)
        finally:
            if ticket is not None:  # Stop pressed while waiting in line, too
                ticket.release()
        self._forget(session)
        done = [*turns, final]
        yield chat_messages(done), done, skip, *_streaming(False)

    def regenerate(
        self,
        collections: Sequence[str] | None,
        turns: list[Turn] | None,
        request: gr.Request,
    ) -> Iterator[tuple[Any, ...]]:
        """Retry on the last answer: it is replaced by a new answer to the same question.
        Outputs: as `ask`."""
        caller = self.caller(request)
        mine = [t for t in (turns or []) if caller is not None and t.owner == caller.name]
        if not mine:
            yield (gr.skip(),) * 5
            return
        yield from self.ask(mine[-1].question, collections, mine[:-1], request)

    def stop(self, turns: list[Turn] | None, request: gr.Request) -> tuple[Any, ...]:
        """Stop pressed while an answer streams (its event is cancelled): the text written so
        far stays, marked as stopped and unchecked. Outputs: conversation, turns, Send, Stop."""
        caller = self.caller(request)
        stream = self._forget(getattr(request, "session_hash", None) or "")
        if caller is None or stream is None or stream[0] != caller.name:
            return gr.skip(), gr.skip(), *_streaming(False)
        _, question, written = stream
        turns = [t for t in (turns or []) if t.owner == caller.name][-MAX_TURNS_SHOWN:]
        done = [*turns, Turn(question, stopped_html(written), owner=caller.name)]
        return chat_messages(done), done, *_streaming(False)

    def _remember(self, session: str, caller: str, question: str, written: str) -> None:
        with self._streams_lock:
            self._streams[session] = (caller, question, written)
            self._streams.move_to_end(session)
            while len(self._streams) > STREAMS_KEPT:
                self._streams.popitem(last=False)

    def _forget(self, session: str) -> tuple[str, str, str] | None:
        with self._streams_lock:
            return self._streams.pop(session, None)

    def pick_starter(self, sample: Any) -> str:
        if isinstance(sample, list | tuple):
            sample = sample[0] if sample else ""
        return str(sample or "")

    def new_conversation(self) -> tuple[Any, ...]:
        """Outputs: conversation, turns, rating note, conversation id, title, saved
        conversations (none chosen)."""
        return [], [], "", "", "", gr.Dropdown(value=None)

    # -- saved conversations -------------------------------------------------------------
    def saved_conversations(self, request: gr.Request) -> Any:
        """On load: the caller's saved conversations, newest first (none open)."""
        caller = self.caller(request)
        return _saved_choices(self.workspace.conversations(caller) if caller else [], None)

    def open_conversation(
        self, conversation_id: str | None, request: gr.Request
    ) -> tuple[Any, ...]:
        """Outputs: conversation, turns, conversation id, title, saved conversations."""
        caller = self.caller(request)
        if caller is None or not conversation_id:
            return (gr.skip(),) * 5
        return self._opened(caller, conversation_id, self.workspace.conversations(caller))

    def _opened(
        self, caller: Caller, conversation_id: str, saved: list[ConversationInfo]
    ) -> tuple[Any, ...]:
        try:
            stored = self.workspace.conversation(caller, conversation_id)
        except CitadelError:
            return [], [], "", "", _saved_choices(saved, None)
        renew = functools.partial(self.workspace.document_link, caller)
        turns = [Turn.restored(t, caller.name, renew) for t in stored]
        title = next((c.title for c in saved if c.id == conversation_id), "")
        return (
            chat_messages(turns),
            turns,
            conversation_id,
            title,
            _saved_choices(saved, conversation_id),
        )

    def save_conversation(
        self, conversation_id: str | None, turns: list[Turn] | None, request: gr.Request
    ) -> tuple[Any, ...]:
        """After each answer: the conversation saved (created at its first answer, titled by
        its first question). Outputs: conversation id, title, saved conversations."""
        caller = self.caller(request)
        mine = [t for t in (turns or []) if t.owner == caller.name] if caller else []
        if caller is None or not mine:
            return gr.skip(), gr.skip(), gr.skip()
        conversation_id = conversation_id or new_conversation_id()
        try:
            self.workspace.save_conversation(
                caller, conversation_id, mine[0].question, [t.saved() for t in mine]
            )
        except CitadelError:
            conversation_id = new_conversation_id()  # an id of someone else's: a new one
            self.workspace.save_conversation(
                caller, conversation_id, mine[0].question, [t.saved() for t in mine]
            )
        saved = self.workspace.conversations(caller)
        title = next((c.title for c in saved if c.id == conversation_id), "")
        return conversation_id, title, _saved_choices(saved, conversation_id)

    def rename_conversation(
        self, conversation_id: str | None, title: str | None, request: gr.Request
    ) -> tuple[Any, ...]:
        """Outputs: saved conversations, status."""
        caller = self.caller(request)
        if caller is None or not conversation_id:
            return gr.skip(), message_html("error", "Ask a question first: then it can be named.")
        try:
            self.workspace.rename_conversation(caller, conversation_id, title or "")
        except CitadelError as exc:
            return gr.skip(), message_html("error", str(exc))
        saved = self.workspace.conversations(caller)
        return _saved_choices(saved, conversation_id), message_html("ok", "Renamed.")

    def delete_conversation(
        self, conversation_id: str | None, request: gr.Request
    ) -> tuple[Any, ...]:
        """Outputs: conversation, turns, conversation id, title, saved conversations, status."""
        caller = self.caller(request)
        if caller is None or not conversation_id:
            return (*[gr.skip()] * 5, "")
        try:
            self.workspace.delete_conversation(caller, conversation_id)
        except CitadelError as exc:
            return (*[gr.skip()] * 5, message_html("error", str(exc)))
        saved = self.workspace.conversations(caller)
        return [], [], "", "", _saved_choices(saved, None), message_html("ok", "Deleted.")

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

    def rate(self, answer_id: str, rating: int, comment: str, request: gr.Request) -> str:
        """An answer rated: the result line to show."""
        caller = self.caller(request)
        if caller is None:
            return message_html("error", NO_ACCOUNT)
        try:
            self.workspace.add_feedback(
                caller, answer_id, rating, comment[:2000], self.client(request)
            )
        except CitadelError as exc:
            return message_html("error", str(exc))
        word = "helpful" if rating > 0 else "not helpful"
        return message_html("ok", f"Thank you: recorded as {word}.")

    def rate_inline(self, payload: str | None, request: gr.Request) -> tuple[Any, ...]:
        """A thumb pressed under an answer (its answer id, rating and comment sent by the
        page as JSON). Outputs: the result line, the payload box (cleared)."""
        try:
            sent = json.loads(payload or "")
            answer_id, rating = str(sent["answer"]), int(sent["rating"])
            comment = str(sent.get("comment") or "")
        except (ValueError, KeyError, TypeError):
            return gr.skip(), ""
        if rating not in (1, -1) or not answer_id:
            return gr.skip(), ""
        return self.rate(answer_id, rating, comment, request), ""

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
        exported = gr.File(value=str(target), visible=True)
        return exported, message_html("ok", f"{len(items)} question(s) exported.")


def _saved_choices(saved: Sequence[ConversationInfo], chosen: str | None) -> Any:
    return gr.Dropdown(choices=[(c.title, c.id) for c in saved], value=chosen)


def _thought(text: str, writing: bool = False) -> str:
    return thinking_html(text, writing) if text.strip() else ""


def _streaming(on: bool) -> tuple[Any, Any]:
    """Send and Stop: Stop takes Send's place while an answer streams."""
    return gr.Button(visible=not on, interactive=True), gr.Button(visible=on)


def _history(turns: Sequence[Turn]) -> list[Message]:
    history: list[Message] = []
    for turn in turns:
        if turn.answer_id is None:
            continue  # an error: nothing was answered
        history.append(Message("user", turn.question))
        if turn.answer_text:
            history.append(Message("assistant", turn.answer_text))
    return history


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
