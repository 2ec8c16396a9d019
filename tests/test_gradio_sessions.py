"""Gradio's routes bound to the signed-in user of each session (ui/http/gradio_sessions.py):
the table of owners and its bounds, what a request names, the middleware in front of a
stand-in for Gradio, then the real server, whose log a bad answer-stream request leaves
without a traceback."""

from __future__ import annotations

import json
import logging
import socket
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, StreamingResponse
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from rag.settings import Settings
from tests.live_server import PASSWORD, LiveServer, add_user, server_settings, workspace_with
from ui.http.gradio_sessions import GradioSessions, Malformed, Owners, named_tokens
from ui.metadata.accounts import Caller
from ui.service.errors import RateLimited
from ui.service.sessions import COOKIE

# -- the table of owners ---------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_token_belongs_to_the_first_user_who_names_it() -> None:
    owners = Owners(capacity=10, per_user=10, idle_s=60)
    assert owners.claim(("session", "h"), "alice") is not None
    assert owners.claim(("session", "h"), "bob") is None
    assert owners.claim(("session", "h"), "alice") is not None
    # An event id is only ever given (by a join's answer), never claimed by naming it.
    assert owners.held(("event", "e"), "bob") is None
    owners.give(("event", "e"), "alice")
    assert owners.held(("event", "e"), "bob") is None
    assert owners.held(("event", "e"), "alice") is not None


def test_one_user_cannot_push_another_users_tokens_out() -> None:
    owners = Owners(capacity=1000, per_user=5, idle_s=60)
    owners.claim(("session", "victim's"), "victim")
    for n in range(500):
        owners.claim(("session", f"m{n}"), "mallory")
    assert len(owners) == 6  # mallory's five latest, victim's one
    assert owners.claim(("session", "victim's"), "mallory") is None
    assert owners.claim(("session", "m0"), "victim") is not None  # forgotten: anyone's now


def test_the_table_is_bounded_in_all_and_forgets_idle_tokens() -> None:
    clock = Clock()
    owners = Owners(capacity=3, per_user=10, idle_s=60, clock=clock)
    for user in ("a", "b", "c", "d"):
        owners.claim(("session", user), user)
        clock.now += 1
    assert len(owners) == 3 and owners.claim(("session", "a"), "z") is not None
    clock.now += 61
    owners.claim(("upload", "u"), "z")
    assert len(owners) == 1


# -- what a request names --------------------------------------------------------------


def named(method: str, route: str, query: str = "", body: Any = None) -> dict[str, str]:
    raw = b"" if body is None else json.dumps(body).encode()
    return dict(named_tokens(method, route, QueryParams(query), raw))


def test_every_place_gradio_reads_an_id_from_is_checked() -> None:
    assert named("GET", "queue/data", "session_hash=h1") == {"session": "h1"}
    assert named("POST", "cancel", body={"session_hash": "h1", "fn_index": 1, "event_id": "e"}) == {
        "session": "h1",
        "event": "e",
    }
    assert named("GET", "heartbeat/h1") == {"session": "h1"}
    assert named("GET", "stream/h1/run/3/playlist.m3u8") == {"session": "h1"}
    assert named("POST", "stream/e1/close") == {"event": "e1"}
    assert named("GET", "call/v2/library/e1") == {"event": "e1"}
    assert named("POST", "upload", "upload_id=u1") == {"upload": "u1"}
    assert named("GET", "info") == {}


@pytest.mark.parametrize(
    ("query", "body"),
    [
        ("session_hash=mine&session_hash=theirs", None),  # FastAPI would read the last
        ("session_hash=mine", {"session_hash": "theirs"}),
        ("session_hash=", None),
        ("session_hash=" + "x" * 129, None),
        ("session_hash=..%2Fx", None),
        ("", {"session_hash": 12}),
        ("", ["not", "an", "object"]),
    ],
)
def test_an_ambiguous_or_malformed_id_is_refused(query: str, body: Any) -> None:
    with pytest.raises(Malformed):
        named("POST", "queue/join", query, body)


