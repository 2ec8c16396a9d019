"""The vocabulary: plain data passed between the stages, across the ports, and to the front
ends (documents, chunks, passages, citations, answers)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from rag.ids import chunk_id


@dataclass(frozen=True)
class SparseVector:
    """Term weights: indices are hashed terms, values their BM25 term-frequency weight."""

    indices: list[int]
    values: list[float]


@dataclass(frozen=True)
class Chunk:
    """One passage of a document, as stored and as cited."""

    id: str
    document_id: str
    collection: str
    source: str  # path relative to the ingested folder, with forward slashes
    file_type: str
    title: str
    headings: tuple[str, ...]  # the section trail, outermost first
    pages: tuple[int, ...]  # PDF pages the passage spans (empty for other formats)
    number: int  # position in the document, from 0
    text: str  # what is shown and cited
    embed_text: str  # what the embedder sees: title and section trail, then the text
    sha256: str
    ingested_at: str
    slide: int | None = None
    sheet: str | None = None
    page_starts: tuple[tuple[int, int], ...] = ()  # see Passage.page_starts
    ocr: bool = False  # see Passage.ocr

    def payload(self) -> dict[str, Any]:
        starts = {"page_starts": [list(s) for s in self.page_starts]} if self.page_starts else {}
        ocr = {"ocr": True} if self.ocr else {}
        return {
            "kind": "chunk",
            "document_id": self.document_id,
            "collection": self.collection,
            "source": self.source,
            "file_type": self.file_type,
            "title": self.title,
            "headings": list(self.headings),
            "pages": list(self.pages),
            "slide": self.slide,
            "sheet": self.sheet,
            "chunk": self.number,
            "text": self.text,
            "sha256": self.sha256,
            "ingested_at": self.ingested_at,
            **starts,  # only on chunks that span pages: most payloads stay as they were
            **ocr,  # only on chunks read by OCR, likewise
        }


@dataclass(frozen=True)
class DocumentRecord:
    """What is indexed for one file; stored last, so its presence means 'complete'."""

    id: str
    collection: str
    source: str
    file_type: str
    title: str
    pages: int  # PDF pages, slides or sheets; 0 when the format has none
    chunks: int
    sha256: str
    size: int
    ingested_at: str
    root: str  # absolute folder it was ingested from
    chunking: int = 1  # version of the chunking rules its chunks were made with
    sparse: int = 1  # version of the sparse (BM25) encoding of its chunks

    def payload(self) -> dict[str, Any]:
        return {
            "kind": "document",
            "document_id": self.id,
            "collection": self.collection,
            "source": self.source,
            "file_type": self.file_type,
            "title": self.title,
            "pages": self.pages,
            "chunks": self.chunks,
            "sha256": self.sha256,
            "size": self.size,
            "ingested_at": self.ingested_at,
            "root": self.root,
            "chunking": self.chunking,
            "sparse": self.sparse,
        }

    def chunk(
        self,
        number: int,
        text: str,
        embed_text: str,
        headings: tuple[str, ...] = (),
        pages: tuple[int, ...] = (),
        slide: int | None = None,
        sheet: str | None = None,
        page_starts: tuple[tuple[int, int], ...] = (),
        ocr: bool = False,
    ) -> Chunk:
        """A passage of this document: its identity fields come from the record, never
        retyped, so a chunk always agrees with the document it belongs to."""
        return Chunk(
            id=chunk_id(self.id, number),
            document_id=self.id,
            collection=self.collection,
            source=self.source,
            file_type=self.file_type,
            title=self.title,
            headings=headings,
            pages=pages,
            number=number,
            text=text,
            embed_text=embed_text,
            sha256=self.sha256,
            ingested_at=self.ingested_at,
            slide=slide,
            sheet=sheet,
            page_starts=page_starts,
            ocr=ocr,
        )

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> DocumentRecord:
        return cls(
            id=payload["document_id"],
            collection=payload["collection"],
            source=payload["source"],
            file_type=payload["file_type"],
            title=payload["title"],
            pages=int(payload["pages"]),
            chunks=int(payload["chunks"]),
            sha256=payload["sha256"],
            size=int(payload["size"]),
            ingested_at=payload["ingested_at"],
            root=payload["root"],
            chunking=int(payload.get("chunking", 1)),
            sparse=int(payload.get("sparse", 1)),
        )


@dataclass(frozen=True)
class CollectionSpec:
    """What a collection was built with; mixing embedding models would return garbage.

    `backend`: what ran the model for the first ingestion ("torch", "onnx-int8"), recorded
    for the record only: the backends give the same model's vectors (int8 within rounding,
    cosine > 0.99), so a collection is searched and extended by either."""

    embedding_model: str
    dimension: int
    backend: str = ""


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    spec: CollectionSpec
    documents: int
    chunks: int


@dataclass(frozen=True)
class SearchFilter:
    """Restrictions every retrieval honours; `collections` is never empty."""

    document_ids: tuple[str, ...] = ()
    file_types: tuple[str, ...] = ()
    source_prefix: str | None = None


@dataclass(frozen=True)
class SearchHit:
    id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)


# How every front end marks a passage read by OCR.
OCR_NOTE = "scanned page, text read by OCR"


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk as the answer uses and cites it."""

    chunk_id: str
    collection: str
    document_id: str
    source: str
    file_type: str
    title: str
    headings: tuple[str, ...]
    pages: tuple[int, ...]
    number: int
    text: str
    score: float  # fused (or reranked) relevance, higher is better
    dense_score: float | None = (
        None  # cosine similarity to the question, if the dense search found it
    )
    slide: int | None = None
    sheet: str | None = None
    before: str = ""  # neighbouring chunks of the same document, given to the model as context
    after: str = ""
    # A passage on more than one PDF page: (character offset in `text`, page) where each page
    # starts. Empty on one page, and in collections indexed before sentences kept their page.
    page_starts: tuple[tuple[int, int], ...] = ()
    # The page of the sentence the passage is cited or shown for (`at`); None: its first page.
    sentence_page: int | None = None
    # Its text was read by OCR from a scanned page or an image: it may hold misread words,
    # and the reader is told so wherever it is cited.
    ocr: bool = False

    @classmethod
    def from_hit(cls, hit: SearchHit, score: float, dense_score: float | None = None) -> Passage:
        p = hit.payload
        return cls(
            chunk_id=hit.id,
            collection=p["collection"],
            document_id=p["document_id"],
            source=p["source"],
            file_type=p["file_type"],
            title=p.get("title") or "",
            headings=tuple(p.get("headings") or ()),
            pages=tuple(p.get("pages") or ()),
            number=int(p["chunk"]),
            text=p["text"],
            score=score,
            dense_score=dense_score,
            slide=p.get("slide"),
            sheet=p.get("sheet"),
            page_starts=tuple((int(at), int(page)) for at, page in p.get("page_starts") or ()),
            ocr=bool(p.get("ocr", False)),
        )

    @property
    def page(self) -> int | None:
        """The PDF page to cite and open: its sentence's, else the passage's first."""
        if self.sentence_page is not None:
            return self.sentence_page
        return self.pages[0] if self.pages else None

    def page_at(self, offset: int) -> int | None:
        """The PDF page of the character at `offset` in `text`."""
        page = self.pages[0] if self.pages else None
        for at, starts in self.page_starts:
            if at > offset:
                break
            page = starts
        return page

    def at(self, sentence: str) -> Passage:
        """The passage cited for one of its sentences: its page is that sentence's (where the
        sentence starts). A sentence not found in the text leaves the passage's first page."""
        if not self.page_starts or not sentence.strip():
            return self
        start = _find_sentence(self.text, sentence)
        return self if start is None else replace(self, sentence_page=self.page_at(start))

    @property
    def location(self) -> str:
        """Where in the document: 'page 4', 'pages 4-5', 'slide 3', 'sheet X', or the section;
        the page of its sentence when it is cited for one."""
        if self.sentence_page is not None:
            return f"page {self.sentence_page}"
        if self.pages:
            first, last = self.pages[0], self.pages[-1]
            return f"page {first}" if first == last else f"pages {first}-{last}"
        if self.slide is not None:
            return f"slide {self.slide}"
        if self.sheet:
            return f"sheet {self.sheet}"
        return " > ".join(self.headings)

    @property
    def where(self) -> str:
        """The document and the place in it, as every front end names a source:
        'handbook.md, Leave' or 'policy.pdf, page 2' (untrusted text: escape it to show it);
        'scan.pdf, page 2 (scanned page, text read by OCR)' for a scan."""
        where = f"{self.source}, {self.location}" if self.location else self.source
        return f"{where} ({OCR_NOTE})" if self.ocr else where


