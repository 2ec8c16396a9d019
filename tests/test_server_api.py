"""The REST API over real HTTP, as a team member and an administrator use it: upload with
per-file results, the library, search, ask (JSON and server-sent events), feedback exported
as a question set, health probes."""

from __future__ import annotations

import json

import httpx
import pytest

from rag.evaluation import load_questions
from tests.conftest import SAMPLES
from tests.fake_ollama import FakeOllama, Script
from tests.live_server import LiveServer, server_settings, two_teams, workspace_with

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fake() -> FakeOllama:
    with FakeOllama() as server:
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory, embedder, fake):
    settings = server_settings(tmp_path_factory.mktemp("server"), llm_host=fake.url)
    workspace = workspace_with(settings, embedder)
    keys = two_teams(workspace)
    with LiveServer(workspace) as server:
        server.keys = keys  # type: ignore[attr-defined]
        yield server
    workspace.close()


def upload(client: httpx.Client, collection: str, *files: tuple[str, bytes]) -> dict:
    response = client.post(
        f"/api/collections/{collection}/documents",
        files=[("files", (name, data)) for name, data in files],
    )
    assert response.status_code == 202, response.text
    body = response.json()
    job = body["job"]
    while job and job["state"] in ("queued", "running"):
        job = client.get(f"/api/jobs/{job['id']}").json()
    body["job"] = job
    return body


