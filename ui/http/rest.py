"""The REST API (/api): documents, uploads, search, ask (server-sent events), collections,
feedback, and users/teams for administrators. Every route goes through the Workspace, which
checks and audits; this module only translates HTTP (shapes: ui/http/wire.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from rag.errors import CitadelError
from rag.text import escape_invisible
from rag.types import Delta, Message, Thinking
from ui.http.answer_threads import AnswerThreads, ClosingStreamingResponse, final_answer
from ui.http.deps import CallerDep, client_of
from ui.http.files import file_response
from ui.http.incoming import receive_files
from ui.http.wire import (
    AnswerOut,
    AskRequest,
    CollectionOut,
    CollectionRequest,
    DocumentOut,
    FeedbackRequest,
    FolderRequest,
    KeyRequest,
    RetrievalOut,
    SearchRequest,
    StartersRequest,
    SyncRequest,
    TeamRequest,
    UserOut,
    UserRequest,
)
from ui.metadata.accounts import Caller
from ui.service.answer_slots import Ticket, places_in_line
from ui.service.library import SortField
from ui.service.limits import files_per_upload
from ui.service.workspace import Answered, Workspace

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


def answered_out(workspace: Workspace, caller: Caller, answered: Answered) -> AnswerOut:
    """The answer as the APIs send it: with its id, and a file link for each citation."""
    answer = answered.answer
    links = [workspace.file_link(caller, c.passage) for c in answer.citations]
    return AnswerOut.of(answer, links, answered.id, answered.collections)


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def api_router(workspace: Workspace, threads: AnswerThreads) -> APIRouter:
    """`threads`: where answers' blocking work runs, apart from the pool other routes share."""
    router = APIRouter()

    # -- who am I ------------------------------------------------------------------------
    @router.get("/me", tags=["account"])
    def me(caller: CallerDep) -> dict[str, Any]:
        return {"name": caller.name, "admin": caller.admin, "teams": sorted(caller.teams)}

    @router.get("/keys", tags=["account"])
    def my_keys(caller: CallerDep) -> list[dict[str, object]]:
        return workspace.own_keys(caller)

    @router.post("/keys", tags=["account"], status_code=201)
    def create_key(body: KeyRequest, caller: CallerDep, request: Request) -> dict[str, str]:
        """A new API key for yourself; shown once."""
        secret = workspace.create_own_key(caller, body.label, client_of(request))
        return {"key": secret, "prefix": secret[:12]}

    @router.delete("/keys/{prefix}", tags=["account"], status_code=204)
    def revoke_key(prefix: str, caller: CallerDep, request: Request) -> Response:
        workspace.revoke_own_key(caller, prefix, client_of(request))
        return Response(status_code=204)

    # -- collections ---------------------------------------------------------------------
    @router.get("/collections", tags=["collections"])
    def collections(caller: CallerDep) -> list[CollectionOut]:
        return [CollectionOut.of(c) for c in workspace.collections(caller)]

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
        sort: SortField = "source",
        descending: bool = False,
    ) -> list[DocumentOut]:
        return [
            DocumentOut.of(r) for r in workspace.library(caller, collection, q, sort, descending)
        ]

    @router.get("/collections/{collection}/failures", tags=["documents"])
    def failures(collection: str, caller: CallerDep) -> list[dict[str, str]]:
        return workspace.failures(caller, collection)

    @router.post(
        "/collections/{collection}/failures/{source}/retry", tags=["documents"], status_code=202
    )
    def retry(collection: str, source: str, caller: CallerDep, request: Request) -> dict[str, Any]:
        """Ingest again an uploaded file listed among the failures (once its cause is fixed,
        or when it was passing), from the original Citadel kept. Poll the job it returns."""
        return workspace.retry(caller, collection, source, client_of(request)).to_json()

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
        received = await receive_files(
            request.headers.get("content-type", ""),
            request.stream(),
            workspace.ingestion.incoming,
            int(workspace.settings.server.max_upload_mb * 2**20),
            files_per_upload(workspace.settings.server.uploads_per_minute),
        )
        staged = [(r.name, r.path) for r in received if r.path is not None]
        result = await run_in_threadpool(
            workspace.upload, caller, collection, staged, client_of(request)
        )
        refused = [(escape_invisible(r.name), r.reason) for r in received if r.path is None]
        return {
            "job": result.job.to_json() if result.job else None,
            "rejected": [{"name": n, "reason": r} for n, r in refused + result.rejected],
        }

    @router.get("/jobs/{job_id}", tags=["documents"])
    def job(job_id: str, caller: CallerDep) -> dict[str, Any]:
        return workspace.job(caller, job_id).to_json()

    @router.get("/documents/{document_id}", tags=["documents"])
    def document(document_id: str, caller: CallerDep) -> DocumentOut:
        return DocumentOut.of(workspace.document(caller, document_id))

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

    # -- folders kept in sync ------------------------------------------------------------
    @router.get("/sources", tags=["sources"])
    def folder_sources(
        caller: CallerDep, collection: Annotated[str | None, Query(max_length=63)] = None
    ) -> list[dict[str, Any]]:
        """The folders attached to your collections, each with its last sync: when, how
        long, its counts and the files that could not go in (with why)."""
        return [s.to_json() for s in workspace.folder_sources(caller, collection)]

    @router.post("/sources", tags=["sources"], status_code=201)
    def attach_folder(body: FolderRequest, caller: CallerDep, request: Request) -> dict[str, Any]:
        """Attach a folder of the server (a mounted share) to a collection; administrators
        only. It is synced on demand and every `sources.sync_interval_min` minutes."""
        return workspace.attach_folder(
            caller, body.collection, body.path, client_of(request)
        ).to_json()

    @router.delete("/sources", tags=["sources"])
    def detach_folder(
        caller: CallerDep,
        request: Request,
        ref: Annotated[str, Query(min_length=1, max_length=4096)],
        keep_documents: bool = False,
    ) -> dict[str, int]:
        """Detach a folder (`ref`: its id or path); its documents leave the collection
        unless `keep_documents`."""
        removed = workspace.detach_folder(caller, ref, keep_documents, client_of(request))
        return {"documents_removed": removed}

    @router.post("/sources/sync", tags=["sources"], status_code=202)
    def sync_folders(body: SyncRequest, caller: CallerDep, request: Request) -> dict[str, Any]:
        """Sync now: one folder, a collection's, or all of yours. Poll each job at
        `/api/jobs/{id}`; a folder already being synced gives its running job."""
        jobs = workspace.sync_folders(caller, body.collection, body.source, client_of(request))
        return {"jobs": [j.to_json() for j in jobs]}

    # -- questions -----------------------------------------------------------------------
    @router.post("/search", tags=["questions"])
    def search(body: SearchRequest, caller: CallerDep, request: Request) -> RetrievalOut:
        result = workspace.search(
            caller,
            body.question,
            body.collections,
            body.search_filter(),
            body.top_k,
            client_of(request),
        )
        return RetrievalOut.of(result)

    @router.post(
        "/ask",
        tags=["questions"],
        response_model=None,
        responses={
            200: {
                "description": "The answer (JSON), or with `stream: true` server-sent events: "
                "`delta` ({text}) while the model writes, `thinking` ({text}) for a reasoning "
                "model's reasoning (never part of the answer), then `answer` (the checked "
                "answer, as the JSON response), or `error` ({detail}) if it fails mid-way.",
                "content": {"application/json": {}, "text/event-stream": {}},
            }
        },
    )
    async def ask(body: AskRequest, caller: CallerDep, request: Request) -> Response:
        """An answer with citations. With `stream: true`, server-sent events: `queued`
        ({"ahead"}: answers before this one) while it waits for the model, `delta`
        ({"text"}) as the model writes, then `answer` (the checked answer, the one to show)."""
        history = [Message(t.role, t.content) for t in body.history]
        client = client_of(request)

        def asked(ticket: Ticket | None = None) -> Iterator[Delta | Thinking | Answered]:
            return workspace.ask(
                caller,
                body.question,
                body.collections,
                history,
                body.search_filter(),
                client,
                ticket=ticket,
            )

        if not body.stream:
            # asked() itself blocks (the wait in line, the search, the first token): on
            # an answer thread too, never on the event loop.
            final = await threads.run(lambda: final_answer(asked()))
            return JSONResponse(answered_out(workspace, caller, final).json_body())
        # Refused now, with its status, rather than as an event of a 200 stream.
        await threads.run(workspace.check_ask, caller, body.question, body.collections)
        ticket = workspace.admit_answer(caller)

        async def stream() -> AsyncIterator[str]:
            try:
                async with aclosing(threads.iterate(places_in_line(ticket))) as places:
                    async for ahead in places:
                        yield sse("queued", {"ahead": ahead})
                events = await threads.run(asked, ticket)
                async with aclosing(threads.iterate(events)) as written:
                    async for event in written:
                        if isinstance(event, Delta):
                            yield sse("delta", {"text": event.text})
                        elif isinstance(event, Thinking):
                            yield sse("thinking", {"text": event.text})
                        else:
                            out = answered_out(workspace, caller, event).json_body()
                            yield sse("answer", out)
            except CitadelError as exc:  # after the 200: the client reads it as an event
                yield sse("error", {"detail": str(exc)})
            finally:
                ticket.release()

        return ClosingStreamingResponse(
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
        return [e.to_json() for e in workspace.feedback_entries(caller)]

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
        entries = workspace.audit_entries(caller, limit, actor, action, since)
        return [e.to_json() for e in entries]

    @router.get("/users", tags=["admin"])
    def users(caller: CallerDep) -> list[UserOut]:
        return [UserOut.of(u) for u in workspace.users(caller)]

    @router.post("/users", tags=["admin"], status_code=201)
    def add_user(body: UserRequest, caller: CallerDep, request: Request) -> dict[str, Any]:
        admin = workspace.administration(caller, "add users", client_of(request))
        admin.add_user(body.name, body.password, body.role, body.teams)
        return {"name": body.name, "role": body.role, "teams": body.teams}

    @router.delete("/users/{name}", tags=["admin"], status_code=204)
    def remove_user(name: str, caller: CallerDep, request: Request) -> Response:
        workspace.administration(caller, "remove users", client_of(request)).remove_user(name)
        return Response(status_code=204)

    @router.get("/teams", tags=["admin"])
    def teams(caller: CallerDep) -> dict[str, list[str]]:
        return workspace.teams(caller)

    @router.post("/teams", tags=["admin"], status_code=201)
    def add_team(body: TeamRequest, caller: CallerDep, request: Request) -> dict[str, str]:
        workspace.administration(caller, "add teams", client_of(request)).add_team(body.name)
        return {"name": body.name}

    @router.put("/teams/{team}/members/{user}", tags=["admin"], status_code=204)
    def add_member(team: str, user: str, caller: CallerDep, request: Request) -> Response:
        workspace.administration(caller, "change teams", client_of(request)).set_member(team, user)
        return Response(status_code=204)

    @router.delete("/teams/{team}/members/{user}", tags=["admin"], status_code=204)
    def remove_member(team: str, user: str, caller: CallerDep, request: Request) -> Response:
        admin = workspace.administration(caller, "change teams", client_of(request))
        admin.set_member(team, user, member=False)
        return Response(status_code=204)

    return router
