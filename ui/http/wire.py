"""The REST API's JSON, as pydantic models: what the routes send and accept, and what the
command line's client of a running server reads back (ui/cli/remote.py). One shape per
thing, written once; the OpenAPI schema at /api/docs is generated from these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from rag.types import Answer, Citation, DocumentRecord, Passage, SearchFilter
from ui.service.limits import MAX_QUESTION_CHARS

if TYPE_CHECKING:  # the command line reads these shapes without loading the server
    from rag.retrieval import Retrieval
    from ui.metadata.accounts import UserInfo
    from ui.service.workspace import CollectionView

# -- requests ------------------------------------------------------------------------------


class SearchRequest(BaseModel):
    # A bound on the request body; the question's own limit (retrieval.max_query_chars) is
    # checked once, by the service.
    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    collections: list[str] | None = Field(
        None, max_length=50, description="Collections to search; all of yours when omitted."
    )
    top_k: int | None = Field(None, ge=1, le=50)
    file_types: list[str] = Field(default_factory=list, max_length=20)
    path: str | None = Field(None, max_length=500, description="Only documents under this folder.")

    def search_filter(self) -> SearchFilter | None:
        if not self.file_types and not self.path:
            return None
        return SearchFilter(
            file_types=tuple(t.lower().lstrip(".") for t in self.file_types),
            source_prefix=self.path.strip("/") if self.path else None,
        )

    @staticmethod
    def filter_fields(search_filter: SearchFilter | None) -> dict[str, Any]:
        """The request fields that carry `search_filter` (the client's side)."""
        if search_filter is None:
            return {}
        return {"file_types": list(search_filter.file_types), "path": search_filter.source_prefix}


class Turn(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=20_000)


class AskRequest(SearchRequest):
    history: list[Turn] = Field(default_factory=list, max_length=50)
    stream: bool = Field(False, description="Server-sent events: `delta` events, then `answer`.")


class FeedbackRequest(BaseModel):
    answer_id: str = Field(min_length=1, max_length=64)
    rating: Literal[1, -1]
    comment: str = Field("", max_length=2000)


class CollectionRequest(BaseModel):
    name: str = Field(min_length=1, max_length=63)
    team: str | None = Field(None, description="Owning team; unset: administrators only.")


class FolderRequest(BaseModel):
    collection: str = Field(min_length=1, max_length=63)
    path: str = Field(
        min_length=1, max_length=4096, description="Absolute path of a folder on the server."
    )


class SyncRequest(BaseModel):
    collection: str | None = Field(
        None, max_length=63, description="Sync this collection's folders (unset: all yours)."
    )
    source: str | None = Field(
        None, max_length=4096, description="Sync only this folder (its id or path)."
    )


class StartersRequest(BaseModel):
    questions: list[str] = Field(max_length=8)


class UserRequest(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    role: Literal["admin", "member"] = "member"
    teams: list[str] = Field(default_factory=list)


class TeamRequest(BaseModel):
    name: str = Field(min_length=1, max_length=64)


class KeyRequest(BaseModel):
    label: str = Field("", max_length=100)


# -- responses -----------------------------------------------------------------------------


class PassageOut(BaseModel):
    rank: int
    chunk_id: str
    chunk: int = Field(description="The passage's position in its document, from 0.")
    score: float
    dense_score: float | None
    collection: str
    document_id: str
    source: str
    file_type: str
    title: str
    location: str
    pages: list[int]
    page: int | None = Field(
        default=None,
        description="PDFs: the page to open, that of the sentence the passage is cited for "
        "(a passage may run onto a second page); otherwise the first of `pages`.",
    )
    slide: int | None
    sheet: str | None
    headings: list[str]
    text: str
    ocr: bool = Field(
        default=False,
        description="The text was read by OCR from a scanned page or an image (it may hold "
        "misread words); `page` is still the scanned page's number.",
    )

    @classmethod
    def of(cls, p: Passage, rank: int) -> PassageOut:
        return cls(
            rank=rank,
            chunk_id=p.chunk_id,
            chunk=p.number,
            score=round(p.score, 6),
            dense_score=None if p.dense_score is None else round(p.dense_score, 6),
            collection=p.collection,
            document_id=p.document_id,
            source=p.source,
            file_type=p.file_type,
            title=p.title,
            location=p.location,
            pages=list(p.pages),
            page=p.page,
            slide=p.slide,
            sheet=p.sheet,
            headings=list(p.headings),
            text=p.text,
            ocr=p.ocr,
        )

    def passage(self) -> Passage:
        return Passage(
            chunk_id=self.chunk_id,
            collection=self.collection,
            document_id=self.document_id,
            source=self.source,
            file_type=self.file_type,
            title=self.title,
            headings=tuple(self.headings),
            pages=tuple(self.pages),
            # Its sentence's page is kept only where it says more than the first page.
            sentence_page=self.page if len(set(self.pages)) > 1 else None,
            number=self.chunk,
            text=self.text,
            score=self.score,
            dense_score=self.dense_score,
            slide=self.slide,
            sheet=self.sheet,
            ocr=self.ocr,
        )


class CitationOut(PassageOut):
    n: int = Field(description="The [n] marker in the answer text.")
    snippet: str
    aligned: bool = Field(description="The marker was placed by Citadel, not by the model.")
    link: str | None = Field(None, description="A signed link that opens the cited file.")

    @classmethod
    def cited(cls, c: Citation, link: str | None = None) -> CitationOut:
        passage = PassageOut.of(c.passage, c.number).model_dump()
        return cls(**passage, n=c.number, snippet=c.snippet, aligned=c.aligned, link=link)

    def citation(self) -> Citation:
        return Citation(self.n, self.passage(), self.snippet, self.aligned)


class RetrievalOut(BaseModel):
    question: str
    evidence: float
    weak_evidence: bool
    absent_names: list[str]  # named in the question, mentioned in no searched document
    latency_ms: float
    passages: list[PassageOut]

    @classmethod
    def of(cls, r: Retrieval) -> RetrievalOut:
        return cls(
            question=r.question,
            evidence=round(r.evidence.score, 6),
            weak_evidence=r.weak_evidence,
            absent_names=list(r.evidence.absent_names),
            latency_ms=round(r.latency_ms, 2),
            passages=[PassageOut.of(p, i) for i, p in enumerate(r.passages, start=1)],
        )


class AnswerOut(BaseModel):
    question: str
    standalone_question: str
    answer: str
    refused: bool
    search_mode: bool
    notice: str | None
    incomplete: bool
    truncated: bool
    dropped_passages: int
    unsupported: list[str]
    evidence: float
    model: str | None
    num_ctx: int | None
    prompt_tokens: int | None
    retrieval_ms: float
    thinking: str = Field("", description="A reasoning model's reasoning, apart from the answer.")
    output_tokens: int | None = None
    first_token_s: float | None = Field(None, description="From the request to the first token.")
    generation_s: float | None = Field(None, description="From the request to the last token.")
    absent_names: list[str] = Field(
        [], description="Refused because the question names these and no document mentions them."
    )
    citations: list[CitationOut]
    passages: list[PassageOut]
    # Set when the answer comes from the server: the id feedback refers to, and what it read.
    id: str | None = None
    collections: list[str] | None = None

    @classmethod
    def of(
        cls,
        a: Answer,
        links: list[str] | None = None,
        answer_id: str | None = None,
        collections: list[str] | None = None,
    ) -> AnswerOut:
        return cls(
            question=a.question,
            standalone_question=a.standalone_question,
            answer=a.text,
            refused=a.refused,
            search_mode=a.search_mode,
            notice=a.notice,
            incomplete=a.incomplete,
            truncated=a.truncated,
            dropped_passages=a.dropped_passages,
            unsupported=a.unsupported,
            evidence=round(a.evidence, 6),
            model=a.model,
            num_ctx=a.num_ctx,
            prompt_tokens=a.prompt_tokens,
            retrieval_ms=round(a.retrieval_ms, 2),
            thinking=a.thinking,
            output_tokens=a.output_tokens,
            first_token_s=None if a.first_token_s is None else round(a.first_token_s, 3),
            generation_s=None if a.generation_s is None else round(a.generation_s, 3),
            absent_names=list(a.absent_names),
            citations=[
                CitationOut.cited(c, links[i] if links else None) for i, c in enumerate(a.citations)
            ],
            passages=[PassageOut.of(p, i) for i, p in enumerate(a.passages, start=1)],
            id=answer_id,
            collections=collections,
        )

    def json_body(self) -> dict[str, Any]:
        """The JSON sent: the server's fields only when set (the CLI prints local answers
        with the same model)."""
        body = self.model_dump(exclude={"id", "collections"} if self.id is None else set())
        for citation in body["citations"]:
            if citation["link"] is None:
                del citation["link"]
        return body

    def to_answer(self) -> Answer:
        return Answer(
            question=self.question,
            standalone_question=self.standalone_question,
            text=self.answer,
            citations=[c.citation() for c in self.citations],
            passages=[p.passage() for p in self.passages],
            refused=self.refused,
            search_mode=self.search_mode,
            notice=self.notice,
            dropped_passages=self.dropped_passages,
            truncated=self.truncated,
            incomplete=self.incomplete,
            unsupported=self.unsupported,
            evidence=self.evidence,
            model=self.model,
            num_ctx=self.num_ctx,
            prompt_tokens=self.prompt_tokens,
            retrieval_ms=self.retrieval_ms,
            thinking=self.thinking,
            output_tokens=self.output_tokens,
            first_token_s=self.first_token_s,
            generation_s=self.generation_s,
            absent_names=tuple(self.absent_names),
        )


class DocumentOut(BaseModel):
    # The server-side folder (`root`) is not shown: it tells nothing a reader needs.
    id: str
    collection: str
    source: str
    file_type: str
    title: str
    pages: int
    chunks: int
    size: int
    sha256: str
    ingested_at: str

    @classmethod
    def of(cls, r: DocumentRecord) -> DocumentOut:
        return cls(
            id=r.id,
            collection=r.collection,
            source=r.source,
            file_type=r.file_type,
            title=r.title,
            pages=r.pages,
            chunks=r.chunks,
            size=r.size,
            sha256=r.sha256,
            ingested_at=r.ingested_at,
        )


class CollectionOut(BaseModel):
    name: str
    team: str | None
    documents: int
    chunks: int
    starters: list[str]

    @classmethod
    def of(cls, c: CollectionView) -> CollectionOut:
        return cls(
            name=c.name, team=c.team, documents=c.documents, chunks=c.chunks, starters=c.starters
        )


class UserOut(BaseModel):
    name: str
    role: str
    teams: list[str]
    disabled: bool
    source: str  # local, oidc or ldap: single sign-on sets the role and teams at each login

    @classmethod
    def of(cls, u: UserInfo) -> UserOut:
        return cls(
            name=u.name, role=u.role, teams=list(u.teams), disabled=u.disabled, source=u.source
        )
