"""HTML of the web UI's conversation, sources and progress tables.

Everything shown here that came from a document, a file name or the model is untrusted:
it is escaped before it reaches the page, piece by piece, and only this module's own
markup (citation links, <mark>, banners) is ever added around the escaped text. Document
text is never Markdown: a document's `![x](http://evil/p.png)` stays a line of text. The
model's finished answer is rendered as Markdown by ui/web/markdown.py (no raw HTML, no
images, http(s) links only).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rag.citations import marker_support
from rag.text import printable, shorten
from rag.types import OCR_NOTE, Answer, DocumentRecord, Passage
from ui.service.sources import ShownSource, shown_sources
from ui.web.markdown import markdown_html

_ELLIPSIS = "…"
LEAD_CHARS = 220  # a passage's preview in lists

LinkFor = Callable[[Passage], str]


def esc(text: object) -> str:
    """Untrusted text as inert HTML (also safe inside a quoted attribute)."""
    return html.escape(printable(str(text)), quote=True)


# -- citations -----------------------------------------------------------------------------


def cite_link(
    answer_id: str, number: int, label: str | None = None, placed: bool = False, variant: int = 0
) -> str:
    """A clickable [n]: the page's script opens the matching hidden source block (its
    `variant` highlights the sentence behind this very claim). A marker Citadel placed
    (`placed`, [~n]) looks different and says so. The chat's sanitiser keeps classes and
    links, not data attributes: the source is named in the link's fragment."""
    text = esc(label) if label is not None else (f"[~{number}]" if placed else f"[{number}]")
    kind = "citadel-cite citadel-cite-placed" if placed else "citadel-cite"
    title = (
        f"Matched by Citadel to source {number} (the model did not cite it): check it"
        if placed
        else f"Show source {number}"
    )
    return (
        f'<a class="{kind}" href="#{source_key(answer_id, number, variant)}" '
        f'title="{title}">{text}</a>'
    )


def source_key(answer_id: str, number: int, variant: int = 0) -> str:
    """The name of a hidden source block: its answer, number and highlighted sentence
    (answer ids are URL-safe base64, safe in a class name and a fragment)."""
    return f"citadel-source-{esc(answer_id)}-{number}-{variant}"


def _find(text: str, snippet: str) -> tuple[int, int] | None:
    """Where the snippet lies in the text: exactly, or with any whitespace between words."""
    wanted = snippet.strip().removesuffix(_ELLIPSIS).strip()
    if not wanted:
        return None
    start = text.find(wanted)
    if start >= 0:
        return start, start + len(wanted)
    words = wanted.split()
    if not words:
        return None
    match = re.search(r"\s+".join(re.escape(w) for w in words), text)
    return (match.start(), match.end()) if match else None


def highlight(text: str, snippet: str) -> str:
    """The passage escaped, with the cited words in <mark>. The text is cut at the match
    and each piece escaped on its own, so no markup can come from either string."""
    span = _find(text, snippet)
    if span is None:
        return esc(text)
    start, end = span
    return (
        f"{esc(text[:start])}<mark class='citadel-mark'>{esc(text[start:end])}</mark>"
        f"{esc(text[end:])}"
    )


def open_label(passage: Passage) -> str:
    if passage.file_type == "pdf" and passage.page is not None:
        return f"Open the document at page {passage.page}"
    if passage.file_type in ("pdf", "txt"):
        return "Open the document"
    return "Download the original file"