@pytest.fixture(scope="module")
def hr_library(live):
    """The handbook, the security policy PDF and one broken 'PDF', uploaded by alice."""
    with live.client(live.keys["alice"]) as alice:
        body = upload(
            alice,
            "hr-docs",
            ("handbook.md", (SAMPLES / "handbook.md").read_bytes()),
            (
                "security.pdf",
                (SAMPLES / "policies/information-security-policy.pdf").read_bytes(),
            ),
            ("notes.txt", b"\x7fELF\x02\x01\x01 not text at all"),
            ("truncated.pdf", b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog"),
        )
    return body


def test_upload_reports_each_file_and_keeps_going_after_bad_ones(hr_library):
    rejected = {r["name"]: r["reason"] for r in hr_library["rejected"]}
    assert list(rejected) == ["notes.txt"]
    assert "does not match" in rejected["notes.txt"]
    files = {f["name"]: f for f in hr_library["job"]["files"]}
    assert hr_library["job"]["state"] == "done"
    assert files["handbook.md"]["status"] == "added" and files["handbook.md"]["chunks"] > 0
    assert files["security.pdf"]["status"] == "added"
    assert files["truncated.pdf"]["status"] == "failed" and files["truncated.pdf"]["reason"]
    # The stages the web UI shows, in the same job: each file done, its chunks counted.
    assert files["handbook.md"]["stage"] == "done"
    assert files["handbook.md"]["chunks_done"] == files["handbook.md"]["chunks_total"] > 0
    assert files["truncated.pdf"]["stage"] == "done"
    assert hr_library["job"]["seconds_left"] == 0.0
    assert "chunks_per_second" in hr_library["job"]


def test_a_failed_upload_is_retried_over_rest_and_reported_again(live, hr_library):
    with live.client(live.keys["alice"]) as alice:
        job = alice.post("/api/collections/hr-docs/failures/truncated.pdf/retry")
        assert job.status_code == 202, job.text
        job = job.json()
        while job["state"] in ("queued", "running"):
            job = alice.get(f"/api/jobs/{job['id']}").json()
        assert job["kind"] == "retry" and job["files"][0]["status"] == "failed"
        listed = alice.get("/api/collections/hr-docs/failures").json()
        assert "truncated.pdf" in [f["source"] for f in listed]
        assert alice.post("/api/collections/hr-docs/failures/handbook.md/retry").status_code == 404
    with live.client(live.keys["bob"]) as bob:  # not his team's collection
        assert bob.post("/api/collections/hr-docs/failures/truncated.pdf/retry").status_code == 404


def test_library_lists_filters_sorts_and_shows_failures(live, hr_library):
    with live.client(live.keys["alice"]) as alice:
        docs = alice.get("/api/collections/hr-docs/documents").json()
        assert [d["source"] for d in docs] == ["handbook.md", "security.pdf"]
        assert all("root" not in d for d in docs)  # server paths are not shown
        only = alice.get("/api/collections/hr-docs/documents", params={"q": "secur"}).json()
        assert [d["source"] for d in only] == ["security.pdf"]
        by_size = alice.get(
            "/api/collections/hr-docs/documents", params={"sort": "size", "descending": True}
        ).json()
        assert [d["size"] for d in by_size] == sorted((d["size"] for d in docs), reverse=True)
        failures = alice.get("/api/collections/hr-docs/failures").json()
        assert [f["source"] for f in failures] == ["truncated.pdf"]
        collections = alice.get("/api/collections").json()
        assert [(c["name"], c["documents"]) for c in collections] == [("hr-docs", 2)]


def test_search_returns_cited_passages_of_the_callers_collections(live, hr_library):
    with live.client(live.keys["alice"]) as alice:
        body = alice.post(
            "/api/search", json={"question": "How many days of paid annual leave?"}
        ).json()
    top = body["passages"][0]
    assert top["source"] == "handbook.md" and "25 days" in top["text"]


def test_ask_streams_server_sent_events_and_ends_with_the_checked_answer(live, fake, hr_library):
    fake.enqueue(Script(tokens=["Employees get ", "25 days ", "of paid leave [1]", "."]))
    with (
        live.client(live.keys["alice"]) as alice,
        alice.stream(
            "POST",
            "/api/ask",
            json={"question": "How many days of paid annual leave?", "stream": True},
        ) as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [
            (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("data: ")[1]))
            for block in response.read().decode().strip().split("\n\n")
        ]
    kinds = [k for k, _ in events]
    assert kinds[-1] == "answer" and set(kinds[:-1]) == {"delta"} and len(kinds) > 2
    answer = events[-1][1]
    assert answer["answer"] == "Employees get 25 days of paid leave [1]."
    (citation,) = answer["citations"]
    assert citation["source"] == "handbook.md" and citation["link"].startswith("/files/")
    # The signed link opens the file for the user it was made for, and for nobody else:
    # a forwarded link is worth nothing without alice's session or key.
    with live.client(live.keys["alice"]) as alice:
        opened = alice.get(citation["link"])
    assert opened.status_code == 200 and b"25 days" in opened.content
    with live.client() as anonymous, live.client(live.keys["bob"]) as bob:
        assert anonymous.get(citation["link"]).status_code == 404
        assert bob.get(citation["link"]).status_code == 404


def test_pdf_citation_link_opens_the_page(live, fake, hr_library):
    fake.enqueue(Script(tokens=["Report it within one hour [1]."]))
    with live.client(live.keys["alice"]) as alice:
        answer = alice.post(
            "/api/ask",
            json={"question": "How fast must I report a stolen laptop?"},
        ).json()
        pdf = [c for c in answer["citations"] if c["file_type"] == "pdf"]
        assert pdf, answer["citations"]
        link = pdf[0]["link"]
        assert link.split("#")[1] == f"page={pdf[0]['pages'][0]}"
        opened = alice.get(link.split("#")[0])
    assert opened.headers["content-type"] == "application/pdf"
    assert opened.headers["content-disposition"].startswith("inline")
    # No sandbox for PDFs: browsers refuse to run their PDF viewer in one.
    assert "content-security-policy" not in opened.headers
    assert opened.content.startswith(b"%PDF-")
    (download,) = live.workspace.audit.entries(1, actor="alice", action="download")
    assert download.detail["source"] == pdf[0]["source"]


def test_feedback_is_kept_with_the_answer_and_exports_as_a_question_set(
    live, fake, hr_library, tmp_path
):
    fake.enqueue(Script(tokens=["25 days [1]."]))
    with live.client(live.keys["alice"]) as alice:
        answer = alice.post(
            "/api/ask", json={"question": "How many days of paid annual leave?"}
        ).json()
        sent = alice.post(
            "/api/feedback", json={"answer_id": answer["id"], "rating": 1, "comment": "exact"}
        )
        assert sent.status_code == 201
        assert alice.get("/api/feedback/export").status_code == 403  # admins only
    with live.client(live.keys["bob"]) as bob:  # someone else's answer: unknown to bob
        assert (
            bob.post("/api/feedback", json={"answer_id": answer["id"], "rating": -1}).status_code
            == 404
        )
    with live.client(live.keys["admin"]) as admin:
        exported = admin.get("/api/feedback/export")
    qa = tmp_path / "qa.jsonl"
    qa.write_bytes(exported.content)
    (item,) = load_questions(qa)
    assert item.question == "How many days of paid annual leave?"
    assert item.sources == ("handbook.md",)
    (rated,) = live.workspace.audit.entries(1, actor="alice", action="feedback")
    assert rated.detail["rating"] == 1 and rated.collection == "hr-docs"


def test_delete_and_reingest_a_document(live, hr_library):
    with live.client(live.keys["alice"]) as alice:
        body = upload(alice, "hr-docs", ("to-delete.md", b"# Parking\n\nThe car park opens at 7."))
        assert body["job"]["files"][0]["status"] == "added"
        docs = {
            d["source"]: d["id"] for d in alice.get("/api/collections/hr-docs/documents").json()
        }
        job = alice.post(f"/api/documents/{docs['to-delete.md']}/reingest").json()
        while job["state"] in ("queued", "running"):
            job = alice.get(f"/api/jobs/{job['id']}").json()
        assert job["files"][0]["status"] == "updated"  # read again: the same document
        removed = alice.delete(f"/api/documents/{docs['to-delete.md']}")
        assert removed.status_code == 200 and removed.json()["chunks_removed"] >= 1
        assert alice.get(f"/api/documents/{docs['to-delete.md']}").status_code == 404
        left = [d["source"] for d in alice.get("/api/collections/hr-docs/documents").json()]
    assert left == ["handbook.md", "security.pdf"]
    entries = live.workspace.audit.entries(1000, actor="alice")
    about = [e.action for e in entries if e.detail.get("source") == "to-delete.md"]
    assert about == ["delete", "reingest"]  # newest first; re-ingesting is not a download
    (uploaded,) = [e for e in entries if "to-delete.md" in e.detail.get("files", [])]
    assert uploaded.action == "upload" and uploaded.collection == "hr-docs"


def test_without_a_valid_key_nothing_answers_and_members_cannot_administer(live):
    with live.client() as anonymous:
        assert anonymous.get("/api/collections").status_code == 401
    with live.client("ctl_not-a-real-key") as forged:
        assert forged.post("/api/search", json={"question": "leave"}).status_code == 401
    with live.client(live.keys["alice"]) as alice:
        assert alice.get("/api/users").status_code == 403
        assert alice.get("/api/audit").status_code == 403
        assert (
            alice.post("/api/collections", json={"name": "mine", "team": "hr"}).status_code == 403
        )


def test_audit_log_records_questions_uploads_and_what_was_shown(live, hr_library):
    with live.client(live.keys["admin"]) as admin:
        entries = admin.get("/api/audit", params={"actor": "alice", "limit": 1000}).json()
    actions = {e["action"] for e in entries}
    assert {"upload", "ask", "search"} <= actions
    asked = next(e for e in entries if e["action"] == "ask")
    assert asked["detail"]["question"] and asked["detail"]["shown"][0]["source"]


def test_admin_manages_users_teams_collections_and_starters(live):
    with live.client(live.keys["admin"]) as admin:
        assert admin.post("/api/teams", json={"name": "legal"}).status_code == 201
        created = admin.post(
            "/api/users",
            json={"name": "carol", "password": "a long enough pw", "teams": ["legal"]},
        )
        assert created.status_code == 201
        assert (
            admin.post("/api/collections", json={"name": "contracts", "team": "legal"}).status_code
            == 201
        )
        starters = admin.put(
            "/api/collections/contracts/starters", json={"questions": ["Who signs NDAs?"]}
        )
        assert starters.json() == ["Who signs NDAs?"]
        weak = admin.post("/api/users", json={"name": "dave", "password": "short"})
        assert weak.status_code == 400 and "too short" in weak.json()["detail"]
    carol = live.workspace.caller_named("carol")
    assert [c.name for c in live.workspace.collections(carol)] == ["contracts"]
    assert live.workspace.starters(carol, "contracts") == ["Who signs NDAs?"]


def test_readiness_reports_store_embedder_and_model_server_separately(
    live, fake, tmp_path, embedder
):
    with live.client() as anonymous:
        ready = anonymous.get("/readyz")
    body = ready.json()
    assert ready.status_code == 200 and body["ready"] is True
    assert body["store"]["ok"] and body["embedder"]["ok"]
    assert body["model_server"] == {"ok": True, "model": "llama3.2:3b"}
    # A model that is not pulled, and a server that does not answer: still ready (search
    # mode), and the report says what to do.
    missing = server_settings(tmp_path / "a", llm_host=fake.url)
    missing = missing.model_copy(
        update={"llm": missing.llm.model_copy(update={"model": "qwen9:404b"})}
    )
    report = workspace_with(missing, embedder).readiness()
    assert report["model_server"]["ok"] is False
    assert "ollama pull qwen9:404b" in report["model_server"]["error"]
    down = workspace_with(server_settings(tmp_path / "b"), embedder).readiness()
    assert (
        down["model_server"]["ok"] is False and "no Ollama server" in down["model_server"]["error"]
    )
    assert down["store"]["ok"] and down["embedder"]["ok"]


def test_oversized_and_empty_requests_get_clear_errors(live):
    with live.client(live.keys["alice"]) as alice:
        empty = alice.post("/api/search", json={"question": ""})
        assert empty.status_code == 422
        nothing = alice.post("/api/collections/hr-docs/documents", files=[("files", ("e.md", b""))])
        assert nothing.status_code == 202 and "empty" in nothing.json()["rejected"][0]["reason"]


def test_the_cli_goes_through_a_running_server_when_one_is_configured(live, fake, tmp_path):
    from tests.test_cli import citadel

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "parking.md").write_text("# Parking\n\nVisitors park on level -2 of the garage.\n")
    (docs / "broken.pdf").write_bytes(b"not a pdf")
    env = {"CITADEL_SERVER__URL": live.url, "CITADEL_SERVER__API_KEY": live.keys["bob"]}
    # The data directory is never opened: the server owns the store.
    unused = tmp_path / "unused"
    ingested = citadel(unused, "ingest", str(docs), "-c", "eng-docs", "--json", env=env)
    assert ingested.returncode == 1, ingested.stderr  # one file failed
    outcomes = {o["source"]: o for o in json.loads(ingested.stdout)["files"]}
    assert outcomes["parking.md"]["status"] == "added"
    assert outcomes["broken.pdf"]["status"] == "failed" and outcomes["broken.pdf"]["reason"]
    found = citadel(unused, "search", "where do visitors park", "-c", "eng-docs", "--json", env=env)
    assert json.loads(found.stdout)["passages"][0]["source"] == "parking.md"
    listed = citadel(unused, "documents", "-c", "eng-docs", "--json", env=env)
    assert "parking.md" in [d["source"] for d in json.loads(listed.stdout)["documents"]]
    mine = citadel(unused, "collections", "--json", env=env)
    assert [c["name"] for c in json.loads(mine.stdout)["collections"]] == ["eng-docs"]
    foreign = citadel(unused, "search", "leave", "-c", "hr-docs", env=env)
    assert foreign.returncode == 2 and "no such collection" in foreign.stderr
    fake.enqueue(Script(tokens=["Visitors park on level -2 [1]."]))
    asked = citadel(unused, "ask", "Where do visitors park?", "-c", "eng-docs", "--json", env=env)
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert answer["answer"] == "Visitors park on level -2 [1]." and not answer["search_mode"]
    assert answer["citations"][0]["source"] == "parking.md"
    removed = citadel(unused, "remove", str(docs / "parking.md"), "-c", "eng-docs", env=env)
    assert removed.returncode == 0 and "removed parking.md" in removed.stdout, removed.stderr
    (entry,) = live.workspace.audit.entries(1, actor="bob", action="delete")
    assert entry.detail["source"] == "parking.md"  # audited by the server, as bob
    assert not unused.exists()


