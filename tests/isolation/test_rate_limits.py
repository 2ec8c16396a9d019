"""Rate limits: past the per-minute limit a caller gets 429 with Retry-After, on the REST
API, the OpenAI-compatible API and uploads alike, the web UI's included. Servers of their
own, not the campaign's.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live_server import PASSWORD, LiveServer, add_user, server_settings, workspace_with
from ui.service.limits import files_per_upload

pytestmark = pytest.mark.slow


def test_rate_limits_answer_429_with_retry_after(tmp_path: Path, embedder: Any) -> None:
    ws = workspace_with(server_settings(tmp_path / "data"), embedder)
    key = add_user(ws, "dave", ("green",))
    ws.catalog.assign("green-docs", "green")  # empty: each question stops right after the limit
    per_minute = ws.settings.server.requests_per_minute
    try:
        with LiveServer(ws) as server, server.client(key) as dave:
            for _ in range(per_minute):
                assert dave.post("/api/search", json={"question": "hi"}).status_code == 409
            limited = dave.post("/api/search", json={"question": "hi"})
            assert limited.status_code == 429
            assert int(limited.headers["retry-after"]) >= 1
            chat = dave.post(
                "/v1/chat/completions",
                json={"model": "citadel", "messages": [{"role": "user", "content": "hi"}]},
            )
            assert chat.status_code == 429 and int(chat.headers["retry-after"]) >= 1
            assert chat.json()["error"]["code"] == "rate_limit_exceeded"
            # The minute's files, in uploads as large as allowed (refused files count too:
            # the whole batch is counted before any is looked at), then one more file.
            allowance = ws.settings.server.uploads_per_minute
            most = files_per_upload(allowance)
            for start in range(0, allowance, most):
                files = [("files", (f"f{i}.exe", b"MZ")) for i in range(start, start + most)]
                spent = dave.post("/api/collections/green-docs/documents", files=files)
                assert spent.status_code == 202, spent.text
            one = [("files", ("one-more.exe", b"MZ"))]
            upload = dave.post("/api/collections/green-docs/documents", files=one)
            assert upload.status_code == 429 and int(upload.headers["retry-after"]) >= 1
    finally:
        ws.close()


def test_the_web_uis_upload_route_counts_bytes_against_the_upload_limit(
    tmp_path: Path, embedder: Any
) -> None:
    """Gradio's upload route takes files before anyone picks a collection: each request
    counts as files of the largest accepted size (here 3 a minute of 1 MB), and is refused
    before its body is received."""
    ws = workspace_with(
        server_settings(tmp_path / "data", max_upload_mb=1, uploads_per_minute=3), embedder
    )
    add_user(ws, "dave", ("green",))
    add_user(ws, "erin", ("green",))
    try:
        with LiveServer(ws) as server, web_session(server, "dave") as dave:
            assert gradio_upload(dave, 3 * MB // 4, 3 * MB // 4).status_code == 200  # counts 2
            assert gradio_upload(dave, 10).status_code == 200  # 3: the limit
            limited = gradio_upload(dave, 10)
            assert limited.status_code == 429, limited.text
            assert int(limited.headers["retry-after"]) >= 1
            assert "too many uploads" in limited.json()["detail"]
            # Refused from its head: 40 MB declared, a few bytes sent, answered at once.
            head = (
                "POST /gradio_api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Cookie: {'; '.join(f'{k}={v}' for k, v in dave.cookies.items())}\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\n"
                f"Content-Length: {40 * MB}\r\n\r\n--b\r\n"
            )
            assert first_line(server.port, head).startswith("HTTP/1.1 429")
            with web_session(server, "erin") as erin:  # a limit per user
                assert gradio_upload(erin, 10).status_code == 200
    finally:
        ws.close()


MB = 2**20


@contextlib.contextmanager
def web_session(server: LiveServer, user: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as browser:
        signed_in = browser.post("/login", data={"username": user, "password": PASSWORD})
        assert signed_in.status_code == 303
        yield browser


def gradio_upload(browser: httpx.Client, *sizes: int) -> httpx.Response:
    files = [("files", (f"notes{n}.txt", b"x" * size)) for n, size in enumerate(sizes)]
    return browser.post("/gradio_api/upload", files=files)


def first_line(port: int, head: str) -> str:
    """The status line the server answers `head` with, before any more of the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(head.encode())
        return conn.makefile("rb").readline().decode("latin-1")
