"""The team server: one process serving the REST API (/api), the OpenAI-compatible API
(/v1), the MCP server (/mcp), signed file links (/files), health probes and the Gradio web
UI at /.

The server owns the embedded store: uploads and questions go through it, so nothing else
needs to open the data directory while it runs.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route
from swagger_ui_bundle import swagger_ui_path

from rag.errors import ConfigurationError
from rag.settings import ServerSettings
from ui.http.answer_threads import AnswerThreads
from ui.http.connections import guarded_protocol
from ui.http.deps import session_caller
from ui.http.errors import install_error_handlers
from ui.http.failures import FailureLog
from ui.http.files import files_router
from ui.http.gradio_sessions import GradioSessions
from ui.http.guards import LOOPBACK_NAMES, BodyLimit, KnownHost, SameOrigin
from ui.http.login import login_router
from ui.http.mcp import PATH as MCP_PATH
from ui.http.mcp import McpEndpoint
from ui.http.openai import openai_router
from ui.http.responses import responses_router
from ui.http.rest import api_router
from ui.service.limits import MAX_FILES_PER_UPLOAD
from ui.service.sessions import COOKIE
from ui.service.workspace import Workspace
from ui.web.app import mount_web

MAX_JSON_BYTES = 1 << 20  # questions, histories, admin requests
# The web UI page's backstop, should anything untrusted ever reach it as markup: images,
# fonts, requests and frames from this server only (and data: images, Gradio's icons), no
# form or <base> pointing elsewhere, never framed. Gradio's page needs inline scripts and
# styles, and eval (its HTML components run their scripts with new Function), so those
# stay allowed; what they could load or send is not.
WEB_UI_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "font-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline' 'unsafe-eval'; connect-src 'self'; "
    "worker-src 'self' blob:; frame-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'; object-src 'none'"
)
# The routes whose body is files: the REST upload and the web UI's (Gradio's own route).
_UPLOAD_PATH = re.compile(r"/api/collections/[^/]+/documents|/gradio_api/upload")


def create_app(workspace: Workspace) -> FastAPI:
    threads = AnswerThreads(workspace.answer_slots.threads)  # answers, apart from the pool
    mcp = McpEndpoint(workspace, threads, allowed_hosts(workspace.settings.server))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The MCP SDK's task group, and the folders' schedule, run while the server does.
        workspace.folder_sync.start()
        try:
            async with mcp.running():
                yield
        finally:
            workspace.folder_sync.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="Citadel",
        description="Private document question answering: answers with verifiable citations.",
        version="0.1.0",
        docs_url=None,  # served below with local assets: FastAPI's default loads a CDN
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.workspace = workspace
    install_error_handlers(app)

    auth = workspace.settings.server.auth
    upload_limit = int(workspace.settings.server.max_upload_mb * 2**20)

    def body_limit(method: str, path: str) -> int:
        # An upload may carry up to MAX_FILES_PER_UPLOAD files; anything else is JSON or a form.
        if method == "POST" and _UPLOAD_PATH.fullmatch(path):
            return upload_limit * MAX_FILES_PER_UPLOAD + 2**20
        return MAX_JSON_BYTES

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # The web UI's page: the login form first when nobody is signed in.
        web_page = request.url.path == "/" and request.method == "GET"
        if auth and web_page and session_caller(workspace, request) is None:
            # A session cookie that no longer works: the session ended (logout elsewhere,
            # expiry, a disabled account), which the login page says.
            ended = "?ended=session" if request.cookies.get(COOKIE) else ""
            return RedirectResponse(f"/login{ended}", status_code=303)
        response = await call_next(request)
        if web_page:
            # Never kept for Back: after logout, Back asks again and lands on the login page
            # instead of a page whose every event fails.
            response.headers["Cache-Control"] = "no-store"
            response.headers["Content-Security-Policy"] = WEB_UI_CSP
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        # No address (a signed file link, say) leaves for another site. Not "no-referrer":
        # under it browsers send `Origin: null` with the login form, which SameOrigin refuses.
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    # Added last, so outermost: a request for another host name is turned away first, the
    # body is counted before anything reads it, and another site's page is turned away
    # before any route runs. A CORS policy of our own (no other origin may read a
    # response) also keeps Gradio from adding its permissive one.
    app.add_middleware(GradioSessions, workspace=workspace)
    app.add_middleware(CORSMiddleware, allow_origins=[])
    app.add_middleware(SameOrigin)
    app.add_middleware(BodyLimit, limit_for=body_limit)
    app.add_middleware(KnownHost, allowed=allowed_hosts(workspace.settings.server))
    # Outermost of all: a /v1 or /mcp request any layer refused is logged and audited too.
    app.add_middleware(FailureLog, workspace=workspace)

    app.mount("/api/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/api/docs", include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/api/openapi.json",
            title="Citadel API",
            swagger_js_url="/api/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/api/docs-assets/swagger-ui.css",
            swagger_favicon_url="/api/docs-assets/favicon-32x32.png",
        )

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the process serves requests."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """Readiness of the store, the embedder and the model server, each on its own. Ready
        (200) when the store and the embedder are; without the model server, answers are
        given in search mode."""
        report = workspace.readiness()
        ready = report["store"]["ok"] and report["embedder"]["ok"]
        return JSONResponse({"ready": ready, **report}, status_code=200 if ready else 503)

    app.include_router(files_router(workspace))
    app.include_router(login_router(workspace))
    app.include_router(api_router(workspace, threads), prefix="/api")
    v1 = openai_router(workspace, threads, responses_router(workspace, threads))
    app.include_router(v1, prefix="/v1")
    # A route, not a mount: a mount would answer /mcp with a redirect to /mcp/.
    app.router.routes.append(Route(MCP_PATH, mcp, methods=["GET", "POST", "DELETE"]))
    mount_web(app, workspace)
    return app


def allowed_hosts(server: ServerSettings) -> frozenset[str]:
    """The Host names answered (empty: any). The loopback names are always among them
    (a rebinding page cannot send them: they are its own name that it sends), and without
    authentication only they and the configured names are: the local user is the
    administrator there."""
    named = frozenset(server.allowed_hosts)
    return LOOPBACK_NAMES | named if named or not server.auth else frozenset()


def is_loopback(host: str) -> bool:
    """True when every address `host` resolves to is a loopback one."""
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_bind(host: str, auth: bool) -> None:
    if not auth and not is_loopback(host):
        raise ConfigurationError(
            f"refusing to serve on {host} without authentication: anyone who can reach it "
            "would read every document. Keep authentication on (the default), or bind to "
            "127.0.0.1."
        )


def uvicorn_config(workspace: Workspace, host: str, port: int, log_level: str = "info") -> Any:
    """How `citadel serve` runs the app (the tests' live server uses the same)."""
    import uvicorn

    server = workspace.settings.server
    return uvicorn.Config(
        create_app(workspace),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        # The client address and scheme a trusted reverse proxy reports (X-Forwarded-*),
        # only when the deployment names its proxy.
        proxy_headers=bool(server.trusted_proxies.strip()),
        forwarded_allow_ips=server.trusted_proxies or None,
        limit_concurrency=server.max_connections,
        # Browsers keep their connections; idle ones are let go soon, not held for minutes.
        timeout_keep_alive=15,
        # A deadline on each request's headers and a cap per address (uvicorn has neither).
        http=guarded_protocol(
            server.header_timeout_s, server.connections_per_address, server.trusted_proxies
        ),
    )


def serve(workspace: Workspace, host: str, port: int) -> None:
    import uvicorn

    check_bind(host, workspace.settings.server.auth)
    uvicorn.Server(uvicorn_config(workspace, host, port)).run()