def source_block(
    answer_id: str, number: int, passage: Passage, snippet: str, link: str, variant: int = 0
) -> str:
    """A hidden, fully escaped source, copied into the source panel when [n] is clicked;
    `snippet` is the sentence highlighted (one block per sentence a marker points to)."""
    title = ""
    if passage.title and passage.title not in (passage.source, passage.source.rsplit("/", 1)[-1]):
        title = f'<div class="citadel-src-title">{esc(passage.title)}</div>'
    headings = ""
    if passage.headings and (passage.pages or passage.slide is not None or passage.sheet):
        # Without pages, slides or sheets the location already is the section trail.
        trail = esc(" > ".join(passage.headings))
        headings = f'<div class="citadel-src-section">Section: {trail}</div>'
    location = esc(passage.location) if passage.location else "whole document"
    if passage.ocr:
        location += f' <span class="citadel-src-ocr">({esc(OCR_NOTE)})</span>'
    return (
        f'<div class="citadel-src {source_key(answer_id, number, variant)}" hidden>'
        f'<div class="citadel-src-head"><span class="citadel-src-n">[{number}]</span> '
        f'<span class="citadel-src-doc">{esc(passage.source)}</span></div>'
        f"{title}"
        f'<div class="citadel-src-where">{location}'
        f' <span class="citadel-src-collection">({esc(passage.collection)})</span></div>'
        f"{headings}"
        f'<blockquote class="citadel-src-text">{highlight(passage.text, snippet)}</blockquote>'
        f'<a class="citadel-open" href="{esc(link)}" target="_blank" rel="noopener noreferrer">'
        f"{esc(open_label(passage))}</a>"
        "</div>"
    )


# -- banners -------------------------------------------------------------------------------


def banner(kind: str, title: str, body: str = "") -> str:
    """kind: search, refused, incomplete, notice or error. `body` is HTML already escaped."""
    role = "alert" if kind == "error" else "status"
    return (
        f'<div class="citadel-banner citadel-banner-{esc(kind)}" role="{role}">'
        f"<strong>{esc(title)}</strong>"
        f"{f'<div>{body}</div>' if body else ''}</div>"
    )


def error_html(message: str) -> str:
    return banner("error", "Could not answer", esc(message))


# -- answers -------------------------------------------------------------------------------


def _source_list(answer_id: str, sources: Sequence[ShownSource], previews: bool) -> str:
    items = []
    for s in sources:
        preview = (
            f'<div class="citadel-preview">'
            f"{esc(shorten(s.snippet or s.passage.text, LEAD_CHARS))}</div>"
            if previews
            else ""
        )
        link = cite_link(answer_id, s.number, placed=s.aligned)
        placed = ' <span class="citadel-muted">(matched by Citadel)</span>' if s.aligned else ""
        items.append(f"<li>{link} {esc(s.passage.where)}{placed}{preview}</li>")
    return f'<ol class="citadel-sources">{"".join(items)}</ol>'


def _blocks(
    answer_id: str,
    sources: Sequence[ShownSource],
    link_for: LinkFor,
    claims: Mapping[int, Sequence[str]] | None = None,
) -> str:
    """The hidden source blocks: one per source with its snippet (variant 0), and one per
    other sentence a claim's marker points to (`claims`: number -> sentences 1, 2, …)."""
    parts = []
    for s in sources:
        snippets = [s.snippet, *(claims or {}).get(s.number, ())]
        for variant, snippet in enumerate(snippets):
            # Each sentence at its own page: a passage may run from one page onto the next.
            cited = s.passage.at(snippet) if variant else s.passage
            parts.append(
                source_block(answer_id, s.number, cited, snippet, link_for(cited), variant)
            )
    return "".join(parts)


class _ClaimChips:
    """The chips of an answer's text, each pointing at the sentence of its source that
    supports the claim it follows (rag.citations.marker_support), where the source list's
    chips show the citation's overall snippet."""

    def __init__(self, answer_id: str, text: str, sources: Sequence[ShownSource]) -> None:
        self.answer_id = answer_id
        self.snippets = {s.number: s.snippet for s in sources}
        self.support = marker_support(text, {s.number: s.passage.text for s in sources})
        self.claims: dict[int, list[str]] = {}  # number -> its other sentences (variants 1…)

    def __call__(self, number: int, placed: bool, place: int) -> str:
        sentence = self.support[place] if place < len(self.support) else ""
        variant = 0
        if sentence and sentence != self.snippets.get(number):
            others = self.claims.setdefault(number, [])
            if sentence not in others:
                others.append(sentence)
            variant = others.index(sentence) + 1
        return cite_link(self.answer_id, number, placed=placed, variant=variant)