# -- the middleware, in front of a stand-in for Gradio ---------------------------------


class StandIn:
    """Gradio as far as the middleware sees it: joins answer an event id, a stream
    answers, an upload takes its body."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.events = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = scope["path"].removeprefix("/gradio_api/")
        self.seen.append(route)
        if route == "queue/join":
            self.events += 1
            answer: Any = JSONResponse({"event_id": f"event{self.events}"})
        elif route == "queue/data":
            answer = StreamingResponse(iter([b"data: {}\n\n"]), media_type="text/event-stream")
        elif route == "broken":
            answer = StreamingResponse(self._broken(), media_type="text/event-stream")
        else:
            answer = JSONResponse({"success": True})
        await answer(scope, receive, send)

    async def _broken(self) -> Any:
        yield b"data: {}\n\n"
        raise HTTPException(404)  # as Gradio does for a session it no longer holds


def stand_in_workspace(tmp_path: Path, auth: bool = True) -> Any:
    """The Workspace's surface the middleware uses; a session cookie is the user's name."""
    denied: list[dict[str, Any]] = []
    uploads = {"left": 2}

    def admit_received_files(caller: Caller, size: int) -> None:
        cost = max(1, -(-size // 2**20))
        if cost > uploads["left"]:
            raise RateLimited(42.0)
        uploads["left"] -= cost

    return SimpleNamespace(
        settings=Settings(data_dir=tmp_path, server={"auth": auth, "max_upload_mb": 1}),
        sessions=SimpleNamespace(user=lambda cookie: cookie),
        accounts=SimpleNamespace(caller=lambda name: Caller(name, False, frozenset())),
        audit=SimpleNamespace(record=lambda *args, **detail: denied.append(detail)),
        admit_received_files=admit_received_files,
        denied=denied,
    )


def browser(app: GradioSessions, user: str | None) -> TestClient:
    client = TestClient(app, base_url="http://citadel")
    if user:
        client.cookies.set(COOKIE, user)
    return client


def join(client: TestClient, session: str) -> httpx.Response:
    return client.post(
        "/gradio_api/queue/join", json={"data": [], "fn_index": 0, "session_hash": session}
    )


def test_nothing_reaches_gradio_without_a_session_or_with_another_users_ids(
    tmp_path: Path,
) -> None:
    gradio, workspace = StandIn(), stand_in_workspace(tmp_path)
    app = GradioSessions(gradio, workspace)
    alice, bob, anyone = browser(app, "alice"), browser(app, "bob"), browser(app, None)
    event = join(alice, "alices").json()["event_id"]
    seen = list(gradio.seen)
    cancel = {"session_hash": "alices", "fn_index": 0, "event_id": event}
    assert anyone.post("/gradio_api/cancel", json=cancel).status_code == 401
    assert anyone.get("/gradio_api/info").status_code == 401
    assert bob.post("/gradio_api/cancel", json=cancel).status_code == 403
    assert (
        bob.post("/gradio_api/cancel", json={**cancel, "session_hash": "bobs"}).status_code == 403
    )
    assert bob.get("/gradio_api/queue/data", params={"session_hash": "alices"}).status_code == 403
    assert join(bob, "alices").status_code == 403
    assert bob.get("/gradio_api/heartbeat/alices").status_code == 403
    assert gradio.seen == seen
    assert {d["path"] for d in workspace.denied} == {
        "/gradio_api/cancel",
        "/gradio_api/queue/data",
        "/gradio_api/queue/join",
        "/gradio_api/heartbeat/alices",
    }
    assert alice.post("/gradio_api/cancel", json=cancel).status_code == 200


def test_an_answer_stream_opens_only_once_an_event_was_joined(tmp_path: Path) -> None:
    gradio = StandIn()
    alice = browser(GradioSessions(gradio, stand_in_workspace(tmp_path)), "alice")
    stream = {"session_hash": "alices"}
    assert alice.get("/gradio_api/queue/data").status_code == 400
    assert alice.get("/gradio_api/queue/data", params=stream).status_code == 404
    join(alice, "alices")
    assert alice.get("/gradio_api/queue/data", params=stream).status_code == 200
    # The browser opens the stream again when chained events outlive the last one.
    assert alice.get("/gradio_api/queue/data", params=stream).status_code == 200
    assert gradio.seen == ["queue/join", "queue/data", "queue/data"]


def test_a_web_upload_is_counted_by_its_size_before_its_body(tmp_path: Path) -> None:
    gradio = StandIn()
    alice = browser(GradioSessions(gradio, stand_in_workspace(tmp_path)), "alice")
    sent = alice.post("/gradio_api/upload?upload_id=u1", content=b"x" * (2**20 + 1))
    assert sent.status_code == 200  # two units of the two allowed
    limited = alice.post("/gradio_api/upload?upload_id=u1", content=b"x")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "42"
    assert gradio.seen == ["upload"]


def test_an_error_inside_a_started_stream_is_logged_in_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    alice = browser(GradioSessions(StandIn(), stand_in_workspace(tmp_path)), "alice")
    with caplog.at_level(logging.WARNING, logger="ui.http.gradio_sessions"):
        for _ in range(30):
            assert alice.get("/gradio_api/broken").text == "data: {}\n\n"
    assert 1 <= len(caplog.records) <= 10  # a few a minute
    assert "HTTPException" in caplog.records[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records)


def test_with_authentication_off_gradio_is_left_alone(tmp_path: Path) -> None:
    gradio = StandIn()
    anyone = browser(GradioSessions(gradio, stand_in_workspace(tmp_path, auth=False)), None)
    cancel = {"session_hash": "anyones", "fn_index": 0, "event_id": "e"}
    assert anyone.post("/gradio_api/cancel", json=cancel).status_code == 200
    assert anyone.get("/gradio_api/queue/data", params={"session_hash": "x"}).status_code == 200
    assert gradio.seen == ["cancel", "queue/data"]


# -- the real server: bad answer-stream requests leave no traceback --------------------


@pytest.mark.slow
def test_bad_answer_stream_requests_are_refused_without_a_traceback(
    tmp_path: Path, embedder: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    ws = workspace_with(server_settings(tmp_path / "data"), embedder)
    add_user(ws, "alice", ("hr",))
    add_user(ws, "bob", ("eng",))
    try:
        with LiveServer(ws) as server:
            alice, bob = signed_in(server, "alice"), signed_in(server, "bob")
            fn = {d["api_name"]: d["id"] for d in alice.get("/config").json()["dependencies"]}
            clear = {"data": [], "fn_index": fn["new_conversation"], "event_data": None}
            joined = bob.post("/gradio_api/queue/join", json={**clear, "session_hash": "bobs"})
            assert joined.status_code == 200
            for params in (
                {},
                {"session_hash": "never-joined"},
                {"session_hash": ""},
                {"session_hash": "x" * 5000},
                {"session_hash": "../\x00;'"},
                {"session_hash": "bobs"},
            ):
                refused = alice.get("/gradio_api/queue/data", params=params)
                assert 400 <= refused.status_code < 500, (params, refused.text)
                assert len(refused.content) < 200
            hang_up(server.port, alice, "/gradio_api/queue/data?session_hash=left")
            # A stream read to its end, cleanly.
            joined = alice.post("/gradio_api/queue/join", json={**clear, "session_hash": "mine"})
            assert joined.status_code == 200
            mine = {"session_hash": "mine"}
            assert "close_stream" in alice.get("/gradio_api/queue/data", params=mine).text
            time.sleep(1)  # the hung-up request's end is logged, if at all, after it
    finally:
        ws.close()
    log = capfd.readouterr().err
    assert "Traceback" not in log, log[-3000:]


def signed_in(server: LiveServer, user: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=30)
    assert client.post("/login", data={"username": user, "password": PASSWORD}).is_redirect
    return client


def hang_up(port: int, client: httpx.Client, target: str) -> None:
    """A client that asks for a stream and leaves before it is answered."""
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode())
        time.sleep(0.3)
