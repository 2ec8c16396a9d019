"""The Administration tab's Folders screen (ui/web/folder_handlers.py) over a real
Workspace, pipeline and store: attach, Sync now with its progress, the last sync's counts
and failures as the administrator sees them (escaped), and the same rules as the REST API
for a member and for an account that no longer exists."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live_server import server_settings, workspace_with
from tests.test_web_admin import ALICE, GHOST, ROOT
from ui.service.workspace import Workspace
from ui.web.folder_handlers import FolderHandlers
from ui.web.handlers import NO_ACCOUNT, Handlers

pytestmark = pytest.mark.slow


@pytest.fixture
def ws(tmp_path: Path, embedder) -> Iterator[Workspace]:
    workspace = workspace_with(server_settings(tmp_path / "data", auth=True), embedder)
    workspace.accounts.add_team("hr")
    workspace.accounts.add_user("root", "root-password-1", "admin")
    workspace.accounts.add_user("alice", "alice-password-1")
    workspace.accounts.add_member("hr", "alice")
    workspace.catalog.assign("hr-docs", "hr")
    try:
        yield workspace
    finally:
        workspace.close()


def test_attach_sync_now_and_the_last_sync_shown(ws, tmp_path):
    folder = tmp_path / "share"
    folder.mkdir()
    (folder / "leave.md").write_text("# Leave\n\nTwenty-five days of leave a year.\n")
    os.mkfifo(folder / "<img src=x onerror=alert(1)>.md")
    folders = FolderHandlers(Handlers(ws))

    status, path, table, _, _ = folders.attach("hr-docs", str(folder), ROOT)
    assert "Attached" in status and path == ""
    assert "never" in table and str(folder) in table
    steps = list(folders.sync_now(None, ROOT))
    assert "syncing" in steps[0][0] or "waiting" in steps[0][0]  # progress while it runs
    final, table, picker, _ = steps[-1]
    assert "done" in final and "1 added" in final
    # How long it took, then added, updated, unchanged, removed, failed, skipped.
    counts = "".join(f"<td>{n}</td>" for n in (1, 0, 0, 0, 0, 1))
    assert re.search(rf"<td>\d+\.\d s</td>{counts}</tr>", table), table
    # The pipe is listed with its reason, its name escaped.
    assert "&lt;img src=x onerror=alert(1)&gt;.md" in table and "<img" not in table
    assert "not a regular file" in table
    assert picker.choices  # the folder can be picked for Sync now and Detach

    # A member of the team sees the folder and syncs it, but cannot attach or detach one.
    table, _, _ = folders.view(ALICE)
    assert str(folder) in table
    status, *_ = folders.attach("hr-docs", "/etc", ALICE)
    assert "only administrators may attach folders" in status
    status, *_ = folders.detach("1", False, ALICE)
    assert "only administrators may detach folders" in status
    assert "done" in list(folders.sync_now("1", ALICE))[-1][0]

    status, *_ = folders.attach("hr-docs", "relative/path", ROOT)
    assert "absolute path" in status
    status, *_ = folders.detach("1", False, ROOT)
    assert "1 document(s) removed" in status
    assert ws.documents(ws.caller_named("root"), "hr-docs") == []
    assert folders.view(GHOST)[0].count(NO_ACCOUNT.split(":")[0]) == 1