def answer_html(answer_id: str, answer: Answer, link_for: LinkFor, technical: bool = False) -> str:
    """The assistant's part of a turn: banners, the checked text with clickable markers,
    the sources, and the hidden source blocks the markers open. `technical`: the reader
    administers Citadel, and is told why the model server failed (its address, say)."""
    parts: list[str] = []
    sources = shown_sources(answer)
    if answer.search_mode:
        why = (answer.notice or "The model server is not available.").removeprefix("Search mode: ")
        detail = (
            f"For administrators: {esc(why)}"
            if technical
            else "If this lasts, tell your administrator."
        )
        parts.append(
            banner(
                "search",
                "Written answers are unavailable right now: here are the passages that match",
                f"Click a number to read a passage. {detail}",
            )
        )
        parts.append(_source_list(answer_id, sources, previews=True) if sources else "")
        if not sources:
            parts.append('<p class="citadel-muted">No passage matched the question.</p>')
        parts.append(_blocks(answer_id, sources, link_for))
        return "".join(parts)
    if answer.refused:
        listing = ""
        if sources:  # the closest documents
            items = "".join(
                f"<li>{cite_link(answer_id, s.number, s.passage.source)}"
                f"{', ' + esc(s.passage.location) if s.passage.location else ''}"
                f"{f' ({esc(OCR_NOTE)})' if s.passage.ocr else ''}</li>"
                for s in sources
            )
            listing = f'<div>Closest documents:</div><ul class="citadel-closest">{items}</ul>'
        if answer.absent_names:  # the reader may have misspelt it, or the documents lack it
            names = " or ".join(f"“{esc(name)}”" for name in answer.absent_names)
            why = (
                f"No document you can search mentions {names}. Check the spelling, or ask in "
                "other words; or check that the right collections are chosen above."
            )
        else:
            why = (
                "The documents you can search do not seem to answer this. Try rephrasing the "
                "question, or check that the right collections are chosen above."
            )
        parts.append(banner("refused", "Not found in your documents", why + listing))
        parts.append(_blocks(answer_id, sources, link_for))
        return "".join(parts)
    if answer.notice:
        kind = "incomplete" if answer.incomplete or answer.truncated else "notice"
        parts.append(banner(kind, "Note", esc(answer.notice)))
    numbers = [c.number for c in answer.citations]
    # Markdown, rendered safely (ui/web/markdown.py); each chip opens its claim's sentence.
    chips = _ClaimChips(answer_id, answer.text, sources)
    written = markdown_html(answer.text, numbers, chips)
    parts.append(f'<div class="citadel-text citadel-md">{written}</div>')
    if answer.unsupported:
        items = "".join(f"<li>{esc(shorten(s, LEAD_CHARS))}</li>" for s in answer.unsupported)
        parts.append(
            '<div class="citadel-unsupported">Not supported by the sources (check before '
            f"relying on it):<ul>{items}</ul></div>"
        )
    if sources:
        parts.append('<div class="citadel-sources-title">Sources</div>')
        parts.append(_source_list(answer_id, sources, previews=False))
    parts.append(actions_html(answer_id))
    parts.append(_blocks(answer_id, sources, link_for, chips.claims))
    return "".join(parts)


def actions_html(answer_id: str) -> str:
    """Under an answer: Copy (its text and sources), Helpful / Not helpful and a comment
    (the page's script sends them: ui/web/assets.py). Words, not emoji: a machine without
    an emoji font shows boxes. The answer id is a class (the chat keeps no data attribute);
    the comment box is named by its title (the chat keeps no aria-label either)."""
    aid = esc(answer_id)
    return (
        f'<div class="citadel-rate citadel-rate-for-{aid}">'
        '<button type="button" class="citadel-copy">Copy</button>'
        '<button type="button" class="citadel-rate-button citadel-rate-up">Helpful</button>'
        '<button type="button" class="citadel-rate-button citadel-rate-down">Not helpful'
        "</button>"
        '<input type="text" class="citadel-rate-comment" maxlength="2000" '
        'placeholder="Comment (optional), then Helpful or Not helpful" '
        'title="Comment on this answer">'
        "</div>"
    )


