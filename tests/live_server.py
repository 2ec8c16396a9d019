"""A real Citadel server for tests: uvicorn on 127.0.0.1 (free port) in a background
thread, serving `create_app(workspace)` over real HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from rag.settings import Settings
from rag.wiring import Services
from ui.http.app import uvicorn_config
from ui.service.workspace import Workspace

PASSWORD = "correct horse battery"  # every test user's password (>= 10 characters)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers (a hung server, or a
    firewall that swallows packets), open until the block ends."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        yield int(silent.getsockname()[1])


def server_settings(data_dir: Path, llm_host: str | None = None, **server: Any) -> Settings:
    """Settings for a test server: its own data directory; the model server at `llm_host`
    (None: a closed port, i.e. search mode)."""
    llm: dict[str, Any] = {
        "host": llm_host or f"http://127.0.0.1:{free_port()}",
        "first_token_timeout_s": 10,
        "idle_timeout_s": 5,
        "connect_timeout_s": 1,
    }
    return Settings(data_dir=data_dir, llm=llm, server=server)  # type: ignore[arg-type]


class ThreadedServer:
    """A uvicorn server in a background thread, ready once `probe` answers 200."""

    def __init__(self, config: uvicorn.Config, probe: str) -> None:
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._probe = probe

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self._probe, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"the test server of {self._probe} did not start")

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


class LiveServer:
    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn_config(workspace, "127.0.0.1", self.port, log_level="warning")
        self._server = ThreadedServer(config, f"{self.url}/healthz")

    def __enter__(self) -> LiveServer:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


def workspace_with(settings: Settings, embedder: Any = None) -> Workspace:
    """A workspace that reuses the session's embedder (loading it costs ~10 s)."""
    return Workspace(settings, Services(settings, preloaded_embedder=embedder))


def add_user(
    workspace: Workspace, name: str, teams: tuple[str, ...] = (), admin: bool = False
) -> str:
    """A user in `teams` (created if needed); returns an API key for them."""
    for team in teams:
        if not workspace.accounts.team_exists(team):
            workspace.accounts.add_team(team)
    workspace.accounts.add_user(name, PASSWORD, "admin" if admin else "member")
    for team in teams:
        workspace.accounts.add_member(team, name)
    return workspace.accounts.create_key(name, "tests")


def two_teams(workspace: Workspace) -> dict[str, str]:
    """An administrator (root), alice of team hr (collection hr-docs) and bob of team eng
    (collection eng-docs): their API keys by role (admin) or name."""
    keys = {
        "admin": add_user(workspace, "root", admin=True),
        "alice": add_user(workspace, "alice", ("hr",)),
        "bob": add_user(workspace, "bob", ("eng",)),
    }
    workspace.catalog.assign("hr-docs", "hr")
    workspace.catalog.assign("eng-docs", "eng")
    return keys


def upload_and_wait(workspace: Workspace, user: str, collection: str, files: list[Path]) -> None:
    """Ingest copies of `files` into `collection` through the upload path; fails loudly."""
    import shutil
    import tempfile

    caller = workspace.caller_named(user)
    assert caller is not None
    staged = []
    for f in files:
        temp = Path(tempfile.mkstemp()[1])
        shutil.copyfile(f, temp)
        staged.append((f.name, temp))
    result = workspace.upload(caller, collection, staged)
    assert not result.rejected, result.rejected
    assert result.job is not None
    assert workspace.jobs.wait(result.job, 300), "ingestion did not finish"
    assert result.job.state == "done", result.job.to_json()
    failed = [f for f in result.job.files if f.status == "failed"]
    assert not failed, [f.to_json() for f in failed]


def readable_with_a_key(live: LiveServer, name: str) -> set[str]:
    """The collections user `name` lists through the REST API, with a new key of theirs."""
    key = live.workspace.accounts.create_key(name, "test")
    with live.client(key) as api:
        listed = api.get("/api/collections")
    assert listed.status_code == 200, listed.text
    return {c["name"] for c in listed.json()}


def last_login(workspace: Workspace, name: str) -> tuple[str, dict[str, Any]]:
    """The action ("login" or "login_failed") and detail of `name`'s latest login."""
    entry = next(e for e in workspace.audit.entries(50, actor=name) if e.action.startswith("login"))
    return entry.action, entry.detail


def assert_admin_by_group(live: LiveServer, name: str, source: str) -> None:
    """After their single sign-on login, `name` is an administrator (their provider's admin
    group), shown as coming from `source` beside the local accounts, reading every
    collection the tests' mapping gives."""
    caller = live.workspace.accounts.caller(name)
    assert caller is not None and caller.admin
    key = live.workspace.accounts.create_key(name, "admin")
    with live.client(key) as api:
        users = {u["name"]: u["source"] for u in api.get("/api/users").json()}
    assert users[name] == source and users["olivia"] == "local"
    assert readable_with_a_key(live, name) == {"hr-docs", "legal-docs", "money"}


@contextmanager
def disabled(workspace: Workspace, name: str) -> Iterator[None]:
    """`name`'s account disabled for the block, enabled again after it however it ends."""
    workspace.accounts.set_disabled(name, True)
    try:
        yield
    finally:
        workspace.accounts.set_disabled(name, False)


def assert_refused_as_disabled(workspace: Workspace, name: str, response: httpx.Response) -> None:
    """The login page said the account is disabled, and the audit log says why."""
    assert response.status_code == 403 and "account is disabled" in response.text
    action, detail = last_login(workspace, name)
    assert action == "login_failed" and "disabled" in str(detail["reason"])
