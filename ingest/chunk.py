"""Structure-aware chunking: sections, pages, slides and sheets, within the embedder's window.

Every chunk's embedding text is `title / section trail / text`; its token count, with the
model's own tokenizer and special tokens, never exceeds the embedder's window, so the
embedder never truncates silently. Boundaries follow the document: a chunk never spans two
sections, two slides or two sheets, nor two PDF pages except for a sentence that a page
break cut in two (it is joined, and cites both pages); a table stays whole when it fits and
is otherwise split by rows with its header row repeated. A chunk on more than one page keeps
where in its text each page starts, so a citation names the page of its sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from llama_index.core.node_parser import SentenceSplitter

from ingest.formats import PAGE_TYPES
from ingest.parse import ParsedElement
from ingest.tables import row_text, table_rows

# "9.10.1. Backing up", "2.3 Scope", "5. Reporting an incident": numbered headings, whatever
# category a parser gave them (PDF parsers often call them list items).
_NUMBERED_HEADING = re.compile(r"^(\d+(?:\.\d+)*)\.?\s+\S")
_MAX_HEADING_WORDS = 14
_MAX_SINGLE_NUMBER_HEADING_WORDS = 8  # "1. Open the app" is a list item, not a chapter
_SENTENCE_END = re.compile(r"[.!?;,]$")
_HEADING_CATEGORIES = {"Title"}
_CODE_CHARACTERS = re.compile(r"[/\\~=<>{}|@$]")  # paths, options, addresses: not titles
# Raised whenever the rules change what chunks a document gives: documents indexed with an
# older version are re-chunked by the next ingestion even though their files are unchanged.
# 2: sentences cut by PDF page breaks are joined; PDF file names and terms are not headings.
# 3: page footers are never joined; unnumbered titles outside PDFs need no capital.
# 4: chunks on two pages keep where each page starts; a split paragraph's pieces keep only
#    the pages they are on.
# 5: web pages lose their chrome (navigation, search, page header and footer); "words" over
#    200 characters are shortened.
# (Pages read by OCR left the version at 5: they were never indexed before, and the rules
# for pages with a text layer are unchanged.)
CHUNKING_VERSION = 5
_UNIT_BY_TYPE = {**dict.fromkeys(PAGE_TYPES, "page"), "pptx": "slide", "xlsx": "sheet"}


@dataclass(frozen=True)
class ChunkDraft:
    text: str
    embed_text: str
    headings: tuple[str, ...]
    pages: tuple[int, ...] = ()
    slide: int | None = None
    sheet: str | None = None
    # Chunks on more than one PDF page: (character offset in `text`, page) where each page
    # starts, the first at offset 0; empty for a chunk on one page.
    page_starts: tuple[tuple[int, int], ...] = ()
    ocr: bool = False  # its text was read by OCR from a scanned page


@dataclass
class _Block:
    text: str
    page: int | None
    rows: list[list[str]] | None = None  # tables: cells, for row-wise splitting
    category: str = ""
    # A paragraph continued on the next page: (offset in `text`, page) where that page starts.
    breaks: list[tuple[int, int]] = field(default_factory=list)

    @property
    def starts(self) -> list[tuple[int, int]]:
        """Where each page starts in the text, the block's own page at offset 0."""
        return [] if self.page is None else [(0, self.page), *self.breaks]


@dataclass
class _Section:
    headings: tuple[str, ...]
    unit: int | str | None
    page: int | None
    sheet: str | None
    blocks: list[_Block] = field(default_factory=list)
    ocr: bool = False  # a scanned page: never joined with a page that has a text layer