def test_web_login_sets_a_session_that_a_password_change_ends(live):
    from tests.live_server import PASSWORD

    with httpx.Client(base_url=live.url, timeout=30) as browser:
        first = browser.get("/")
        assert first.status_code == 303 and first.headers["location"] == "/login"
        assert browser.get("/config").status_code == 401  # Gradio's API: session required
        # Names match whatever their case; the audit records the account's own spelling.
        wrong = browser.post("/login", data={"username": "ALICE", "password": "not it at all"})
        assert wrong.status_code == 401 and "Wrong username or password" in wrong.text
        ok = browser.post("/login", data={"username": "Alice", "password": PASSWORD})
        assert ok.status_code == 303 and "citadel_session" in browser.cookies
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie
        page = browser.get("/")
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        csp = page.headers["content-security-policy"]  # the backstop: nothing from elsewhere
        assert "img-src 'self' data: blob:;" in csp and "connect-src 'self';" in csp
        assert "default-src 'self';" in csp and "frame-ancestors 'none'" in csp
        assert browser.get("/session").status_code == 204
        assert browser.get("/config").status_code == 200
        live.workspace.accounts.set_password("alice", PASSWORD + "!")  # ends the session
        try:
            assert browser.get("/session").status_code == 401
            ended = browser.get("/")
            assert ended.status_code == 303 and ended.headers["location"] == "/login?ended=session"
            told = browser.get(ended.headers["location"])
            assert "Your session ended" in told.text
        finally:
            live.workspace.accounts.set_password("alice", PASSWORD)
    entries = live.workspace.audit.entries(10, actor="alice")
    assert {"login", "login_failed"} <= {e.action for e in entries}
    assert not live.workspace.audit.entries(10, actor="ALICE")
    assert all(e.client == "127.0.0.1" for e in entries if e.action.startswith("login"))


