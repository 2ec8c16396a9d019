"""Limits and origin checks in front of every route, over real HTTP: bodies are capped by
the bytes that arrive (chunked or not), uploads are received only once the caller is known
and stop being written at the per-file limit, and another site's page can neither read the
UI's responses nor act with a user's session."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.live_server import PASSWORD, LiveServer, add_user, server_settings, workspace_with
from ui.http.incoming import receive_files
from ui.service.errors import UploadRejected

pytestmark = pytest.mark.slow

MB = 2**20
EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def live(tmp_path_factory, embedder) -> Iterator[LiveServer]:
    settings = server_settings(
        tmp_path_factory.mktemp("guards"),
        max_upload_mb=1,
        uploads_per_minute=3,
        trusted_proxies="127.0.0.1",  # a deployment whose reverse proxy runs on this host
    )
    workspace = workspace_with(settings, embedder)
    keys = {"alice": add_user(workspace, "alice", ("hr",)), "carol": add_user(workspace, "carol")}
    workspace.catalog.assign("hr-docs", "hr")
    with LiveServer(workspace) as server:
        server.keys = keys  # type: ignore[attr-defined]
        yield server
    workspace.close()


def incoming(live: LiveServer) -> list[Path]:
    folder = live.workspace.settings.uploads_path / ".incoming"
    return sorted(folder.iterdir()) if folder.exists() else []


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b"x" * piece


def raw_exchange(port: int, head: str, body: bytes) -> str:
    """Send the request head and part of a body, then read what the server answers: a
    server that answers before the body is complete has not waited to receive it."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(head.encode() + body)
        reply = b""
        while b"\r\n\r\n" not in reply:
            data = conn.recv(65536)
            if not data:
                break
            reply += data
    return reply.decode("latin-1")


def test_a_chunked_json_body_is_cut_off_at_the_limit(live):
    for path, kind in (
        ("/api/search", "application/json"),
        ("/v1/chat/completions", "application/json"),
        ("/login", "application/x-www-form-urlencoded"),
        ("/gradio_api/queue/join", "application/json"),
    ):
        with live.client(live.keys["alice"]) as alice:
            if path.startswith("/gradio_api/"):  # the web UI's routes take a session, not a key
                alice.post("/login", data={"username": "alice", "password": PASSWORD})
            response = alice.post(path, content=chunks(3 * MB), headers={"Content-Type": kind})
        assert response.status_code == 413, (path, response.text)
        assert "too large" in response.text.lower()
    with live.client(live.keys["alice"]) as alice:  # a normal request still works
        assert alice.get("/api/collections").status_code == 200


def test_an_upload_is_not_received_before_its_caller_is_known(live):
    head = (
        "POST /api/collections/hr-docs/documents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {40 * MB}\r\n\r\n"
    )
    reply = raw_exchange(live.port, head, b"--b\r\n")
    assert reply.startswith("HTTP/1.1 401"), reply[:200]
    # A member of no team: the collection is unknown to her, before any byte of the file.
    carol = head.replace("\r\n\r\n", f"\r\nAuthorization: Bearer {live.keys['carol']}\r\n\r\n")
    assert raw_exchange(live.port, carol, b"--b\r\n").startswith("HTTP/1.1 404")
    assert incoming(live) == []


def multipart(
    files: list[tuple[str, Iterator[bytes]]], boundary: str = "citadel"
) -> Iterator[bytes]:
    for name, content in files:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        yield from content
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def test_a_file_over_the_limit_is_refused_while_the_others_go_in(live):
    note = b"# Parking\n\nVisitors park on level minus two, near the lifts.\n"
    body = multipart([("huge.md", chunks(5 * MB)), ("parking.md", iter([note]))])
    with live.client(live.keys["alice"]) as alice:
        response = alice.post(
            "/api/collections/hr-docs/documents",
            content=body,  # a generator: sent chunked, with no Content-Length to trust
            headers={"Content-Type": "multipart/form-data; boundary=citadel"},
        )
        assert response.status_code == 202, response.text
        result = response.json()
        assert result["rejected"] == [
            {"name": "huge.md", "reason": "file too large: the limit is 1 MB"}
        ]
        job = result["job"]
        assert [f["name"] for f in job["files"]] == ["parking.md"]
        while job["state"] in ("queued", "running"):
            job = alice.get(f"/api/jobs/{job['id']}").json()
        assert job["files"][0]["status"] == "added"
    assert incoming(live) == []