def _find_sentence(text: str, sentence: str) -> int | None:
    """Where `sentence` starts in `text`, whatever the whitespace between its words (a
    snippet shortened with "…" is found by what it kept)."""
    words = sentence.removesuffix("…").split()
    if not words:
        return None
    match = re.search(r"\s+".join(re.escape(w) for w in words), text)
    return match.start() if match else None


@dataclass(frozen=True)
class Question:
    """A question that passed `Retriever.check_question`: whitespace collapsed, not empty,
    within the length limit. Made once where a question enters; trusted after that."""

    text: str


@dataclass(frozen=True)
class AnswerOptions:
    """What an asker may choose about one answer, never about its grounding: `style`, the
    asker's wish for the answer's form (one sentence, a list, a language...), goes into
    the question's own block, with no more authority than the question; `max_tokens`
    caps the answer below the server's llm.max_answer_tokens."""

    style: str | None = None
    max_tokens: int | None = None

    def answer_tokens(self, server_cap: int) -> int:
        return min(self.max_tokens, server_cap) if self.max_tokens else server_cap


@dataclass(frozen=True)
class Message:
    """One turn of a conversation with the model."""

    role: str  # system, user or assistant
    content: str


@dataclass(frozen=True)
class Usage:
    """Reported by the model server once an answer is complete."""

    prompt_tokens: int | None
    output_tokens: int | None
    done_reason: str | None  # "stop", or "length" when the answer hit its token limit
    prompt_seconds: float | None = None  # the server's time reading the prompt
    output_seconds: float | None = None  # ... and writing the answer (reasoning included)
    num_ctx: int | None = None  # the context the server used, when it says


