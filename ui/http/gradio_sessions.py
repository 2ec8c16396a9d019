"""Gradio's own routes (/gradio_api/...) bound to the signed-in user who opened each session.

Gradio names a browser tab's session by a `session_hash` the browser makes up, an event by
the `event_id` that queue/join answers, and an upload by an `upload_id`; it serves whoever
presents one, and some routes (cancel, reset, heartbeat) ask for no login at all. Anyone who
learned another user's session hash could read that user's answers as they stream
(document text included), run events on that user's session state (read or reset the
conversation), or cancel them. So, with authentication on, `GradioSessions`:

- refuses every /gradio_api request without a signed-in session (401);
- gives a session hash or an upload id to the first user who presents it, and an event id
  to the user whose queue/join created it; anyone else gets 403 and Gradio sees nothing;
- counts an upload against the user's upload rate limit by its size, before its body is
  received (429 with Retry-After, from the one error table): Gradio keeps what it receives
  for an hour, whoever sent it;
- opens a session's answer stream (queue/data) only after an event was joined to it.
  Gradio answers any other with an error raised inside its stream (an unknown session),
  which the server logged as a traceback of over a hundred lines. An error that still
  escapes a stream once it started (a session's stream cut short while another event was
  being joined to it) is logged in one line, a few a minute at most.

The table of owners is bounded: a user's oldest tokens are forgotten past TOKENS_PER_USER
(so one user cannot push out another's), the least recently used past TOKENS_KEPT, and any
unused for longer than a login lasts.

With authentication off (a loopback demo: one local user), Gradio is left as it is.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.errors import CitadelError
from ui.http.deps import session_caller
from ui.http.errors import http_error, retry_after_s
from ui.metadata.accounts import Caller
from ui.service.errors import RateLimited
from ui.service.limits import RateLimiter
from ui.service.workspace import Workspace

log = logging.getLogger(__name__)

PREFIX = "/gradio_api/"
MAX_BODY = 1 << 20  # what is buffered to read a session hash: Gradio's JSON bodies are small
MAX_JOIN_ANSWER = 1 << 16  # queue/join answers {"event_id": ...}
TOKENS_PER_USER = 1000
TOKENS_KEPT = 50_000  # a few hundred bytes each
STREAM_ERRORS_LOGGED_PER_MINUTE = 10
# Gradio's browser client makes [a-z0-9] hashes and ids, its Python client uuids; any
# other value is refused before it reaches Gradio or the table.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,128}")

Kind = Literal["session", "event", "upload"]
Token = tuple[Kind, str]


# -- who owns what -----------------------------------------------------------------------


@dataclass(slots=True)
class Claim:
    """A token's owner; for a session, the state of its answer stream too."""

    user: str
    used_at: float
    joined: bool = False  # an event was joined to the session: its stream may open


