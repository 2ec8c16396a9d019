"""The REST API (/api): documents, uploads, search, ask (server-sent events), collections,
feedback, and users/teams for administrators. Every route goes through the Workspace, which
checks and audits; this module only translates HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from rag.answering import Delta
from rag.errors import CitadelError
from rag.types import DocumentRecord, Message, SearchFilter
from ui.accounts import Caller
from ui.administration import Administration
from ui.incoming import receive_files
from ui.render import answer_json, retrieval_json
from ui.server import CallerDep, client_of, file_response
from ui.uploads import MAX_FILES_PER_UPLOAD, printable
from ui.workspace import MAX_QUESTION_CHARS, Answered, Forbidden, Workspace

# The upload's body as the API docs show it (the route reads the multipart stream itself).
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "One or more documents.",
                        }
                    },
                }
            }
        },
    }
}


class SearchRequest(BaseModel):
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


def document_json(record: DocumentRecord) -> dict[str, Any]:
    # The server-side folder (`root`) is not shown: it tells nothing a reader needs.
    return {
        "id": record.id,
        "collection": record.collection,
        "source": record.source,
        "file_type": record.file_type,
        "title": record.title,
        "pages": record.pages,
        "chunks": record.chunks,
        "size": record.size,
        "sha256": record.sha256,
        "ingested_at": record.ingested_at,
    }


def answered_json(workspace: Workspace, caller: Caller, answered: Answered) -> dict[str, Any]:
    body = answer_json(answered.answer)
    body["id"] = answered.id
    body["collections"] = answered.collections
    for citation, c in zip(body["citations"], answered.answer.citations, strict=True):
        citation["link"] = workspace.file_link(caller, c.passage)
    return body


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def api_router(workspace: Workspace) -> APIRouter:
    router = APIRouter()

    def administration(caller: Caller, request: Request) -> Administration:
        return Administration(workspace.accounts, workspace.audit, caller.name, client_of(request))

    def admin(caller: Caller, what: str) -> None:
        if not caller.admin:
            raise Forbidden(f"only administrators may {what}")

    # -- who am I ------------------------------------------------------------------------
    @router.get("/me", tags=["account"])
    def me(caller: CallerDep) -> dict[str, Any]:
        return {"name": caller.name, "admin": caller.admin, "teams": sorted(caller.teams)}

    @router.get("/keys", tags=["account"])
    def my_keys(caller: CallerDep) -> list[dict[str, object]]:
        return workspace.accounts.keys(caller.name)

    @router.post("/keys", tags=["account"], status_code=201)
    def create_key(body: KeyRequest, caller: CallerDep, request: Request) -> dict[str, str]:
        """A new API key for yourself; shown once."""
        secret = administration(caller, request).create_key(caller.name, body.label)
        return {"key": secret, "prefix": secret[:12]}

    @router.delete("/keys/{prefix}", tags=["account"], status_code=204)
    def revoke_key(prefix: str, caller: CallerDep, request: Request) -> Response:
        administration(caller, request).revoke_key(caller.name, prefix)
        return Response(status_code=204)

    # -- collections ---------------------------------------------------------------------
    @router.get("/collections", tags=["collections"])
    def collections(caller: CallerDep) -> list[dict[str, Any]]:
        return [c.to_json() for c in workspace.collections(caller)]

    @router.post("/collections", tags=["collections"], status_code=201)
    def create_collection(body: CollectionRequest, caller: CallerDep) -> dict[str, Any]:
        workspace.create_collection(caller, body.name, body.team)
        return {"name": body.name, "team": body.team}

    @router.put("/collections/{collection}/starters", tags=["collections"])
    def set_starters(collection: str, body: StartersRequest, caller: CallerDep) -> list[str]:
        return workspace.set_starters(caller, collection, body.questions)

    @router.get("/collections/{collection}/starters", tags=["collections"])
    def starters(collection: str, caller: CallerDep) -> list[str]:
        return workspace.starters(caller, collection)

    @router.get("/collections/{collection}/documents", tags=["documents"])
    def documents(
        collection: str,
        caller: CallerDep,
        q: Annotated[str | None, Query(max_length=200)] = None,
        sort: Literal["source", "ingested_at", "size", "chunks"] = "source",
        descending: bool = False,
    ) -> list[dict[str, Any]]:
        records = workspace.documents(caller, collection)
        if q:
            records = [r for r in records if q.lower() in f"{r.source} {r.title}".lower()]
        records.sort(key=lambda r: getattr(r, sort), reverse=descending)
        return [document_json(r) for r in records]

    @router.get("/collections/{collection}/failures", tags=["documents"])
    def failures(collection: str, caller: CallerDep) -> list[dict[str, str]]:
        return workspace.failures(caller, collection)

    @router.post(
        "/collections/{collection}/documents",
        tags=["documents"],
        status_code=202,
        openapi_extra=_UPLOAD_BODY,
    )
    async def upload(collection: str, caller: CallerDep, request: Request) -> dict[str, Any]:
        """Upload files (multipart field `files`, one or more); each is checked (size, type
        by content, name) and ingested in the background. Poll `/api/jobs/{id}` for
        per-file progress."""
        # The body is read only now, once the caller, the collection and their upload
        # allowance are known (404 and 429 before a byte is written).
        await run_in_threadpool(workspace.admit_upload, caller, collection)
        server = workspace.settings.server
        received = await receive_files(
            request.headers.get("content-type", ""),
            request.stream(),
            workspace.settings.uploads_path / ".incoming",
            int(server.max_upload_mb * 2**20),
            MAX_FILES_PER_UPLOAD,
        )
        staged = [(r.name, r.path) for r in received if r.path is not None]
        try:
            result = await run_in_threadpool(
                workspace.upload, caller, collection, staged, client_of(request)
            )
        finally:
            for _, temp in staged:
                temp.unlink(missing_ok=True)
        refused = [(printable(r.name), r.reason) for r in received if r.path is None]
        return {
            "job": result.job.to_json() if result.job else None,
            "rejected": [{"name": n, "reason": r} for n, r in refused + result.rejected],
        }

    @router.get("/jobs/{job_id}", tags=["documents"])
    def job(job_id: str, caller: CallerDep) -> dict[str, Any]:
        return workspace.job(caller, job_id).to_json()

    @router.get("/documents/{document_id}", tags=["documents"])
    def document(document_id: str, caller: CallerDep) -> dict[str, Any]:
        return document_json(workspace.document(caller, document_id))

    @router.get("/documents/{document_id}/file", tags=["documents"])
    def document_file(document_id: str, caller: CallerDep, request: Request) -> Response:
        path, record = workspace.file(caller, document_id, client_of(request))
        return file_response(path, record.file_type, record.source)

    @router.delete("/documents/{document_id}", tags=["documents"])
    def delete_document(document_id: str, caller: CallerDep, request: Request) -> dict[str, int]:
        return {
            "chunks_removed": workspace.delete_document(caller, document_id, client_of(request))
        }

    @router.post("/documents/{document_id}/reingest", tags=["documents"], status_code=202)
    def reingest(document_id: str, caller: CallerDep, request: Request) -> dict[str, Any]:
        return workspace.reingest(caller, document_id, client_of(request)).to_json()

    # -- questions -----------------------------------------------------------------------
    @router.post("/search", tags=["questions"])
    def search(body: SearchRequest, caller: CallerDep, request: Request) -> dict[str, Any]:
        result = workspace.search(
            caller,
            body.question,
            body.collections,
            body.search_filter(),
            body.top_k,
            client_of(request),
        )
        return retrieval_json(result)

    @router.post(
        "/ask",
        tags=["questions"],
        response_model=None,
        responses={
            200: {
                "description": "The answer (JSON), or with `stream: true` server-sent events: "
                "`delta` ({text}) while the model writes, then `answer` (the checked answer, "
                "as the JSON response), or `error` ({detail}) if it fails mid-way.",
                "content": {"application/json": {}, "text/event-stream": {}},
            }
        },
    )
    def ask(body: AskRequest, caller: CallerDep, request: Request) -> Response:
        """An answer with citations. With `stream: true`, server-sent events: `delta`
        ({"text"}) as the model writes, then `answer` (the checked answer, the one to show)."""
        history = [Message(t.role, t.content) for t in body.history]
        events = workspace.ask(
            caller,
            body.question,
            body.collections,
            history,
            body.search_filter(),
            client_of(request),
        )
        if not body.stream:
            final = next(e for e in events if isinstance(e, Answered))
            return JSONResponse(answered_json(workspace, caller, final))

        def stream() -> Iterator[str]:
            try:
                for event in events:
                    if isinstance(event, Delta):
                        yield sse("delta", {"text": event.text})
                    else:
                        yield sse("answer", answered_json(workspace, caller, event))
            except CitadelError as exc:  # after the 200: the client reads it as an event
                yield sse("error", {"detail": str(exc)})

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # -- feedback ------------------------------------------------------------------------
    @router.post("/feedback", tags=["feedback"], status_code=201)
    def feedback(body: FeedbackRequest, caller: CallerDep, request: Request) -> dict[str, int]:
        entry = workspace.add_feedback(
            caller, body.answer_id, body.rating, body.comment, client_of(request)
        )
        return {"id": entry}

    @router.get("/feedback", tags=["feedback"])
    def feedback_list(caller: CallerDep) -> list[dict[str, Any]]:
        admin(caller, "read feedback")
        return [e.to_json() for e in workspace.feedback.entries()]

    @router.get("/feedback/export", tags=["feedback"])
    def feedback_export(caller: CallerDep) -> Response:
        """Approved answers as a question set (JSONL) for `citadel eval`."""
        lines = [json.dumps(item, ensure_ascii=False) for item in workspace.export_feedback(caller)]
        return Response(
            "\n".join(lines) + ("\n" if lines else ""),
            media_type="application/x-ndjson",
            headers={"Content-Disposition": 'attachment; filename="citadel-feedback-qa.jsonl"'},
        )

    # -- administration ------------------------------------------------------------------
    @router.get("/audit", tags=["admin"])
    def audit(
        caller: CallerDep,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
        actor: str | None = None,
        action: str | None = None,
        since: str | None = None,
    ) -> list[dict[str, Any]]:
        admin(caller, "read the audit log")
        return [e.to_json() for e in workspace.audit.entries(limit, actor, action, since)]

    @router.get("/users", tags=["admin"])
    def users(caller: CallerDep) -> list[dict[str, Any]]:
        admin(caller, "list users")
        return [
            {"name": u.name, "role": u.role, "teams": list(u.teams), "disabled": u.disabled}
            for u in workspace.accounts.users()
        ]

    @router.post("/users", tags=["admin"], status_code=201)
    def add_user(body: UserRequest, caller: CallerDep, request: Request) -> dict[str, Any]:
        admin(caller, "add users")
        administration(caller, request).add_user(body.name, body.password, body.role, body.teams)
        return {"name": body.name, "role": body.role, "teams": body.teams}

    @router.delete("/users/{name}", tags=["admin"], status_code=204)
    def remove_user(name: str, caller: CallerDep, request: Request) -> Response:
        admin(caller, "remove users")
        administration(caller, request).remove_user(name)
        return Response(status_code=204)

    @router.get("/teams", tags=["admin"])
    def teams(caller: CallerDep) -> dict[str, list[str]]:
        admin(caller, "list teams")
        return workspace.accounts.teams()

    @router.post("/teams", tags=["admin"], status_code=201)
    def add_team(body: TeamRequest, caller: CallerDep, request: Request) -> dict[str, str]:
        admin(caller, "add teams")
        administration(caller, request).add_team(body.name)
        return {"name": body.name}

    @router.put("/teams/{team}/members/{user}", tags=["admin"], status_code=204)
    def add_member(team: str, user: str, caller: CallerDep, request: Request) -> Response:
        admin(caller, "change teams")
        administration(caller, request).set_member(team, user)
        return Response(status_code=204)

    @router.delete("/teams/{team}/members/{user}", tags=["admin"], status_code=204)
    def remove_member(team: str, user: str, caller: CallerDep, request: Request) -> Response:
        admin(caller, "change teams")
        administration(caller, request).set_member(team, user, member=False)
        return Response(status_code=204)

    return router