def test_logging_out_ends_the_session_on_the_server(live):
    from tests.live_server import PASSWORD

    with httpx.Client(base_url=live.url, timeout=30) as browser:
        assert browser.post("/login", data={"username": "alice", "password": PASSWORD}).is_redirect
        session = browser.cookies["citadel_session"]
        # A link (or an <img> on another page) cannot log anyone out: only the button's POST.
        assert browser.get("/logout").headers["location"] == "/"
        assert browser.get("/").status_code == 200
        out = browser.post("/logout")
        assert out.status_code == 303 and out.headers["location"] == "/login?ended=out"
        assert "You are signed out" in browser.get("/login?ended=out").text
        assert "citadel_session" not in browser.cookies
    # A copy of the cookie taken before (another tab, a stolen one) opens nothing now.
    with httpx.Client(base_url=live.url, timeout=30, cookies={"citadel_session": session}) as copy:
        assert copy.get("/").status_code == 303
        assert copy.get("/config").status_code == 401


def test_refused_accesses_are_audited_and_oversized_bodies_refused_unread(live, hr_library):
    alice_doc = live.workspace.documents(live.workspace.caller_named("alice"), "hr-docs")[0].id
    with live.client(live.keys["bob"]) as bob:
        assert bob.get(f"/api/documents/{alice_doc}").status_code == 404
        question = "x" * (2 << 20)  # a 2 MB JSON body: refused by its declared size
        huge = bob.post("/api/search", json={"question": question})
        assert huge.status_code == 413 and "too large" in huge.json()["detail"]
    (denied,) = live.workspace.audit.entries(1, actor="bob", action="denied")
    assert denied.detail["path"] == f"/api/documents/{alice_doc}"