def thinking_html(text: str, writing: bool = False) -> str:
    """A reasoning model's thinking, collapsed above its answer (escaped, never Markdown:
    it is not checked against the sources)."""
    summary = "Thinking…" if writing else "Thinking (not checked against the sources)"
    return (
        f'<details class="citadel-thinking"><summary>{summary}</summary>'
        f'<div class="citadel-text">{esc(text)}</div></details>'
    )


def streaming_html(text: str) -> str:
    """The answer as the model writes it: plain escaped text (markers are linked once the
    answer is checked)."""
    body = esc(text) if text else '<span class="citadel-muted">Searching your documents…</span>'
    cursor = '<span class="citadel-cursor">▍</span>'
    return f'<div class="citadel-text citadel-streaming">{body}{cursor}</div>'


def waiting_html(ahead: int) -> str:
    """The question waits for the model, which is writing other people's answers."""
    people = "1 question" if ahead == 1 else f"{ahead} questions"
    body = (
        f'<span class="citadel-muted" role="status">Waiting for the model: {people} ahead of '
        "yours…</span>"
        if ahead
        else '<span class="citadel-muted" role="status">Waiting for the model: yours is next…'
        "</span>"
    )
    return f'<div class="citadel-text citadel-streaming citadel-waiting">{body}</div>'


def stopped_html(text: str) -> str:
    """An answer stopped while it was written: what was shown, marked as unchecked."""
    body = f'<div class="citadel-text">{esc(text)}</div>' if text else ""
    note = "Stopped: this answer is incomplete, and its sources were not checked."
    return banner("incomplete", "Stopped", esc(note)) + body


# -- the conversation ----------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    """One question and what was shown for it (answer HTML rendered once, server-side)."""

    question: str
    html: str
    answer_id: str | None = None
    answer_text: str = ""  # the checked answer, sent back as history for follow-ups
    owner: str = ""  # who asked: a conversation is only ever shown to its owner

    def saved(self) -> dict[str, Any]:
        """What a saved conversation keeps of the turn (its owner is the conversation's)."""
        return {
            "question": self.question,
            "html": self.html,
            "answer_id": self.answer_id,
            "answer_text": self.answer_text,
        }

    @classmethod
    def restored(cls, saved: dict[str, Any], owner: str, link_for: Callable[[str], str]) -> Turn:
        """A saved turn shown again, its file links renewed by `link_for(document_id)`."""
        html_text = _FILE_LINK.sub(lambda m: esc(link_for(m.group(1))), str(saved.get("html", "")))
        answer_id = saved.get("answer_id")
        return cls(
            str(saved.get("question", "")),
            html_text,
            str(answer_id) if answer_id else None,
            str(saved.get("answer_text", "")),
            owner,
        )


# A signed file link as rendered in an answer (HTML-escaped), up to its anchor.
_FILE_LINK = re.compile(r"/files/([A-Za-z0-9_-]+)\?u=[A-Za-z0-9_-]*&amp;e=\d+&amp;s=[A-Za-z0-9_-]+")


EMPTY_CHAT = (
    "Ask a question about your documents. Answers cite their sources: click a [n] to read "
    "the passage."
)


def chat_messages(turns: Sequence[Turn]) -> list[dict[str, str]]:
    """The conversation as the chat component's messages: HTML this module wrote (the
    question escaped, the answer rendered once, server-side)."""
    messages = []
    for turn in turns:
        messages.append(
            {"role": "user", "content": f'<div class="citadel-q">{esc(turn.question)}</div>'}
        )
        messages.append(
            {"role": "assistant", "content": f'<div class="citadel-a">{turn.html}</div>'}
        )
    return messages


