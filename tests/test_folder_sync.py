"""Folders kept in sync (`citadel sources`, /api/sources), over real HTTP with the real
pipeline, store and embedder: a folder that changes between syncs (added, edited, deleted,
renamed files, a file that cannot be read), a share that vanishes, the schedule, and the
team isolation of every route.

The file that cannot be read: the tests run as root, for whom `chmod 000` stops nothing. A
file of a share that is locked or gone half-way is modelled by what root cannot read
either: the file replaced by a symbolic link to nothing (its open fails, as a file removed
under the reader) and a named pipe (a reader of it would block, as on a locked file; the
pipeline never opens one). Both are still in the folder, so the document indexed before
must be kept, not pruned.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from rag.settings import SourcesSettings
from tests.cli_process import citadel
from tests.live_server import LiveServer, add_user, server_settings, two_teams, workspace_with
from ui.metadata.audit import AuditLog
from ui.metadata.database import Database
from ui.metadata.folders import FolderSources
from ui.service.folder_sync import FolderRejected, FolderSync, checked_folder
from ui.service.jobs import Job, JobQueue

pytestmark = pytest.mark.slow

TOPICS = {
    "a.md": "Parking permits are renewed every January at the front desk.",
    "b.md": "The cafeteria serves vegetarian lunches on Tuesdays and Thursdays.",
    "c.md": "Travel expenses above 500 euros need the approval of a director.",
    "keep.md": "Laptops are replaced every four years by the IT department.",
    "locked.md": "The quarterly report is due on the fifth working day.",
    "manual.md": "A file of the share with the name of a hand-uploaded document.",
}


def write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(f"# {Path(name).stem}\n\n{text}\n", encoding="utf-8")


def wait_jobs(client: httpx.Client, jobs: list[dict]) -> list[dict]:
    done = []
    for job in jobs:
        deadline = time.monotonic() + 300
        while job["state"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.1)
            job = client.get(f"/api/jobs/{job['id']}").json()
        done.append(job)
    return done


def sync(client: httpx.Client, **body: str) -> list[dict]:
    response = client.post("/api/sources/sync", json=body)
    assert response.status_code == 202, response.text
    return wait_jobs(client, response.json()["jobs"])


def source_of(client: httpx.Client, path: Path) -> dict:
    (row,) = [s for s in client.get("/api/sources").json() if s["path"] == str(path.resolve())]
    return row


def documents(client: httpx.Client, collection: str) -> dict[str, dict]:
    return {d["source"]: d for d in client.get(f"/api/collections/{collection}/documents").json()}


@pytest.fixture(scope="module")
def live(tmp_path_factory, embedder):
    base = tmp_path_factory.mktemp("folders")
    workspace = workspace_with(server_settings(base / "data"), embedder)
    keys = two_teams(workspace)
    with LiveServer(workspace) as server:
        server.keys = keys  # type: ignore[attr-defined]
        server.base = base  # type: ignore[attr-defined]
        yield server
    workspace.close()


@pytest.fixture(scope="module")
def share(live) -> Path:
    """A folder of the HR share and a second folder of the same collection, attached by
    the administrator, beside a document alice uploaded by hand."""
    folder, other = live.base / "share", live.base / "other"
    folder.mkdir()
    other.mkdir()
    for name, text in TOPICS.items():
        write(folder, name, text)
    write(other, "other.md", "Fire drills take place twice a year, announced a week ahead.")
    with live.client(live.keys["alice"]) as alice:
        manual = ("manual.md", b"# manual\n\nThe office opens at eight.\n")
        response = alice.post("/api/collections/hr-docs/documents", files=[("files", manual)])
        assert response.status_code == 202, response.text
        wait_jobs(alice, [response.json()["job"]])
    with live.client(live.keys["admin"]) as admin:
        for path in (folder, other):
            response = admin.post("/api/sources", json={"collection": "hr-docs", "path": str(path)})
            assert response.status_code == 201, response.text
    return folder


def test_a_folder_that_changes_between_syncs(live, share):
    folder = share
    with live.client(live.keys["admin"]) as admin:
        (first,) = sync(admin, source=str(folder))
        assert first["state"] == "done", first
        shown = source_of(admin, folder)
        assert shown["counts"] == {
            "added": 5,
            "updated": 0,
            "unchanged": 0,
            "removed": 0,
            "failed": 1,
            "skipped": 0,
        }
        # The share's manual.md would take the uploaded document's identity: refused.
        (clash,) = shown["failures"]
        assert clash["source"] == "manual.md" and "another document" in clash["reason"]
        assert shown["synced_at"] and shown["seconds"] > 0 and shown["error"] == ""
        # The job showed each file of the folder, as an upload's does.
        statuses = {f["name"]: f["status"] for f in first["files"]}
        assert statuses["a.md"] == "added" and statuses["manual.md"] == "failed"
        sync(admin, source=str(live.base / "other"))
        before = documents(admin, "hr-docs")
        assert {"a.md", "b.md", "c.md", "keep.md", "locked.md", "manual.md", "other.md"} == set(
            before
        )

        write(folder, "d.md", "New hires get their badge on the first morning.")
        write(folder, "b.md", "The cafeteria now closes at three in the afternoon.")
        (folder / "c.md").unlink()
        (folder / "keep.md").rename(folder / "renamed.md")
        (folder / "locked.md").unlink()
        (folder / "locked.md").symlink_to(folder / "gone-away.md")
        os.mkfifo(folder / "pipe.md")

        (second,) = sync(admin, source=str(folder))
        assert second["state"] == "done", second
        shown = source_of(admin, folder)
        assert shown["counts"] == {
            "added": 2,  # d.md, and renamed.md (read and embedded again: see the README)
            "updated": 1,  # b.md
            "unchanged": 1,  # a.md
            "removed": 2,  # c.md, keep.md
            "failed": 1,  # manual.md, still refused
            "skipped": 2,  # locked.md, pipe.md: present, unreadable
        }
        reasons = {f["source"]: f["reason"] for f in shown["failures"]}
        assert reasons["locked.md"] == "broken symbolic link"
        assert "not a regular file" in reasons["pipe.md"]

        after = documents(admin, "hr-docs")
        assert set(after) == {
            "a.md",
            "b.md",
            "d.md",
            "renamed.md",
            "locked.md",  # its last good version, kept while the file cannot be read
            "manual.md",  # the upload, untouched
            "other.md",  # the other folder's, untouched
        }
        for kept in ("manual.md", "other.md", "a.md"):
            assert after[kept] == before[kept]  # not written again
        assert after["b.md"]["sha256"] != before["b.md"]["sha256"]
        assert after["locked.md"]["sha256"] == before["locked.md"]["sha256"]
        assert after["renamed.md"]["sha256"] == before["keep.md"]["sha256"]
        # The edit is what a search finds now.
        found = admin.post(
            "/api/search", json={"question": "When does the cafeteria close?", "top_k": 1}
        ).json()
        assert found["passages"][0]["source"] == "b.md"

        # The failures are listed where the library shows them too.
        failures = admin.get("/api/collections/hr-docs/failures").json()
        assert {"locked.md", "pipe.md", "manual.md"} <= {f["source"] for f in failures}


def test_a_vanished_share_is_a_failure_and_prunes_nothing(live, share):
    folder, away = share, live.base / "share-away"
    with live.client(live.keys["admin"]) as admin:
        sync(admin, source=str(folder))
        held = documents(admin, "hr-docs")
        folder.rename(away)
        try:
            (job,) = sync(admin, source=str(folder))
            assert job["state"] == "failed"
            error = source_of(admin, folder)["error"]
            assert f"the folder {folder.resolve()} is not reachable" in error
            assert "kept" in error
            assert documents(admin, "hr-docs") == held
            # An unmounted share's mount point: an empty folder. Nothing is pruned either.
            folder.mkdir()
            (job,) = sync(admin, source=str(folder))
            assert job["state"] == "failed"
            assert "empty" in source_of(admin, folder)["error"]
            assert documents(admin, "hr-docs") == held
            folder.rmdir()
        finally:
            away.rename(folder)
        (job,) = sync(admin, source=str(folder))
        assert job["state"] == "done" and source_of(admin, folder)["error"] == ""


def test_one_sync_of_a_folder_at_a_time(tmp_path):
    """Asked again while its sync waits or runs, a folder gets that same job (a second one
    would read the whole share again); once it has ended, a new one. The queue's runner is
    held, so the first sync is still running when it is asked again, however fast."""
    release = threading.Event()
    queue = JobQueue(lambda job, done: release.wait(30))

    class HeldIngestion:  # the sync's one use of the ingestion service: queue the job
        def sync(self, actor, collection, folder, on_finish):
            return queue.submit(actor, collection, "sync", [folder], folder, on_finish)

    db = Database(tmp_path / "meta.sqlite3")
    sources = FolderSources(db)
    folder_sync = FolderSync(
        server_settings(tmp_path / "data"), HeldIngestion(), sources, AuditLog(db)
    )
    source = sources.add("docs", str(tmp_path), "root")
    try:
        first = folder_sync.sync("root", source)
        assert folder_sync.sync("alice", source) is first and first.kind == "sync"
        release.set()
        assert queue.wait(first, 30)
        assert folder_sync.sync("root", source) is not first
    finally:
        release.set()
        queue.close()


def test_attaching_checks_the_folder(live, share):
    cases = {
        "share": "absolute path",
        str(live.base / "nowhere"): "no such folder",
        str(share / "a.md"): "is not a folder",
        str(live.base / "data"): "data directory",
        str(live.base): "data directory",  # it holds the data directory
        str(share): "already attached",
        str(share / "sub"): "no such folder",
    }
    (share / "inner").mkdir(exist_ok=True)
    cases[str(share / "inner")] = "overlaps"
    with live.client(live.keys["admin"]) as admin:
        for path, why in cases.items():
            response = admin.post("/api/sources", json={"collection": "hr-docs", "path": path})
            assert response.status_code == 400, (path, response.text)
            assert why in response.json()["detail"], (path, response.text)
        response = admin.post("/api/sources", json={"collection": "../x", "path": str(share)})
        assert response.status_code in (400, 422)
    (share / "inner").rmdir()


def test_teams_see_and_sync_only_their_own_folders(live, share):
    with live.client(live.keys["bob"]) as bob:
        assert bob.get("/api/sources").json() == []
        assert bob.get("/api/sources", params={"collection": "hr-docs"}).status_code == 404
        response = bob.post("/api/sources", json={"collection": "eng-docs", "path": str(share)})
        assert response.status_code == 403
        for body in ({"collection": "hr-docs"}, {"source": str(share)}, {"source": "1"}):
            response = bob.post("/api/sources/sync", json=body)
            assert response.status_code == 404, (body, response.text)
        assert bob.post("/api/sources/sync", json={}).json() == {"jobs": []}
        response = bob.delete("/api/sources", params={"ref": str(share)})
        assert response.status_code == 403
    with live.client(live.keys["alice"]) as alice:
        mine = alice.get("/api/sources", params={"collection": "hr-docs"}).json()
        assert str(share.resolve()) in {s["path"] for s in mine}
        assert all("failures" in s for s in mine)
        (job,) = sync(alice, source=str(share))
        assert job["state"] == "done"
        # A sync the administrator started is the team's to follow, not another team's.
        with live.client(live.keys["admin"]) as admin:
            (theirs,) = sync(admin, source=str(share))
        assert alice.get(f"/api/jobs/{theirs['id']}").status_code == 200
        with live.client(live.keys["bob"]) as bob:
            assert bob.get(f"/api/jobs/{theirs['id']}").status_code == 404
        # A member of the team syncs its folders, but only an administrator attaches or
        # detaches one: the server reads it with its own rights.
        response = alice.post("/api/sources", json={"collection": "hr-docs", "path": "/etc"})
        assert response.status_code == 403
        assert alice.delete("/api/sources", params={"ref": str(share)}).status_code == 403


def test_the_cli_lists_syncs_and_detaches_through_the_server(live, share):
    env = {"CITADEL_SERVER__URL": live.url, "CITADEL_SERVER__API_KEY": live.keys["admin"]}
    listed = citadel(None, "sources", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    paths = {s["path"]: s for s in json.loads(listed.stdout)}
    assert str(share.resolve()) in paths
    synced = citadel(None, "sources", "sync", "hr-docs", "--source", str(share), env=env)
    # manual.md is still refused: a failed file makes the exit code 1.
    assert synced.returncode == 1, synced.stderr
    assert "manual.md" in synced.stdout and "another document" in synced.stdout
    other = live.base / "other"
    removed = citadel(None, "sources", "remove", str(other), env=env)
    assert removed.returncode == 0, removed.stderr
    assert "1 document(s) removed" in removed.stdout
    with live.client(live.keys["admin"]) as admin:
        assert "other.md" not in documents(admin, "hr-docs")
        assert "manual.md" in documents(admin, "hr-docs")
    member = {"CITADEL_SERVER__URL": live.url, "CITADEL_SERVER__API_KEY": live.keys["bob"]}
    refused = citadel(None, "sources", "add", "hr-docs", str(other), env=member)
    assert refused.returncode == 2
    assert "only administrators may attach folders" in refused.stderr


def test_the_schedule_syncs_unasked_and_stops_with_the_server(tmp_path, embedder):
    folder = tmp_path / "share"
    folder.mkdir()
    write(folder, "a.md", TOPICS["a.md"])
    every = SourcesSettings(sync_interval_min=0.01)  # 0.6 s
    settings = server_settings(tmp_path / "data").model_copy(update={"sources": every})
    workspace = workspace_with(settings, embedder)
    key = add_user(workspace, "root", admin=True)
    try:
        with LiveServer(workspace) as server, server.client(key) as admin:
            response = admin.post("/api/sources", json={"collection": "docs", "path": str(folder)})
            assert response.status_code == 201, response.text
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and "a.md" not in documents(admin, "docs"):
                time.sleep(0.2)
            shown = source_of(admin, folder)
            assert shown["synced_at"], shown
            # The last sync of several by now: a.md was added by the first, then unchanged.
            assert shown["counts"]["added"] + shown["counts"]["unchanged"] == 1, shown
            write(folder, "b.md", TOPICS["b.md"])
            while time.monotonic() < deadline and "b.md" not in documents(admin, "docs"):
                time.sleep(0.2)
            assert set(documents(admin, "docs")) == {"a.md", "b.md"}
        alive = [t.name for t in threading.enumerate() if t.name == "citadel-folder-sync"]
        assert alive == []
    finally:
        workspace.close()


def test_the_cli_works_on_the_data_directory_without_a_server(tmp_path):
    folder, data = tmp_path / "share", tmp_path / "data"
    folder.mkdir()
    write(folder, "a.md", TOPICS["a.md"])
    write(folder, "c.md", TOPICS["c.md"])
    added = citadel(data, "sources", "add", "docs", str(folder), "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["path"] == str(folder.resolve())
    first = citadel(data, "sources", "sync", "--json", "--quiet")
    assert first.returncode == 0, first.stderr
    (row,) = json.loads(first.stdout)
    assert row["counts"]["added"] == 2 and row["error"] == ""
    (folder / "c.md").unlink()
    second = citadel(data, "sources", "sync", "docs", "--quiet")
    assert second.returncode == 0, second.stderr
    (row,) = json.loads(citadel(data, "sources", "list", "--json").stdout)
    assert row["counts"]["removed"] == 1 and row["counts"]["unchanged"] == 1
    removed = citadel(data, "sources", "remove", str(row["id"]))
    assert removed.returncode == 0, removed.stderr
    assert "1 document(s) removed" in removed.stdout
    listed = citadel(data, "documents", "--collection", "docs", "--json")
    assert json.loads(listed.stdout)["documents"] == []
    relative = citadel(data, "sources", "add", "docs", "share")
    assert relative.returncode == 2 and "absolute path" in relative.stderr


def test_a_sync_detached_while_it_waits_never_runs():
    """The queue holds a folder's sync behind another job; the folder is detached: its
    sync ends as cancelled without running (it would add the documents just removed)."""
    release, ran = threading.Event(), []

    def runner(job: Job, done) -> None:
        ran.append(job.kind)
        release.wait(30)

    queue = JobQueue(runner)
    try:
        first = queue.submit("root", "docs", "upload", [])
        waiting = queue.submit("root", "docs", "sync", [], Path("/srv/share"))
        waiting.cancelled = "cancelled: the folder was detached"
        release.set()
        assert queue.wait(waiting, 30)
        assert first.state == "done" and ran == ["upload"]
        assert waiting.state == "failed" and waiting.message == waiting.cancelled
    finally:
        queue.close()


def test_attached_folders_must_lie_under_the_allowed_roots_when_set(tmp_path):
    shares = tmp_path / "shares"
    (shares / "hr").mkdir(parents=True)
    data = tmp_path / "data"

    assert checked_folder(str(shares / "hr"), data, [shares]) == (shares / "hr").resolve()
    with pytest.raises(FolderRejected, match=r"outside the folders documents may come from"):
        checked_folder("/etc", data, [shares])
    with pytest.raises(FolderRejected, match=r"outside"):  # a way out through a link
        (shares / "out").symlink_to("/etc")
        checked_folder(str(shares / "out"), data, [shares])
    assert checked_folder("/etc", data) == Path("/etc")  # none set: any readable folder
