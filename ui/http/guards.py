"""ASGI guards in front of every route of the team server (REST, /v1, /files, the web UI).

    BodyLimit   caps a request body by the bytes actually received, not only by what its
                headers claim: a chunked body has no Content-Length, and FastAPI reads (and
                spools to disk) the whole body before any route's authentication runs
    SameOrigin  refuses state-changing browser requests sent by another site's page (CSRF):
                the session cookie is ambient, an API key is not
    KnownHost   answers only requests addressed to this server's own names (the `Host`
                header): a DNS-rebinding page reaches a loopback server under its own
                name, and without authentication would be answered as the administrator

They are plain ASGI middleware rather than FastAPI's `@app.middleware("http")`, because that
one can only look at headers before the body is read by the route.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class BodyLimit:
    """At most `limit_for(method, path)` bytes of body per request: refused at once by a
    larger Content-Length, and cut off with a 413 the moment more bytes than that arrive
    (Starlette's RequestBodyLimitMiddleware counts, with the limit of this path; FastAPI
    turns its signal into a 413 wherever the body is being read)."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str, str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _refuse(413, f"request too large: at most {_megabytes(limit)}")(
                scope, receive, send
            )
            return
        await RequestBodyLimitMiddleware(self.app, limit)(scope, receive, send)


class SameOrigin:
    """A POST/PUT/PATCH/DELETE from a browser must come from a page of this server.

    Browsers say where a request comes from (`Origin`, and `Sec-Fetch-Site` on the rest);
    a request from another site's page is refused before any route sees it, so a page
    elsewhere cannot ask, delete or sign a user in with the user's session. Requests with
    an `Authorization` header are API clients holding a key: no ambient credential to abuse.
    A reverse proxy must pass the `Host` header through (it is what the origin is compared to).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            headers = Headers(scope=scope)
            if "authorization" not in headers and not is_same_origin(headers):
                response = _refuse(403, "cross-origin request refused: use Citadel's own pages")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


class KnownHost:
    """Requests whose `Host` names none of `allowed` (host names, any port) are refused
    with 421 before any route runs; `allowed` empty lets every name through."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = frozenset(name.lower() for name in allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allowed and scope["type"] in ("http", "websocket"):
            name = host_name(Headers(scope=scope).get("host", ""))
            if name not in self.allowed:
                response = _refuse(
                    421,
                    "this server does not answer to that host name: open it by one of "
                    f"{', '.join(sorted(self.allowed))}, or add the name to "
                    "CITADEL_SERVER__ALLOWED_HOSTS",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def host_name(host: str) -> str:
    """The name of a Host header without its port: "[::1]:8000" -> "::1"."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def is_same_origin(headers: Headers) -> bool:
    origin = headers.get("origin")
    if origin is None:
        # Not every browser request carries Origin; those that do not still say their site.
        return headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
    if origin == "null":  # sandboxed frames, file: pages, some redirects: nobody's page
        return False
    host = headers.get("host", "")
    return bool(host) and urlsplit(origin).netloc.lower() == host.lower()


def _refuse(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers={"Connection": "close"})


def _megabytes(limit: int) -> str:
    return f"{limit / 2**20:g} MB" if limit >= 2**20 else f"{limit // 1024} KB"