def test_uploads_over_the_rate_limit_are_refused_before_their_body(live):
    with live.client(live.keys["alice"]) as alice:
        for _ in range(4):  # the limit is 3 files a minute; the previous test spent some
            response = alice.post(
                "/api/collections/hr-docs/documents",
                files=[("files", ("a.md", b"# A\n\nAlpha.\n"))],
            )
            if response.status_code == 429:
                break
        assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1
    head = (
        "POST /api/collections/hr-docs/documents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {live.keys['alice']}\r\n"
        f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {40 * MB}\r\n\r\n"
    )
    assert raw_exchange(live.port, head, b"--b\r\n").startswith("HTTP/1.1 429")


def test_another_sites_page_cannot_read_the_ui_or_act_with_a_session(live):
    with live.client() as browser:
        signed_in = browser.post("/login", data={"username": "alice", "password": PASSWORD})
        assert signed_in.status_code == 303
        # Reading: no CORS grant, so the browser keeps the response from the other page.
        config = browser.get("/config", headers={"Origin": EVIL})
        assert config.status_code == 200
        assert "access-control-allow-origin" not in config.headers
        preflight = browser.options(
            "/gradio_api/queue/join",
            headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in preflight.headers
        # Acting: refused whatever the route, with the session cookie or to sign in.
        join = {"data": [], "fn_index": 0, "session_hash": "abc"}
        for headers in ({"Origin": EVIL}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
            sent = browser.post("/gradio_api/queue/join", json=join, headers=headers)
            assert sent.status_code == 403, (headers, sent.text)
            login = browser.post(
                "/login", data={"username": "alice", "password": PASSWORD}, headers=headers
            )
            assert login.status_code == 403
        # The server's own page is welcome.
        own = browser.post(
            "/login",
            data={"username": "alice", "password": PASSWORD},
            headers={"Origin": live.url, "Sec-Fetch-Site": "same-origin"},
        )
        assert own.status_code == 303
    # An API client with a key holds no ambient credential: its origin does not matter.
    with live.client(live.keys["alice"]) as alice:
        asked = alice.post("/api/search", json={"question": "parking"}, headers={"Origin": EVIL})
        assert asked.status_code != 403


def test_receive_files_never_holds_more_than_the_limit_on_disk(tmp_path):
    limit = 256 * 1024
    seen: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for piece in multipart([("big.bin", chunks(4 * MB, 16 * 1024)), ("ok.txt", iter([b"hi"]))]):
            seen.append(sum(p.stat().st_size for p in tmp_path.iterdir()))
            yield piece

    received = asyncio.run(
        receive_files("multipart/form-data; boundary=citadel", body(), tmp_path, limit, 5)
    )
    assert [(r.name, r.reason) for r in received] == [
        ("big.bin", "file too large: the limit is 0.25 MB"),
        ("ok.txt", ""),
    ]
    assert max(seen) <= limit
    (kept,) = tmp_path.iterdir()
    assert kept.read_bytes() == b"hi" and received[1].path == kept


def test_receive_files_leaves_nothing_behind_on_a_broken_body(tmp_path):
    async def body() -> AsyncIterator[bytes]:
        yield b'--citadel\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n\r\n'
        yield b"half a file"
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        asyncio.run(
            receive_files("multipart/form-data; boundary=citadel", body(), tmp_path, 1000, 5)
        )
    assert list(tmp_path.iterdir()) == []

    async def garbage() -> AsyncIterator[bytes]:
        yield b"this is not multipart at all"

    for content_type in ("application/json", "multipart/form-data; boundary=citadel"):
        with pytest.raises(UploadRejected):
            asyncio.run(receive_files(content_type, garbage(), tmp_path, 1000, 5))
    assert list(tmp_path.iterdir()) == []


def test_a_trusted_proxy_reports_the_client_address_and_https(live):
    forwarded = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
    with live.client() as browser:
        signed_in = browser.post(
            "/login", data={"username": "alice", "password": PASSWORD}, headers=forwarded
        )
    assert signed_in.status_code == 303
    assert "secure" in signed_in.headers["set-cookie"].lower()  # the user's side is https
    (entry,) = live.workspace.audit.entries(1, actor="alice", action="login")
    assert entry.client == "203.0.113.7"  # the user's address, not the proxy's


def test_strangers_cannot_flood_the_audit_log_with_refusals(live):
    with live.client() as stranger:
        for n in range(100):
            assert stranger.get(f"/files/doc{n}", params={"u": "a", "e": "1", "s": "b"}).is_error
    recorded = live.workspace.audit.entries(1000, actor="anonymous", action="denied")
    assert 1 <= len(recorded) <= 30  # the probe is on record, but not a hundred times


def test_forwarded_addresses_are_not_believed_unless_a_proxy_is_named(tmp_path, embedder):
    """At the default settings a local process forging X-Forwarded-For with a new address
    at each attempt stays one address: the login limit holds and the audit log records
    where the attempts really came from."""
    workspace = workspace_with(server_settings(tmp_path, logins_per_minute=5), embedder)
    add_user(workspace, "alice")
    try:
        with LiveServer(workspace) as server, server.client() as stranger:
            codes = [
                stranger.post(
                    "/login",
                    data={"username": "alice", "password": f"guess {n}"},
                    headers={"X-Forwarded-For": f"203.0.113.{n}"},
                ).status_code
                for n in range(8)
            ]
        assert codes == [401] * 5 + [429] * 3
        attempts = workspace.audit.entries(10, actor="alice", action="login_failed")
        assert attempts and {e.client for e in attempts} == {"127.0.0.1"}
    finally:
        workspace.close()


@pytest.mark.parametrize("named", [[], ["citadel.lan"]])
def test_without_authentication_only_this_machines_names_are_answered(tmp_path, embedder, named):
    """How `make demo` serves: a DNS-rebinding page (its own name resolved to 127.0.0.1)
    reaches the server under that name, and would be answered as the administrator."""
    settings = server_settings(tmp_path, auth=False, allowed_hosts=named)
    workspace = workspace_with(settings, embedder)
    try:
        with LiveServer(workspace) as server, server.client() as local:
            for host in ("127.0.0.1", "localhost", f"localhost:{server.port}", "[::1]:8000"):
                assert local.get("/api/collections", headers={"Host": host}).status_code == 200
            for host in ("rebind.evil.example", f"rebind.evil.example:{server.port}"):
                for path in ("/api/collections", "/api/audit", "/"):
                    refused = local.get(path, headers={"Host": host})
                    assert refused.status_code == 421, (host, path)
                    assert "CITADEL_SERVER__ALLOWED_HOSTS" in refused.json()["detail"]
            searched = local.post(
                "/api/search", json={"question": "leave"}, headers={"Host": "rebind.evil.example"}
            )
            assert searched.status_code == 421
            lan = local.get("/api/collections", headers={"Host": "citadel.lan:8000"})
            assert lan.status_code == (200 if named else 421)
    finally:
        workspace.close()


def test_with_authentication_any_name_reaches_the_login_unless_names_are_given(tmp_path, embedder):
    for named, expected in (([], 401), (["citadel.example.com"], 421)):
        settings = server_settings(tmp_path / str(len(named)), allowed_hosts=named)
        workspace = workspace_with(settings, embedder)
        try:
            with LiveServer(workspace) as server, server.client() as client:
                other = client.get("/api/collections", headers={"Host": "10.0.0.7:8000"})
                assert other.status_code == expected
                assert client.get("/healthz", headers={"Host": "localhost"}).status_code == 200
        finally:
            workspace.close()