def source_panel_html() -> str:
    return (
        '<div class="citadel-source-body"><p class="citadel-muted">Click a [n] in an answer '
        "to see the passage it cites, with the cited words highlighted.</p></div>"
    )


# -- documents -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FileRow:
    """One file of an upload or re-ingestion as shown. `status`: the job's (queued,
    processing, then added, updated, unchanged, failed, skipped), or received / rejected
    before any job; `stage` (waiting, reading, indexing, done) with `done` of `total`
    sections while indexing."""

    name: str
    status: str
    chunks: int = 0
    reason: str = ""
    stage: str = ""
    done: int = 0
    total: int = 0


FINAL_WORDS = {
    "added": "Added",
    "updated": "Updated",
    "unchanged": "Unchanged",
    "failed": "Failed",
    "skipped": "Skipped",
    "rejected": "Not accepted",
    "removed": "Removed",
}
NEEDS_ATTENTION = ("failed", "skipped", "rejected")


def _sections(n: int) -> str:
    return f"{n:,} section{'s' if n != 1 else ''}"


def stage_words(row: FileRow) -> str:
    """Where a file is, in plain words ("Indexing: 12 of 40 sections", "Updated")."""
    if row.status in FINAL_WORDS:
        word = FINAL_WORDS[row.status]
        if row.status in ("added", "updated") and row.chunks:
            return f"{word}: {_sections(row.chunks)}"
        if row.status == "unchanged":
            return "Unchanged: already up to date"
        return word
    if row.status == "received":
        return "Received"
    if row.stage == "reading":
        return "Reading…"
    if row.stage == "indexing":
        return f"Indexing: {row.done:,} of {_sections(row.total)}"
    if row.status == "processing":
        return "Received, waiting to be read"
    return "Waiting its turn"


_ADVICE = (
    ("cannot read this type", "Save it as PDF or Word, then upload that."),
    ("is empty", "Check that you chose the right file."),
    ("empty file", "Check that you chose the right file."),
    ("upload limit", "Split it into smaller files, or ask your administrator to raise the limit."),
    ("files per upload", "Upload the rest in another batch."),
    ("does not match", "Open it in its own program, save it again as that type, then upload it."),
    ("interrupted", "Upload it again."),
    ("no usable name", "Rename the file, then upload it again."),
    ("same content as", "Nothing to do: the same document is already there."),
    ("no text found", "It may be a scan without text: save it with text (OCR), then upload it."),
    (
        "ocr found no text",
        "The scan may be blank, faint or a photograph: scan it again at 300 dpi, then upload it.",
    ),
    ("password", "Remove its password, then upload it again."),
    ("encrypt", "Remove its password, then upload it again."),
    ("time limit", "It may be very large: split it into parts, or ask your administrator."),
    ("memory limit", "It may be very large: split it into parts, or ask your administrator."),
)


def advice(status: str, reason: str, retry: bool = True) -> str:
    """What to do about a file that was not accepted or could not be read; `retry`:
    whether it can be retried here (Citadel keeps the uploaded original)."""
    lowered = reason.lower()
    for needle, what in _ADVICE:
        if needle in lowered:
            return what
    if status == "rejected":
        return "Correct the file, then upload it again."
    if not retry:
        return (
            "Save the file again from its own program where it is kept, then upload it or "
            "ingest its folder again; if it still fails, tell your administrator."
        )
    return (
        "Save the file again from its own program, then Retry; if it still fails, tell "
        "your administrator."
    )