def test_reingesting_a_file_of_an_ingested_tree_keeps_its_identity(live, tmp_path):
    from ingest.pipeline import IngestPipeline

    tree = tmp_path / "tree"
    (tree / "policies").mkdir(parents=True)
    (tree / "policies" / "remote.md").write_text("# Remote work\n\nTwo remote days a week.\n")
    services = live.workspace.services
    IngestPipeline(
        services.store, services.embedder, services.sparse, live.workspace.settings.ingest
    ).run([tree], "eng-docs")
    bob = live.workspace.caller_named("bob")
    (before,) = [
        d for d in live.workspace.documents(bob, "eng-docs") if d.source.endswith("remote.md")
    ]
    assert before.source == "policies/remote.md"
    job = live.workspace.reingest(bob, before.id)
    assert live.workspace.jobs.wait(job, 120) and job.files[0].status == "updated"
    after = [d for d in live.workspace.documents(bob, "eng-docs") if d.source.endswith("remote.md")]
    assert [(d.id, d.source) for d in after] == [(before.id, "policies/remote.md")]


def test_api_docs_are_served_without_any_outside_asset(live):
    with live.client() as anonymous:
        page = anonymous.get("/api/docs")
        assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
        assert "cdn" not in page.text and "https://" not in page.text
        asset = anonymous.get("/api/docs-assets/swagger-ui-bundle.js")
        assert asset.status_code == 200 and len(asset.content) > 100_000
        schema = anonymous.get("/api/openapi.json").json()
    assert (
        "/api/ask" in schema["paths"]
        and "/api/collections/{collection}/documents" in schema["paths"]
    )
    assert "text/event-stream" in schema["paths"]["/api/ask"]["post"]["responses"]["200"]["content"]


def test_an_upload_of_fifty_files_is_received_whole_at_the_default_limits(live):
    """The most files one upload may carry are admitted by the per-minute allowance (50
    files against 30 a minute were always refused whole); the 51st is refused by name."""
    live.workspace.catalog.assign("notes", "eng")
    files = [
        (f"note-{n:02}.md", f"# Note {n}\n\nMeeting room {n} seats {n + 4} people.\n".encode())
        for n in range(51)
    ]
    with live.client(live.keys["bob"]) as bob:
        body = upload(bob, "notes", *files)
    assert body["rejected"] == [{"name": "note-50.md", "reason": "at most 50 files per upload"}]
    assert body["job"]["state"] == "done"
    assert sorted(f["status"] for f in body["job"]["files"]) == ["added"] * 50