class Owners:
    """Which user holds each token: at most `per_user` per user (their least recently used
    forgotten first), `capacity` in all, none unused for longer than `idle_s`. Used from the
    event loop only, so it needs no lock."""

    def __init__(
        self,
        capacity: int,
        per_user: int,
        idle_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._capacity = capacity
        self._per_user = per_user
        self._idle_s = idle_s
        self._clock = clock
        self._claims: OrderedDict[Token, Claim] = OrderedDict()  # least recently used first
        self._by_user: dict[str, OrderedDict[Token, None]] = {}

    def __len__(self) -> int:
        return len(self._claims)

    def claim(self, token: Token, user: str) -> Claim | None:
        """The token's claim, made `user`'s if nobody holds it; None if another user does."""
        self._expire()
        if token not in self._claims:
            self._add(token, user)
        return self._use(token, user)

    def held(self, token: Token, user: str) -> Claim | None:
        """The token's claim if `user` holds it; nobody can claim it by using it first."""
        self._expire()
        return self._use(token, user) if token in self._claims else None

    def give(self, token: Token, user: str) -> None:
        self._expire()
        if token not in self._claims:
            self._add(token, user)

    def _use(self, token: Token, user: str) -> Claim | None:
        claim = self._claims[token]
        if claim.user != user:
            return None
        claim.used_at = self._clock()
        self._claims.move_to_end(token)
        self._by_user[user].move_to_end(token)
        return claim

    def _add(self, token: Token, user: str) -> None:
        self._claims[token] = Claim(user, self._clock())
        mine = self._by_user.setdefault(user, OrderedDict())
        mine[token] = None
        if len(mine) > self._per_user:
            self._forget(next(iter(mine)))
        if len(self._claims) > self._capacity:
            self._forget(next(iter(self._claims)))

    def _expire(self) -> None:
        unused_since = self._clock() - self._idle_s
        while self._claims:
            token, claim = next(iter(self._claims.items()))
            if claim.used_at > unused_since:
                return
            self._forget(token)

    def _forget(self, token: Token) -> None:
        claim = self._claims.pop(token)
        mine = self._by_user[claim.user]
        del mine[token]
        if not mine:
            del self._by_user[claim.user]


# -- what a request names ----------------------------------------------------------------


class Malformed(ValueError):
    """A request naming its session, event or upload in a way Gradio is not asked about."""


def named_tokens(method: str, route: str, query: QueryParams, body: bytes) -> dict[Kind, str]:
    """The session hash, event id and upload id a request names, wherever Gradio reads them
    (query, JSON body, path); each kind at most once, so no route can act on one value
    while another was checked."""
    found: list[tuple[Kind, Any]] = [("session", v) for v in query.getlist("session_hash")]
    found += [("upload", v) for v in query.getlist("upload_id")]
    fields = _json_object(body)
    body_fields: tuple[tuple[Kind, str], ...] = (("session", "session_hash"), ("event", "event_id"))
    found += [(kind, fields[name]) for kind, name in body_fields if fields.get(name) is not None]
    found += _path_tokens(method, route.split("/"))
    named: dict[Kind, str] = {}
    for kind, value in found:
        if not isinstance(value, str) or not _TOKEN.fullmatch(value):
            raise Malformed(f"a malformed {kind} id")
        if named.setdefault(kind, value) != value:
            raise Malformed(f"two different {kind} ids in one request")
    return named


def _json_object(body: bytes) -> dict[str, Any]:
    # The parser FastAPI uses, so both read the same fields (a repeated key: the last one).
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise Malformed("the web UI sends a JSON object here") from None
    if not isinstance(value, dict):
        raise Malformed("the web UI sends a JSON object here")
    return value


def _path_tokens(method: str, parts: list[str]) -> list[tuple[Kind, str]]:
    """Gradio's routes with one in their path: heartbeat/{session_hash}, GET
    stream/{session_hash}/..., POST stream/{event_id}[/close], GET
    call/[v2/]{api_name}/{event_id}."""
    head, reading = parts[0], method in ("GET", "HEAD")
    if head == "heartbeat" and len(parts) >= 2:
        return [("session", parts[1])]
    if head == "stream" and len(parts) >= 2:
        return [("session" if reading else "event", parts[1])]
    if head == "call" and reading and len(parts) >= 3:
        return [("event", parts[-1])]
    return []


# -- the middleware ----------------------------------------------------------------------


class GradioSessions:
    """Every /gradio_api request: a signed-in user, acting on their own sessions, events
    and uploads only (see the module's docstring)."""

    def __init__(self, app: ASGIApp, workspace: Workspace) -> None:
        self.app = app
        self.workspace = workspace
        server = workspace.settings.server
        self.enabled = server.auth
        # A page stays usable for as long as its login: so long a session hash stays bound.
        self.owners = Owners(TOKENS_KEPT, TOKENS_PER_USER, server.session_ttl_s)
        self._logged = RateLimiter(STREAM_ERRORS_LOGGED_PER_MINUTE, what="log lines")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        caller = await run_in_threadpool(session_caller, self.workspace, Request(scope))
        if caller is None:
            await _refuse(401, "sign in first: the web UI needs a session")(scope, receive, send)
            return
        route = scope["path"][len(PREFIX) :].rstrip("/")
        read = await _naming(scope, route, receive)
        if isinstance(read, JSONResponse):
            await read(scope, receive, send)
            return
        named, receive = read
        claims = self._bind(named, caller.name)
        if claims is None:
            await run_in_threadpool(self._audit_denied, caller, scope)
            await _refuse(403, "this belongs to another user's session")(scope, receive, send)
            return
        await self._route(caller, route, claims, scope, receive, send)

    async def _route(
        self,
        caller: Caller,
        route: str,
        claims: dict[Kind, Claim],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        session = claims.get("session")
        if route == "queue/data":
            await self._answer_stream(session, scope, receive, send)
        elif scope["method"] == "POST" and (route == "queue/join" or route.startswith("call/")):
            await self._pass_on(scope, receive, self._joining(caller.name, session, send))
        elif scope["method"] == "POST" and route == "upload":
            refusal = await self._admit_upload(caller, scope)
            if refusal is not None:
                await refusal(scope, receive, send)
            else:
                await self._pass_on(scope, receive, send)
        else:
            await self._pass_on(scope, receive, send)

    def _bind(self, named: dict[Kind, str], user: str) -> dict[Kind, Claim] | None:
        claims: dict[Kind, Claim] = {}
        for kind, value in named.items():
            # Gradio makes event ids: only the user whose event it is may name one.
            bind = self.owners.held if kind == "event" else self.owners.claim
            claim = bind((kind, value), user)
            if claim is None:
                return None
            claims[kind] = claim
        return claims

    def _audit_denied(self, caller: Caller, scope: Scope) -> None:
        client = scope.get("client")
        self.workspace.audit.record(
            caller.name,
            "denied",
            client=client[0] if client else None,
            method=scope["method"],
            path=scope["path"][:300],
            reason="another user's web UI session",
        )

    async def _answer_stream(
        self, session: Claim | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if session is None:
            await _refuse(400, "session_hash is required")(scope, receive, send)
            return
        if not session.joined:
            # Gradio holds nothing for this session to stream: it would answer with an
            # error raised inside the stream, or keep the stream open with nothing in it.
            message = "nothing is waiting for this session: join an event first"
            await _refuse(404, message)(scope, receive, send)
            return
        # A session once joined may open its stream again: the browser reopens it when
        # events chain (.then) across the end of the last one, and counting streams per
        # join refused some of those (its pending answers then showed "Error"). What Gradio
        # still raises inside such a stream is logged in one line (_log_stream_error).
        await self._pass_on(scope, receive, send)

    def _joining(self, user: str, session: Claim | None, send: Send) -> Send:
        """`send`, noting the event id a successful join answers, before the browser gets
        it: the event is the user's, and their session's stream may open."""
        status, answer = 0, bytearray()

        async def watching(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and len(answer) <= MAX_JOIN_ANSWER:
                answer.extend(message.get("body", b""))
                if status == 200 and not message.get("more_body", False):
                    self._joined(user, session, bytes(answer))
            await send(message)

        return watching

    def _joined(self, user: str, session: Claim | None, answer: bytes) -> None:
        try:
            event = json.loads(answer).get("event_id")
        except (ValueError, AttributeError):
            return
        if isinstance(event, str):
            self.owners.give(("event", event), user)
        if session is not None:
            session.joined = True

    async def _admit_upload(self, caller: Caller, scope: Scope) -> JSONResponse | None:
        declared = Headers(scope=scope).get("content-length")
        if declared is None or not declared.isdigit():
            return _refuse(411, "an upload must declare its size (Content-Length)")
        try:
            await run_in_threadpool(self.workspace.admit_received_files, caller, int(declared))
        except CitadelError as exc:
            return _service_error(exc)
        return None

    async def _pass_on(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = finished = False

        async def watching(message: Message) -> None:
            nonlocal started, finished
            started = started or message["type"] == "http.response.start"
            ended = message["type"] == "http.response.body" and not message.get("more_body")
            finished = finished or ended
            await send(message)

        try:
            await self.app(scope, receive, watching)
        except Exception as exc:
            if not started:
                raise  # answered 500 with the whole traceback: a fault worth reading
            # Once a stream started, its status is sent: the error only ends it.
            self._log_stream_error(scope, exc)
            if not finished:
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _log_stream_error(self, scope: Scope, exc: Exception) -> None:
        try:
            self._logged.check("stream errors")
        except RateLimited:
            return
        cause = exc.__cause__ or exc
        log.warning(
            "a web UI stream (%s) ended with %s: %s",
            scope["path"][:100],
            type(cause).__name__,
            str(cause)[:200],
        )


async def _naming(
    scope: Scope, route: str, receive: Receive
) -> tuple[dict[Kind, str], Receive] | JSONResponse:
    """What the request names, and the `receive` to pass on (its body replayed, when it
    had to be read for that); or the refusal of a request that names it unclearly."""
    body = b""
    if scope["method"] == "POST" and route != "upload":  # an upload's body is files
        read = await _read_body(receive)
        if read is None:
            return _refuse(413, "request too large")
        body, receive = read, _replaying(read, receive)
    try:
        named = named_tokens(scope["method"], route, QueryParams(scope["query_string"]), body)
    except Malformed as exc:
        return _refuse(400, str(exc))
    return named, receive


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body, or None past MAX_BODY (BodyLimit, outside, should have cut it off
    already: this is the bound of what is held here, whatever the settings)."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return bytes(body)  # the client left: nobody reads the answer
        body.extend(message.get("body", b""))
        if len(body) > MAX_BODY:
            return None
        if not message.get("more_body", False):
            return bytes(body)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` for the app inside: the body read already, then the connection's events
    (a disconnect)."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def _service_error(exc: CitadelError) -> JSONResponse:
    wait = retry_after_s(exc)
    return _refuse(
        http_error(exc).status, str(exc), {"Retry-After": str(wait)} if wait is not None else {}
    )


def _refuse(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    # The connection closes: a body may be left unread.
    return JSONResponse(
        {"detail": message}, status_code=status, headers={"Connection": "close", **(headers or {})}
    )