def progress_html(
    rows: Sequence[FileRow], state: str, label: str, message: str = "", left: str = ""
) -> str:
    """Per-file progress of an upload or re-ingestion, escaped. `state` is the job's
    (queued, running, done, failed; `rejected` when nothing was accepted, `received`
    before the job); `left`: the time left, in words."""
    body = "".join(
        f'<tr class="citadel-status-{esc(r.status)}" data-status="{esc(r.status)}"'
        f' data-stage="{esc(r.stage or r.status)}">'
        f'<td class="citadel-file-name">{esc(r.name)}</td>'
        f'<td class="citadel-file-status">{esc(stage_words(r))}</td>'
        f'<td class="citadel-file-reason">{esc(r.reason)}'
        + (
            f' <span class="citadel-advice">{esc(advice(r.status, r.reason))}</span>'
            if r.status in NEEDS_ATTENTION and r.reason
            else ""
        )
        + "</td></tr>"
        for r in rows
    )
    note = f'<p class="citadel-muted">{esc(message)}</p>' if message else ""
    eta = f' <span class="citadel-eta">{esc(left)}</span>' if left else ""
    return (
        f'<div class="citadel-progress" data-state="{esc(state)}">'
        f'<p class="citadel-job-state" role="status">{esc(label)}{eta}</p>{note}'
        "<table><thead><tr><th>File</th><th>Progress</th><th>Details</th></tr>"
        f"</thead><tbody>{body}</tbody></table></div>"
    )


def time_left(seconds: float | None) -> str:
    """The time left of a job in words: "estimating time left…" until there is a basis."""
    if seconds is None:
        return "· estimating time left…"
    if seconds < 10:
        return "· a few seconds left"
    if seconds < 90:
        return f"· about {int(round(seconds, -1))} seconds left"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"· about {minutes} minutes left"
    return f"· about {seconds / 3600:.1f} hours left"


@dataclass(frozen=True)
class Attention:
    """A file that needs the user's attention: not accepted at upload (`rejected`), or
    not ingested (`failed`, `skipped`); `retry`: Citadel keeps its original."""

    name: str
    status: str
    reason: str
    when: str = ""
    retry: bool = False


_ATTENTION_WORDS = {
    "rejected": "Not accepted",
    "failed": "Could not be read",
    "skipped": "Skipped",
}


def attention_html(items: Sequence[Attention], collection: str | None) -> str:
    """The one "Needs attention" list of a collection, with a Retry button for the failed
    files Citadel keeps and a Dismiss button for those not accepted (the page's script
    sends them: ui/web/documents.py). Every name and reason is escaped."""
    if not collection:
        return '<p class="citadel-muted">Choose a collection to see its files.</p>'
    if not items:
        return (
            '<p class="citadel-muted citadel-attention-none">Nothing needs your attention in '
            f"{esc(collection)}.</p>"
        )
    rows = []
    for item in items:
        buttons = ""
        if item.retry:
            buttons += (
                f'<button type="button" class="citadel-attention-button" data-action="retry" '
                f'data-source="{esc(item.name)}" aria-label="Retry {esc(item.name)}">Retry'
                "</button>"
            )
        if item.status == "rejected":
            buttons += (
                f'<button type="button" class="citadel-attention-button" data-action="dismiss" '
                f'data-source="{esc(item.name)}" aria-label="Dismiss {esc(item.name)}">Dismiss'
                "</button>"
            )
        when = f' <span class="citadel-muted">· {esc(item.when)}</span>' if item.when else ""
        rows.append(
            f'<li class="citadel-attention-item" data-status="{esc(item.status)}">'
            f'<div class="citadel-attention-head"><span class="citadel-file-name">'
            f'{esc(item.name)}</span> <span class="citadel-attention-what">'
            f"{esc(_ATTENTION_WORDS.get(item.status, item.status))}</span>{when}</div>"
            f'<div class="citadel-attention-reason">{esc(item.reason)}</div>'
            f'<div class="citadel-advice">{esc(advice(item.status, item.reason, item.retry))}'
            "</div>"
            f'<div class="citadel-attention-actions">{buttons}</div></li>'
        )
    count = f"{len(items)} file{'s' if len(items) != 1 else ''}"
    return (
        f'<p class="citadel-attention-count">{count} in {esc(collection)}:</p>'
        f'<ul class="citadel-attention">{"".join(rows)}</ul>'
    )


def page_label(offset: int, shown: int, total: int) -> str:
    """ "Documents 1–50 of 10,000" """
    if total == 0:
        return "No documents"
    return f"Documents {offset + 1:,}–{offset + shown:,} of {total:,}"


