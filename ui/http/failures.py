"""Failed requests of the programs' APIs, made visible: every 4xx and 5xx answer under
`/v1` (the OpenAI-compatible API) and `/mcp` (the MCP server) is logged with its method,
path, status, reason and client, and written to the audit log when the caller is known
(a valid API key or session). An integration that breaks (an n8n workflow with a revoked
key, a model renamed away, a URL the server does not offer) then shows in the server's
log and in the admin's audit view instead of only in the client that gave up.

It is plain ASGI middleware, so it sees every answer on those prefixes, whatever route or
application (a mounted MCP server) gave it, including the guards' own refusals (413, a
host name not served). The reason is read from the answer's JSON body (OpenAI's
`error.message`, FastAPI's `detail`, JSON-RPC's `error.message`); an error reported
inside a stream that already answered 200 is not seen here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.text import printable
from ui.http.deps import client_of, key_caller, session_caller
from ui.metadata.accounts import Caller
from ui.service.access import LOCAL_ADMIN
from ui.service.workspace import Workspace

log = logging.getLogger(__name__)

WATCHED = ("/v1", "/mcp")
REASON_BODY_BYTES = 4096  # of an error's body, read for its reason
REASON_CHARS = 300
PATH_CHARS = 300


class FailureLog:
    def __init__(
        self, app: ASGIApp, workspace: Workspace, prefixes: Sequence[str] = WATCHED
    ) -> None:
        self.app = app
        self.workspace = workspace
        self.prefixes = tuple(prefixes)

    def _watched(self, path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in self.prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._watched(scope["path"]):
            await self.app(scope, receive, send)
            return
        status = 0
        body = bytearray()
        request = Request(scope)

        length: int | None = None  # the answer's Content-Length, when it has one
        sent = 0
        recorded = False

        async def sending(message: Message) -> None:
            nonlocal status, length, sent, recorded
            if message["type"] == "http.response.start":
                status = int(message["status"])
                declared = dict(message.get("headers") or []).get(b"content-length")
                length = int(declared) if declared and declared.isdigit() else None
            elif message["type"] == "http.response.body" and status >= 400 and not recorded:
                chunk = message.get("body", b"")
                body.extend(chunk[: REASON_BODY_BYTES - len(body)])
                sent += len(chunk)
                # Recorded before the answer's last byte is sent (a client that read all
                # Content-Length bytes is done, even if an empty last message follows):
                # once the client has read it, the trace is there.
                if not message.get("more_body", False) or (length is not None and sent >= length):
                    recorded = True
                    await run_in_threadpool(self._record, request, status, bytes(body))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            if not status:  # no answer was begun: the server answers 500
                await run_in_threadpool(self._record, request, 500, b"")
            raise

    def _record(self, request: Request, status: int, body: bytes) -> None:
        path = _plain(request.url.path, PATH_CHARS)
        reason = reason_of(status, body)
        client = client_of(request)
        try:
            caller = self._caller(request)
        except Exception:  # the metadata store is down: the log line still tells
            caller = None
        log.warning(
            "%s %s failed: %d %s (client %s, caller %s)",
            request.method,
            path,
            status,
            reason,
            client or "unknown",
            caller.name if caller else "unknown",
        )
        # A 429 is the rate limit doing its work: audited, a client hammering it would
        # turn each refused request into a write.
        if caller is not None and status != HTTPStatus.TOO_MANY_REQUESTS:
            self.workspace.record_failure(caller, request.method, path, status, reason, client)

    def _caller(self, request: Request) -> Caller | None:
        workspace = self.workspace
        if not workspace.settings.server.auth:
            return LOCAL_ADMIN
        return key_caller(workspace, request) or session_caller(workspace, request)


def reason_of(status: int, body: bytes) -> str:
    """What the answer said went wrong, on one line, bounded; else the status's phrase."""
    message: Any = None
    try:
        data = json.loads(body)
    except ValueError:  # not JSON, or cut short
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        message = message or data.get("detail")
    if not isinstance(message, str) or not message.strip():
        try:
            message = HTTPStatus(status).phrase
        except ValueError:
            message = "error"
    return _plain(message, REASON_CHARS)


def _plain(text: str, limit: int) -> str:
    """Untrusted text for a log line: printable, one line, bounded."""
    return " ".join(printable(text).split())[:limit]