@dataclass(frozen=True)
class Thinking:
    """A piece of a reasoning model's reasoning, as it writes it: shown apart, never part of
    the answer, its citations, the audit log or what an API returns as the content."""

    text: str


@dataclass(frozen=True)
class Citation:
    """A source an answer cites: `[number]` in the answer text is `passages[number - 1]` of
    the prompt."""

    number: int
    passage: Passage
    snippet: str  # the passage's sentence that best supports what cites it
    aligned: bool  # the marker was placed by Citadel, not written by the model


@dataclass(frozen=True)
class Delta:
    """A piece of answer text, as the model writes it."""

    text: str


@dataclass(frozen=True)
class Answer:
    question: str
    standalone_question: str  # the follow-up rewritten with the history (or the question)
    text: str
    citations: list[Citation]
    passages: list[Passage]  # given to the model, or shown (search mode, refusal)
    refused: bool = False
    search_mode: bool = False
    notice: str | None = None  # one line for the user: why search mode, refusal, truncation
    dropped_passages: int = 0  # retrieved but left out to fit the model's context
    truncated: bool = False  # the server reports a full context: part of the prompt was cut
    incomplete: bool = False  # the stream stopped early (timeout, dropped connection)
    unsupported: list[str] = field(default_factory=list)  # sentences no passage supports
    evidence: float = 0.0
    model: str | None = None
    num_ctx: int | None = None
    prompt_tokens: int | None = None
    retrieval_ms: float = 0.0
    thinking: str = ""  # the model's reasoning, kept apart from the answer (never cited)
    output_tokens: int | None = None  # written by the model, reasoning included
    first_token_s: float | None = None  # from the request to the model's first token
    generation_s: float | None = None  # from the request to the model's last token
    # Refused because the question names these and no searched document mentions them.
    absent_names: tuple[str, ...] = ()


AnswerEvent = Delta | Thinking | Answer