def library_html(
    records: Sequence[DocumentRecord], total: int, offset: int, collection: str | None, text: str
) -> str:
    """One page of a collection's documents: names in full (long ones wrap), sizes in KB
    or MB, dates as people say them (the exact time on hover)."""
    if not collection:
        return '<p class="citadel-muted">Choose a collection to see its documents.</p>'
    if total == 0:
        if text.strip():
            return f'<p class="citadel-muted">No document of {esc(collection)} matches that.</p>'
        return (
            f'<p class="citadel-muted">No documents in {esc(collection)} yet: drop files in '
            "the box to add some.</p>"
        )
    rows = []
    for r in records:
        title = ""
        if r.title and r.title not in (r.source, r.source.rsplit(".", 1)[0].replace("_", " ")):
            title = f'<div class="citadel-doc-title">{esc(r.title)}</div>'
        rows.append(
            f'<tr data-document="{esc(r.id)}">'
            f'<td class="citadel-doc-name"><span class="citadel-file-name">{esc(r.source)}</span>'
            f"{title}</td>"
            f'<td class="citadel-col-minor">{esc(r.file_type.upper())}</td>'
            f'<td class="citadel-num citadel-col-minor">{r.pages or ""}</td>'
            f'<td class="citadel-num">{r.chunks:,}</td>'
            f'<td class="citadel-num">{esc(file_size(r.size))}</td>'
            f'<td><time datetime="{esc(r.ingested_at)}" title="{esc(r.ingested_at)}">'
            f"{esc(ago(r.ingested_at))}</time></td></tr>"
        )
    label = esc(page_label(offset, len(records), total))
    return (
        f'<div class="citadel-library-scroll" role="region" tabindex="0" '
        f'aria-label="{label}">'
        f'<table class="citadel-library-table"><caption class="citadel-sr-only">{label}'
        '</caption><thead><tr><th scope="col">Document</th>'
        '<th scope="col" class="citadel-col-minor">Type</th>'
        '<th scope="col" class="citadel-col-minor">Pages</th>'
        '<th scope="col">Sections</th><th scope="col">Size</th>'
        f'<th scope="col">Added</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    )


def message_html(kind: str, text: str) -> str:
    """A one-line confirmation (`ok`) or problem (`error`)."""
    return f'<p class="citadel-msg citadel-msg-{esc(kind)}">{esc(text)}</p>'


def user_html(name: str, admin: bool, teams: Iterable[str], auth: bool) -> str:
    role = "administrator" if admin else "member"
    team_list = ", ".join(sorted(teams))
    logout = (
        '<form class="citadel-logout" method="post" action="logout">'
        '<button type="submit">Log out</button></form>'
        if auth
        else ""
    )
    return (
        f'<div class="citadel-user">Signed in as <strong>{esc(name)}</strong> ({role}'
        f"{', teams: ' + esc(team_list) if team_list else ''}) {logout}</div>"
    )


# -- plain words for the library -------------------------------------------------------

# "(PdfStreamError: ...)", "(KeyError)": the parser's own words, for administrators.
_TECHNICAL = re.compile(r"\s*\((?:[A-Z]\w*(?:Error|Exception|Warning)\b)[^)]*\)")


def plain_reason(reason: str) -> str:
    """Why a file could not be added, without the parser's exception names."""
    return _TECHNICAL.sub("", reason)


def file_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / 2**20:.1f} MB"


def ago(iso: str, now: datetime | None = None) -> str:
    """A moment as people say it: "just now", "5 minutes ago", "3 days ago", or the date."""
    try:
        then = datetime.fromisoformat(iso)
    except ValueError:
        return iso[:19].replace("T", " ")
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - then).total_seconds()
    for limit, unit, size in (
        (3600, "minute", 60),
        (86400, "hour", 3600),
        (86400 * 30, "day", 86400),
    ):
        if seconds < 60:
            return "just now"
        if seconds < limit:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return then.strftime("%d %b %Y")
