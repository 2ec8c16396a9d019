"""Administration from the command line: the first admin, teams, collections, the audit
log, and a server that refuses to be exposed without authentication."""

from __future__ import annotations

import json

import pytest

from tests.test_cli import citadel

pytestmark = pytest.mark.slow


def test_first_admin_teams_and_collections_from_the_cli(tmp_path):
    data = tmp_path / "data"
    added = citadel(
        data, "users", "add", "alice", "--admin", "--password-stdin", stdin="a long enough pw\n"
    )
    assert added.returncode == 0, added.stderr
    assert citadel(data, "teams", "add", "hr").returncode == 0
    assert (
        citadel(
            data, "users", "add", "bob", "-t", "hr", "--password-stdin", stdin="another long pw\n"
        ).returncode
        == 0
    )
    assert citadel(data, "assign", "hr-docs", "--team", "hr").returncode == 0
    listed = json.loads(citadel(data, "users", "list", "--json").stdout)
    assert listed == [
        {"name": "alice", "role": "admin", "teams": [], "disabled": False, "source": "local"},
        {"name": "bob", "role": "member", "teams": ["hr"], "disabled": False, "source": "local"},
    ]
    # Disabled (no login of any kind, no key) and enabled again, audited as the OS user.
    assert citadel(data, "users", "disable", "bob").returncode == 0
    listed = json.loads(citadel(data, "users", "list", "--json").stdout)
    assert [u["disabled"] for u in listed] == [False, True]
    assert citadel(data, "users", "enable", "bob").returncode == 0
    listed = json.loads(citadel(data, "users", "list", "--json").stdout)
    assert [u["disabled"] for u in listed] == [False, False]
    weak = citadel(data, "users", "add", "carol", "--password-stdin", stdin="short\n")
    assert weak.returncode == 2 and "too short" in weak.stderr
    key = citadel(data, "users", "key", "bob", "--label", "n8n").stdout.strip()
    assert key.startswith("ctl_")
    starters = citadel(data, "starters", "hr-docs", "How many days of leave?")
    assert "How many days of leave?" in starters.stdout
    audit = citadel(data, "audit", "--json")
    entries = [json.loads(line) for line in audit.stdout.splitlines()]
    assert any(e["action"] == "admin" and e["collection"] == "hr-docs" for e in entries)
    added = [e["detail"] for e in entries if e["detail"].get("op") == "user_add"]
    assert [(d["user"], d["role"]) for d in reversed(added)] == [
        ("alice", "admin"),
        ("bob", "member"),
    ]
    assert all(e["actor"].startswith("cli:") for e in entries if e["action"] == "admin")


def test_serve_refuses_a_public_address_without_authentication(tmp_path):
    everywhere = "0.0.0.0"  # noqa: S104 (the address under test)
    refused = citadel(tmp_path / "data", "serve", "--host", everywhere, "--no-auth")
    assert refused.returncode == 2
    assert "refusing to serve on 0.0.0.0 without authentication" in refused.stderr
    env = {"CITADEL_SERVER__AUTH": "false"}
    also = citadel(tmp_path / "data", "serve", "--host", "10.1.2.3", env=env)
    assert also.returncode == 2 and "without authentication" in also.stderr


def test_serve_with_authentication_needs_a_first_admin(tmp_path):
    result = citadel(tmp_path / "data", "serve", "--port", "1")
    assert result.returncode == 2
    assert "citadel users add NAME --admin" in result.stderr


def test_audit_and_feedback_json_escape_what_would_reorder_the_terminal(tmp_path):
    """A question with a right-to-left override, as a user may type it: `--json` keeps the
    JSON the same once read back, but the terminal never receives the override itself."""
    from rag.settings import Settings
    from ui.metadata import Metadata

    data = tmp_path / "data"
    question = "Where is the invoice\u202efdp.exe\u200b kept? \x1b[2J"
    meta = Metadata.open(Settings(data_dir=data))
    try:
        meta.audit.record("alice", "ask", "hr-docs", question=question)
    finally:
        meta.close()
    audit = citadel(data, "audit", "--json")
    assert audit.returncode == 0, audit.stderr
    for invisible in ("\u202e", "\u200b", "\x1b"):
        assert invisible not in audit.stdout
    assert "\\u202e" in audit.stdout
    (entry,) = [json.loads(line) for line in audit.stdout.splitlines()]
    assert entry["detail"]["question"] == question
    table = citadel(data, "audit")
    assert "\u202e" not in table.stdout and "\x1b[2J" not in table.stdout


def test_a_metadata_database_locked_by_another_process_is_reported_not_a_traceback(tmp_path):
    """A backup tool or a second server holds the write lock: the administrator reads what
    happened and what to do; once it is released, the same command works."""
    import sqlite3

    data = tmp_path / "data"
    first = citadel(data, "users", "add", "ann", "--password-stdin", stdin="a long enough pw\n")
    assert first.returncode == 0, first.stderr
    holder = sqlite3.connect(data / "citadel.sqlite3", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        locked = citadel(
            data, "users", "add", "bea", "--password-stdin", stdin="a long enough pw\n"
        )
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert locked.returncode == 2
    assert "Traceback" not in locked.stderr
    assert "is locked by another process" in locked.stderr
    assert "try again" in locked.stderr
    again = citadel(data, "users", "add", "bea", "--password-stdin", stdin="a long enough pw\n")
    assert again.returncode == 0, again.stderr
    listed = json.loads(citadel(data, "users", "list", "--json").stdout)
    assert [u["name"] for u in listed] == ["ann", "bea"]
