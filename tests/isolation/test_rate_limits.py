"""Rate limits: past the per-minute limit a caller gets 429 with Retry-After, on the REST
API, the OpenAI-compatible API and uploads alike. A server of its own, not the campaign's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.live_server import LiveServer, add_user, server_settings, workspace_with

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
            files = [("files", (f"f{i}.exe", b"MZ")) for i in range(31)]
            upload = dave.post("/api/collections/green-docs/documents", files=files)
            assert upload.status_code == 429 and int(upload.headers["retry-after"]) >= 1
    finally:
        ws.close()
