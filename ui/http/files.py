"""Sending a document's original file: through a signed link (/files, what the web UI's
citations open) or the REST API. Files are shown by the browser only when it cannot run
them: a PDF inline, anything else (HTML uploaded by someone!) as a download, in a sandbox."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse

from ui.http.deps import client_of, key_caller, session_caller
from ui.service.workspace import Workspace

_INLINE_TYPES = {"pdf": "application/pdf", "txt": "text/plain; charset=utf-8"}


def file_response(path: Path, file_type: str, source: str) -> FileResponse:
    media = _INLINE_TYPES.get(file_type)
    name = source.rsplit("/", 1)[-1]
    response = FileResponse(
        path,
        media_type=media or "application/octet-stream",
        filename=name,
        content_disposition_type="inline" if media else "attachment",
    )
    # Browsers refuse to run their PDF viewer in a sandboxed document; a PDF cannot run
    # script in it anyway. Everything else downloads, and is sandboxed should it render.
    if media != "application/pdf":
        response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response.headers["Cache-Control"] = "private, no-store"
    return response


def files_router(workspace: Workspace) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/files/{document_id}", tags=["files"])
    def open_file(document_id: str, u: str, e: str, s: str, request: Request) -> Response:
        """A cited file, through the signed link the UI shows to one user: opened by that
        user's browser session (or API key) only."""
        viewer = session_caller(workspace, request) or key_caller(workspace, request)
        path, record = workspace.open_link(document_id, u, e, s, viewer, client_of(request))
        return file_response(path, record.file_type, record.source)

    return router
