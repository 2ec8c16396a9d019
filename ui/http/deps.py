"""Who is calling: an API key (`Authorization: Bearer ...`), a browser session cookie, or
the local administrator when authentication is off. FastAPI dependencies for the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from ui.metadata.accounts import Caller
from ui.service.access import LOCAL_ADMIN
from ui.service.sessions import COOKIE
from ui.service.workspace import Workspace


def workspace_of(request: Request) -> Workspace:
    workspace: Workspace = request.app.state.workspace
    return workspace


def client_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def key_caller(workspace: Workspace, request: Request) -> Caller | None:
    """The owner of the request's API key, if valid."""
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return workspace.accounts.caller_for_key(secret.strip())


def session_caller(workspace: Workspace, request: Request) -> Caller | None:
    """The caller of a browser request, from its session cookie."""
    name = workspace.sessions.user(request.cookies.get(COOKIE))
    return workspace.accounts.caller(name) if name else None


def bearer_caller(workspace: Workspace, request: Request) -> Caller:
    """The caller of an API request: an API key, or the local administrator when
    authentication is off."""
    if not workspace.settings.server.auth:
        return LOCAL_ADMIN
    caller = key_caller(workspace, request)
    if caller is None:
        raise HTTPException(
            401,
            "a valid API key is required (Authorization: Bearer ...)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return caller


def current_caller(request: Request) -> Caller:
    """FastAPI dependency: the caller of this request."""
    return bearer_caller(workspace_of(request), request)


CallerDep = Annotated[Caller, Depends(current_caller)]
