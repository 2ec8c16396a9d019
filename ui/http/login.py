"""The web login: a plain form at /login that sets the signed session cookie, a POST to
/logout that ends it. Passwords are checked in a worker thread (Argon2 takes a quarter of a second),
and attempts are limited per client address as well as per account.

Single sign-on only routes here: /login/oidc sends the browser to the OpenID Connect
provider, /login/oidc/callback takes it back (the Workspace checks everything); directory
(LDAP) passwords arrive through the same form as local ones. Every way ends in the same
session cookie."""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from rag.errors import CitadelError
from ui.http.deps import client_of, session_caller
from ui.http.errors import http_error
from ui.metadata.errors import LoginLocked
from ui.service.errors import NotFound, RateLimited
from ui.service.limits import RateLimiter
from ui.service.oidc import PENDING_S
from ui.service.sessions import COOKIE
from ui.service.sso import ProviderUnavailable, SsoRefused
from ui.service.workspace import Workspace

# The state of a sign-in at the OpenID Connect provider, for its callback only.
SSO_STATE_COOKIE = "citadel_sso_state"
_CALLBACK = "/login/oidc/callback"

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
.or {{ text-align: center; margin: 1.2rem 0 0; }}
.sso {{ display: block; margin-top: 1.4rem; padding: .6rem; border-radius: 6px;
        background: #1f2937; color: #fff; text-align: center; text-decoration: none; }}
</style></head>
<body><main>
<h1>Citadel</h1>
<p>Answers from your company's documents. {hint}</p>
{error}
{sso}
{form}
</main></body></html>
"""

_FORM = """<form method="post" action="/login">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required autofocus
       maxlength="64" value="{username}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password"
       required maxlength="1024">
<button type="submit">Log in</button>
</form>"""

_SSO = """<a class="sso" href="/login/oidc">{label}</a>
{separator}"""


# Why the login page is shown again (`/login?ended=...`): said on it, instead of the
# web UI's events failing one by one with "Error".
_ENDED = {
    "out": "You are signed out.",
    "session": "Your session ended. Sign in again to continue.",
}


_LOCAL_STILL = {True: " Local accounts can still sign in.", False: ""}


def _sentence(exc: Exception) -> str:
    text = str(exc).rstrip(".")
    return text[:1].upper() + text[1:]


def login_router(workspace: Workspace) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    server = workspace.settings.server
    per_client = RateLimiter(server.logins_per_minute, what="login attempts")
    hint = (
        f"After {server.login_attempts} failed attempts an account is locked for "
        f"{max(1, int(server.login_lockout_s // 60))} min."
    )

    sso = workspace.settings.sso
    # The password form serves local accounts and the directory's users.
    with_form = sso.local_accounts or workspace.directory is not None

    def page(
        error: str = "", username: str = "", status: int = 200, notice: str = ""
    ) -> HTMLResponse:
        shown = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
        if notice and not error:
            shown = f'<p class="notice" role="status">{html.escape(notice)}</p>'
        form = _FORM.format(username=html.escape(username)) if with_form else ""
        button = ""
        if workspace.oidc is not None:
            separator = '<p class="or">or</p>' if with_form else ""
            button = _SSO.format(label=html.escape(workspace.oidc.label), separator=separator)
        body = _PAGE.format(
            hint=html.escape(hint if with_form else ""), error=shown, sso=button, form=form
        )
        return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})

    def refused(exc: CitadelError, username: str = "") -> HTMLResponse:
        """The login page again, saying why single sign-on did not sign anyone in (the
        status from the one error table)."""
        said = f"{_sentence(exc)}."
        if isinstance(exc, ProviderUnavailable):
            said += _LOCAL_STILL[sso.local_accounts]
        return page(said, username, http_error(exc).status)

    def signed_in(request: Request, name: str) -> Response:
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE,
            workspace.sessions.issue(name),
            max_age=int(workspace.sessions.ttl_s),
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

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
        except (SsoRefused, ProviderUnavailable) as exc:
            return refused(exc, name)
        except CitadelError:
            caller = None
        if caller is None:
            return page("Wrong username or password.", name, 401)
        return signed_in(request, caller.name)

    @router.get("/login/oidc")
    def oidc_start(request: Request) -> Response:
        """To the provider's sign-in page, with a cookie that ties its callback to this
        browser."""
        if not server.auth:
            return RedirectResponse("/", status_code=303)
        try:
            per_client.check(client_of(request) or "unknown")
            callback = str(request.url.replace(path=_CALLBACK, query=""))
            url, state = workspace.oidc_start(callback, client_of(request))
        except RateLimited as exc:
            return page(f"{exc}.", status=429)
        except (ProviderUnavailable, NotFound) as exc:
            return refused(exc)
        response = RedirectResponse(url, status_code=303)
        response.set_cookie(
            SSO_STATE_COOKIE,
            state,
            max_age=int(PENDING_S),
            httponly=True,
            samesite="lax",  # sent on the provider's redirect back, a top-level GET
            secure=request.url.scheme == "https",
            path=_CALLBACK,
        )
        return response

    @router.get(_CALLBACK)
    def oidc_callback(request: Request) -> Response:
        if not server.auth:
            return RedirectResponse("/", status_code=303)
        params = {k: v[:4096] for k, v in request.query_params.items()}
        try:
            caller = workspace.oidc_login(
                request.cookies.get(SSO_STATE_COOKIE), params, client_of(request)
            )
            response = signed_in(request, caller.name)
        except (SsoRefused, ProviderUnavailable, NotFound) as exc:
            response = refused(exc)
        response.delete_cookie(SSO_STATE_COOKIE, path=_CALLBACK)
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