class Chunker:
    def __init__(self, count_tokens: Callable[[str], int], max_tokens: int) -> None:
        """`count_tokens` counts special tokens too; `max_tokens` is the embedder's window."""
        self._count = count_tokens
        self._max = max_tokens
        self._special = count_tokens("")

    # -- public -------------------------------------------------------------------------
    def chunk(
        self, elements: Sequence[ParsedElement], file_type: str, title: str
    ) -> list[ChunkDraft]:
        drafts: list[ChunkDraft] = []
        for section in self._sections(elements, file_type):
            drafts.extend(self._pack(section, title, file_type))
        return drafts

    def tokens(self, text: str) -> int:
        """Content tokens, without the special tokens."""
        return self._count(text) - self._special

    def embed_text(self, title: str, headings: tuple[str, ...], text: str) -> str:
        """What the embedder sees of a stored chunk: its title and section trail, then its
        text (a collection re-embedded with another model rebuilds it from the payload)."""
        return f"{self._header(title, headings)}\n\n{text}"

    # -- sections -------------------------------------------------------------------------
    def _sections(self, elements: Sequence[ParsedElement], file_type: str) -> list[_Section]:
        unit_kind = _UNIT_BY_TYPE.get(file_type)
        trail: list[_Heading] = []
        sections: list[_Section] = []
        current: _Section | None = None
        for element in elements:
            unit = _unit_of(element, unit_kind)
            heading = _as_heading(element, trail, file_type)
            if heading is not None:
                trail = [h for h in trail if h.level < heading.level] + [heading]
                current = None
                continue
            crossing_page = unit_kind == "page" and current is not None and current.unit != unit
            if crossing_page and current is not None and _continues(current, element):
                cut = current.blocks[-1]
                if element.page is not None:
                    cut.breaks.append((len(cut.text) + 1, element.page))
                cut.text = f"{cut.text} {element.text.strip()}"
                continue
            if current is None or current.unit != unit:
                headings = tuple(h.text for h in trail)
                if file_type == "xlsx" and element.sheet:
                    headings = (element.sheet, *headings)
                current = _Section(headings, unit, element.page, element.sheet, ocr=element.ocr)
                sections.append(current)
            current.blocks.append(_block(element))
        if current is None and trail:
            # The document ends on a heading (a signature, a closing line): keep its words.
            last = trail[-1]
            sections.append(
                _Section(
                    tuple(h.text for h in trail[:-1]), None, None, None, [_Block(last.text, None)]
                )
            )
        return sections

    # -- packing ----------------------------------------------------------------------------
    def _pack(self, section: _Section, title: str, file_type: str) -> list[ChunkDraft]:
        header = self._header(title, section.headings)
        budget = self._max - self._count(header)
        texts: list[tuple[str, list[tuple[int, int]]]] = []  # text, where its pages start
        pieces: list[str] = []
        starts: list[tuple[int, int]] = []
        used = 0

        def flush() -> None:
            nonlocal pieces, starts, used
            texts.extend((t, starts) for t in _flush(pieces))
            pieces, starts, used = [], [], 0

        for block in section.blocks:
            size = self.tokens(block.text)
            if size > budget:
                flush()
                split = self._split_block(block, budget)
                texts.extend(zip(split, _piece_starts(block, split), strict=True))
                continue
            if pieces and used + size > budget:
                flush()
            offset = sum(len(p) + 2 for p in pieces)  # joined with "\n\n" by _flush
            starts.extend((offset + at, page) for at, page in block.starts)
            pieces.append(block.text)
            used += size
        flush()
        return [self._draft(t, header, section, file_type, s) for t, s in texts]

    def _draft(
        self,
        text: str,
        header: str,
        section: _Section,
        file_type: str,
        starts: list[tuple[int, int]],
    ) -> ChunkDraft:
        pdf = file_type in PAGE_TYPES
        changes = _page_changes(starts)
        pages = tuple(sorted({page for _, page in changes}))
        return ChunkDraft(
            text=text,
            embed_text=f"{header}\n\n{text}",
            headings=section.headings,
            pages=(pages or ((section.page,) if section.page else ())) if pdf else (),
            slide=section.page if file_type == "pptx" else None,
            sheet=section.sheet if file_type == "xlsx" else None,
            page_starts=tuple(changes) if pdf and len(pages) > 1 else (),
            ocr=section.ocr,
        )

    def _header(self, title: str, headings: tuple[str, ...]) -> str:
        """`title` then the section trail, innermost sections kept when it is too long."""
        trail = [h for h in headings if h != title]
        limit = self._max // 3
        while True:
            header = "\n".join([title, " > ".join(trail)]) if trail else title
            if self._count(header) <= limit or not trail:
                break
            trail = trail[1:]
        if self._count(header) > limit:
            header = self._hard_split(header, limit - self._special)[0]
        return header

    def _split_block(self, block: _Block, budget: int) -> list[str]:
        if block.rows:
            return self._split_rows(block.rows, budget)
        splitter = SentenceSplitter(
            chunk_size=budget,
            chunk_overlap=min(24, budget // 8),
            tokenizer=self._content_ids,
        )
        out: list[str] = []
        for piece in splitter.split_text(block.text):
            # The splitter measures its pieces approximately; never trust it with the window.
            out.extend([piece] if self.tokens(piece) <= budget else self._hard_split(piece, budget))
        return out

    def _split_rows(self, rows: list[list[str]], budget: int) -> list[str]:
        header_row, body = row_text(rows[0]), rows[1:] or rows[:1]
        out: list[str] = []
        lines: list[str] = []
        used = self.tokens(header_row)
        for row in body:
            line = row_text(row)
            size = self.tokens(line)
            if lines and used + size > budget:
                out.append("\n".join([header_row, *lines]))
                lines, used = [], self.tokens(header_row)
            if used + size > budget:  # one row larger than the window: split the row itself
                out.extend(self._hard_split(line, budget))
                continue
            lines.append(line)
            used += size
        if lines:
            out.append("\n".join([header_row, *lines]))
        return out

    def _hard_split(self, text: str, budget: int) -> list[str]:
        """Word by word (character by character for giant words) under `budget` tokens."""
        out: list[str] = []
        words: list[str] = []
        used = 0
        for word in text.split():
            size = self.tokens(word)
            if size > budget:
                out.extend(_flush(words, " "))
                words, used = [], 0
                step = max(1, len(word) * budget // (size + 1))
                out.extend(word[i : i + step] for i in range(0, len(word), step))
                continue
            if words and used + size > budget:
                out.extend(_flush(words, " "))
                words, used = [], 0
            words.append(word)
            used += size
        out.extend(_flush(words, " "))
        return out

    def _content_ids(self, text: str) -> list[int]:
        # SentenceSplitter only needs a sequence whose length is the token count.
        return [0] * self.tokens(text)


def _page_changes(starts: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """`starts` in text order, with only the entries where the page changes."""
    changes: list[tuple[int, int]] = []
    for at, page in sorted(starts):
        if not changes or changes[-1][1] != page:
            changes.append((at, page))
    return changes


def _piece_starts(block: _Block, pieces: list[str]) -> list[list[tuple[int, int]]]:
    """For each piece of a split block, where the block's pages start in it: a piece keeps
    only the pages it is on. The pieces overlap and may differ from the text in whitespace,
    so each is found by its first words, searching on from the previous one."""
    starts = block.starts
    out: list[list[tuple[int, int]]] = []
    cursor = 0
    for piece in pieces:
        words = piece.split()[:8]
        pattern = r"\s*".join(re.escape(w) for w in words) if words else None
        found = re.compile(pattern).search(block.text, cursor) if pattern else None
        if found is None or not starts:
            out.append(list(starts))  # not found (a hard-split giant word): all its pages
            continue
        begin, end = found.start(), found.start() + len(piece)
        cursor = begin + 1
        first = max((s for s in starts if s[0] <= begin), default=starts[0])[1]
        out.append([(0, first)] + [(at - begin, p) for at, p in starts if begin < at < end])
    return out


def _flush(pieces: list[str], sep: str = "\n\n") -> list[str]:
    return [sep.join(pieces)] if pieces else []


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _block(element: ParsedElement) -> _Block:
    if element.category == "Table" and element.html:
        rows = table_rows(element.html)
        if rows:
            return _Block("\n".join(row_text(r) for r in rows), element.page, rows)
    return _Block(element.text, element.page, category=element.category)


_NOT_BODY = {"Table", "Header", "Footer", "PageNumber", "PageBreak"}
_CONTINUATION_START = re.compile(r"^[a-z0-9)\]},;:.]")
_COMPLETE_END = re.compile(r"[.!?:;)\]]$")


def _continues(section: _Section, element: ParsedElement) -> bool:
    """A PDF paragraph that a page break cut mid-sentence: the previous block ends without
    closing punctuation and this one starts in lower case (or with punctuation)."""
    if not section.blocks or element.category in _NOT_BODY or element.html:
        return False
    if section.ocr != element.ocr:  # a chunk is read by OCR or not, never half of each
        return False
    last = section.blocks[-1]
    if last.rows is not None or last.category in _NOT_BODY:
        return False
    return not _COMPLETE_END.search(last.text.rstrip()) and bool(
        _CONTINUATION_START.match(element.text.lstrip())
    )


def _unit_of(element: ParsedElement, unit_kind: str | None) -> int | str | None:
    if unit_kind == "sheet":
        return element.sheet or element.page
    if unit_kind in {"page", "slide"}:
        return element.page
    return None


@dataclass(frozen=True)
class _Heading:
    level: int
    text: str
    floating: bool = False  # level guessed: a parser's "Title" with no depth (PDF)


def _as_heading(element: ParsedElement, trail: list[_Heading], file_type: str) -> _Heading | None:
    """The element as a heading of the section trail, or None for body text."""
    if file_type == "pptx":
        # Slides: the title placeholder is depth 0; deeper "titles" are short bullets.
        is_title = element.category in _HEADING_CATEGORIES and element.depth == 0
        return _Heading(1, _one_line(element.text)) if is_title else None
    text = _one_line(element.text)
    words = len(text.split())
    if words > _MAX_HEADING_WORDS or "\n" in element.text.strip() or _SENTENCE_END.search(text):
        return None
    numbered = _NUMBERED_HEADING.match(text)
    if numbered:
        levels = numbered.group(1).count(".") + 1
        if levels > 1 or words <= _MAX_SINGLE_NUMBER_HEADING_WORDS:
            return _Heading(levels, text)
    if element.category not in _HEADING_CATEGORIES:
        return None
    if element.depth is not None:
        return _Heading(int(element.depth) + 1, text)
    # No level given (PDF titles are often captions, cross-references, file names or list
    # terms): only text that reads like a title counts, nested under the deepest real
    # heading, so it never evicts a numbered section from the trail.
    first = text[:1]
    if file_type == "pdf" and (first.islower() or first.isdigit() or _CODE_CHARACTERS.search(text)):
        return None
    anchored = [h.level for h in trail if not h.floating]
    return _Heading((max(anchored) if anchored else 0) + 1, text, floating=True)


def document_title(elements: Sequence[ParsedElement], file_type: str, fallback: str) -> str:
    """The first heading (an e-mail's subject), else the file name."""
    for element in elements[:50]:
        if _as_heading(element, [], file_type) is not None:
            return _one_line(element.text)[:200]
    return fallback
