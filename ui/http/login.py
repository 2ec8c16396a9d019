"""The web login: a plain form at /login that sets the signed session cookie, a POST to
/logout that ends it. Passwords are checked in a worker thread (Argon2 takes a quarter of a second),
and attempts are limited per client address as well as per account."""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rag.errors import CitadelError
from ui.http.deps import client_of, session_caller
from ui.metadata.errors import LoginLocked
from ui.service.errors import RateLimited
from ui.service.limits import RateLimiter
from ui.service.sessions import COOKIE
from ui.service.workspace import Workspace

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Citadel: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; background: #f4f5f7; margin: 0; }}
main {{ max-width: 22rem; margin: 12vh auto; background: #fff; padding: 2rem;
        border-radius: 12px; box-shadow: 0 2px 12px rgba(0,0,0,.08); }}
h1 {{ font-size: 1.4rem; margin: 0 0 .3rem; }}
p {{ color: #555; font-size: .9rem; }}
label {{ display: block; margin-top: 1rem; font-size: .9rem; }}
input {{ width: 100%; box-sizing: border-box; padding: .55rem; margin-top: .3rem;
         border: 1px solid #bbb; border-radius: 6px; font-size: 1rem; }}
button {{ margin-top: 1.4rem; width: 100%; padding: .6rem; border: 0; border-radius: 6px;
          background: #4f46e5; color: #fff; font-size: 1rem; cursor: pointer; }}
.error {{ color: #b42318; background: #fef3f2; padding: .5rem .7rem; border-radius: 6px; }}
.notice {{ color: #1f1f1f; background: #eef2f7; padding: .5rem .7rem; border-radius: 6px; }}
</style></head>
<body><main>
<h1>Citadel</h1>
<p>Answers from your company's documents. {hint}</p>
{error}
<form method="post" action="/login">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required autofocus
       maxlength="64" value="{username}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password"
       required maxlength="1024">
<button type="submit">Log in</button>
</form>
</main></body></html>
"""


# Why the login page is shown again (`/login?ended=...`): said on it, instead of the
# web UI's events failing one by one with "Error".
_ENDED = {
    "out": "You are signed out.",
    "session": "Your session ended. Sign in again to continue.",
}


def login_router(workspace: Workspace) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    server = workspace.settings.server
    per_client = RateLimiter(server.logins_per_minute, what="login attempts")
    hint = (
        f"After {server.login_attempts} failed attempts an account is locked for "
        f"{max(1, int(server.login_lockout_s // 60))} min."
    )

    def page(
        error: str = "", username: str = "", status: int = 200, notice: str = ""
    ) -> HTMLResponse:
        shown = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
        if notice and not error:
            shown = f'<p class="notice" role="status">{html.escape(notice)}</p>'
        body = _PAGE.format(hint=html.escape(hint), error=shown, username=html.escape(username))
        return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    @router.get("/login")
    def login_form(ended: str = "") -> Response:
        if not server.auth:
            return RedirectResponse("/", status_code=303)
        return page(notice=_ENDED.get(ended, ""))

    @router.post("/login")
    def login(
        request: Request,
        username: Annotated[str, Form(max_length=64)],
        password: Annotated[str, Form(max_length=1024)],
    ) -> Response:
        # A plain `def`: FastAPI runs it in a worker thread, so the Argon2 check never
        # blocks the event loop that serves everyone else.
        client = client_of(request) or "unknown"
        name = username.strip()
        try:
            per_client.check(client)
            caller = workspace.login(name, password, client)
        except (RateLimited, LoginLocked) as exc:
            return page(f"{exc}.", name, 429)
        except CitadelError:
            caller = None
        if caller is None:
            return page("Wrong username or password.", name, 401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            workspace.sessions.issue(caller.name),
            max_age=int(workspace.sessions.ttl_s),
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    @router.post("/logout")
    def logout(request: Request) -> Response:
        # A POST (from Citadel's own page: see SameOrigin), and ended on the server: a copy
        # of the cookie taken before stops working too.
        workspace.sessions.end(request.cookies.get(COOKIE))
        response = RedirectResponse("/login?ended=out", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @router.get("/session")
    def session(request: Request) -> Response:
        """Whether the browser's session still works (204) or ended (401): the web UI asks,
        to show the login page rather than fail."""
        if server.auth and session_caller(workspace, request) is None:
            return Response(status_code=401, headers={"Cache-Control": "no-store"})
        return Response(status_code=204, headers={"Cache-Control": "no-store"})

    @router.get("/logout")
    def logout_page() -> Response:
        # A link elsewhere cannot log anyone out; the page's button posts.
        return RedirectResponse("/", status_code=303)

    return router
