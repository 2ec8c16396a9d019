"""How an error is answered over HTTP: ONE table from Citadel's errors to the REST status
and to OpenAI's error (status, type, code, param), for every route.

The REST API answers `{"detail": message}`; the OpenAI-compatible API answers
`{"error": {"message", "type", "param", "code"}}` (ui/http/openai.py). A refused access
(404, 403) is written to the audit log: probing leaves a trace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fastapi import FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from rag.errors import CitadelError, InvalidQuestion, QuestionTooLong, StoreUnavailable
from ui.http.deps import client_of, key_caller, session_caller, workspace_of
from ui.metadata.errors import LoginLocked, MetadataUnavailable
from ui.service.errors import (
    Forbidden,
    NotFound,
    NothingToSearch,
    RateLimited,
    UploadRejected,
)
from ui.service.limits import RateLimiter
from ui.service.sso import ProviderUnavailable, SsoRefused

MODEL_NOT_FOUND = (
    "The model does not exist or you do not have access to it. "
    "GET /v1/models lists the models you can use."
)


@dataclass(frozen=True)
class HttpError:
    status: int  # the REST API's
    openai_status: int
    openai_type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    openai_message: str | None = None  # instead of the error's own (same for all: no probing)


# First match wins: subclasses before their parents.
TABLE: tuple[tuple[type[CitadelError] | tuple[type[CitadelError], ...], HttpError], ...] = (
    (NotFound, HttpError(404, 404, code="model_not_found", param="model",
                         openai_message=MODEL_NOT_FOUND)),
    ((Forbidden, SsoRefused), HttpError(403, 403, "permission_error", "permission_denied")),
    ((RateLimited, LoginLocked), HttpError(429, 429, "requests", "rate_limit_exceeded")),
    (UploadRejected, HttpError(422, 422)),
    # 400 for OpenAI clients, which retry a 409.
    (NothingToSearch, HttpError(409, 400, code="no_documents", param="model")),
    (QuestionTooLong, HttpError(400, 400, code="context_length_exceeded", param="messages")),
    (InvalidQuestion, HttpError(400, 400, code="invalid_question", param="messages")),
    ((StoreUnavailable, MetadataUnavailable, ProviderUnavailable),
     HttpError(503, 503, "server_error", "service_unavailable")),
    (CitadelError, HttpError(400, 400)),
)  # fmt: skip


def http_error(exc: CitadelError) -> HttpError:
    for kinds, answer in TABLE:
        if isinstance(exc, kinds):
            return answer
    raise AssertionError("unreachable: CitadelError is the table's last row")


def retry_after_s(exc: Exception) -> int | None:
    """Whole seconds to wait, for the Retry-After header of a 429."""
    if not isinstance(exc, RateLimited | LoginLocked):
        return None
    return max(1, math.ceil(getattr(exc, "retry_after_s", 60.0)))


# Refused accesses of callers nobody knows, recorded per client address and minute: enough
# to see a probe, not so many that a stranger can flood the audit log with them.
ANONYMOUS_DENIALS_PER_MINUTE = 30


def install_error_handlers(app: FastAPI) -> None:
    anonymous_denials = RateLimiter(ANONYMOUS_DENIALS_PER_MINUTE, what="denied requests")

    def audit_denied(request: Request, exc: Exception) -> None:
        workspace = workspace_of(request)
        caller = key_caller(workspace, request) or session_caller(workspace, request)
        client = client_of(request)
        if caller is None:
            try:
                anonymous_denials.check(client or "unknown")
            except RateLimited:
                return
        workspace.audit.record(
            caller.name if caller else "anonymous",
            "denied",
            client=client,
            method=request.method,
            path=request.url.path[:300],
            reason=type(exc).__name__,
        )

    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, CitadelError)
        answer = http_error(exc)
        if answer.status in (403, 404):
            await run_in_threadpool(audit_denied, request, exc)
        wait = retry_after_s(exc)
        headers = {"Retry-After": str(wait)} if wait is not None else None
        return JSONResponse({"detail": str(exc)}, status_code=answer.status, headers=headers)

    app.add_exception_handler(CitadelError, handle)
