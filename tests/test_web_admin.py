"""The Administration tab's handlers (ui/web/admin_handlers.py) over a real Workspace: each
operation works for an administrator, is refused for a member (by the Workspace, whatever
the page shows), and leaves its audit entry; bad input is explained and what was typed
stays. (The tab in a browser: tests/test_browser_admin.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pytest

from tests.live_server import server_settings
from ui.service.workspace import Workspace
from ui.web.admin_handlers import AUDIT_SHOWN, VIEWS, AdminHandlers
from ui.web.handlers import Handlers

ROOT_PASSWORD = "root-password-1"
ALICE_PASSWORD = "alice-password-1"
SKIP = gr.skip()


@dataclass
class FakeRequest:
    """What the handlers read of gr.Request: the signed-in user and the client."""

    username: str | None
    client: None = None


ROOT, ALICE, GHOST = FakeRequest("root"), FakeRequest("alice"), FakeRequest("ghost")


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    # auth on; the model server is a closed port (search mode), so nothing real is called.
    workspace = Workspace(server_settings(tmp_path / "data", auth=True))
    accounts = workspace.accounts
    for team in ("hr", "eng"):
        accounts.add_team(team)
    accounts.add_user("root", ROOT_PASSWORD, "admin")
    accounts.add_user("alice", ALICE_PASSWORD)
    accounts.add_member("hr", "alice")
    workspace.catalog.assign("hr-docs", "hr")
    try:
        yield workspace
    finally:
        workspace.close()


@pytest.fixture
def admin(ws: Workspace) -> AdminHandlers:
    return AdminHandlers(Handlers(ws))


def admin_ops(ws: Workspace) -> list[tuple[str, str, dict[str, Any]]]:
    """The audit log's administration entries, oldest first: (actor, op, detail)."""
    entries = ws.audit.entries(1000, action="admin")
    return [(e.actor, e.detail.get("op", ""), e.detail) for e in reversed(entries)]


def refused_for_member(result: tuple[Any, ...] | str) -> None:
    shown = result[0] if isinstance(result, tuple) else result
    assert "citadel-msg-error" in str(shown), shown
    assert "only administrators may" in str(shown).lower(), shown


def kept_as_typed(result: tuple[Any, ...], fields: int) -> None:
    """An error: nothing the admin typed is cleared, no list is touched."""
    assert "citadel-msg-error" in str(result[0])
    assert list(result[1:]) == [SKIP] * (fields + len(VIEWS))


# -- users ---------------------------------------------------------------------------------


def test_an_administrator_adds_a_user_who_can_then_sign_in(ws: Workspace, admin: AdminHandlers):
    result = admin.add_user("carol", "carol-password-1", "member", ["eng"], ROOT)
    assert "Added user carol in eng" in str(result[0])
    assert result[1:4] == ("", "", gr.update(value=[]))  # fields cleared
    users_table = result[4]
    assert "carol" in users_table and "eng" in users_table
    carol = ws.login("carol", "carol-password-1")
    assert carol is not None and carol.teams == frozenset({"eng"}) and not carol.admin
    assert admin_ops(ws)[-1][:2] == ("root", "user_add")

    made = admin.add_user("dora", "dora-password-1", "admin", [], ROOT)
    assert "Added administrator dora" in str(made[0])
    dora = ws.caller_named("dora")
    assert dora is not None and dora.admin


def test_a_member_cannot_add_a_user_and_nothing_is_recorded_as_done(
    ws: Workspace, admin: AdminHandlers
):
    before = admin_ops(ws)
    result = admin.add_user("mallory", "mallory-password", "admin", [], ALICE)
    refused_for_member(result)
    kept_as_typed(result, 3)
    assert ws.caller_named("mallory") is None
    assert admin_ops(ws) == before
    assert "disabled or was removed" in str(admin.add_user("x", "y", "member", [], GHOST)[0])


@pytest.mark.parametrize(
    ("name", "password", "teams", "why"),
    [
        ("alice", "another-password", [], "User 'alice' already exists"),
        ("carol", "short", [], "Password too short: at least 10 characters"),
        ("carol", "carol-password-1", ["sales"], "No team 'sales'"),
        ("bad name!", "carol-password-1", [], "Invalid user name"),
        ("", "carol-password-1", [], "Type the new user's name"),
        ("carol", "", [], "Type a password"),
    ],
)
def test_a_refused_new_user_says_why_and_keeps_what_was_typed(
    ws: Workspace, admin: AdminHandlers, name: str, password: str, teams: list[str], why: str
):
    result = admin.add_user(name, password, "member", teams, ROOT)
    kept_as_typed(result, 3)
    assert why.replace("'", "&#x27;") in str(result[0])
    assert ws.caller_named("carol") is None


def test_disabling_a_user_stops_their_logins_and_keys_until_enabled(
    ws: Workspace, admin: AdminHandlers
):
    key = ws.accounts.create_key("alice", "ci")
    result = admin.disable_user("alice", ROOT)
    assert "Disabled alice" in str(result[0])
    assert "disabled" in result[1]  # the users table says so
    assert ws.login("alice", ALICE_PASSWORD) is None
    assert ws.accounts.caller_for_key(key) is None
    assert admin.enable_user("alice", ROOT)[0].count("Enabled alice") == 1
    assert ws.login("alice", ALICE_PASSWORD) is not None
    assert [op for _, op, _ in admin_ops(ws)][-2:] == ["user_disable", "user_enable"]

    refused_for_member(admin.disable_user("root", ALICE))
    root = ws.caller_named("root")
    assert root is not None  # still enabled
    # An administrator cannot lock themselves out by mistake.
    own = admin.disable_user("root", ROOT)
    assert "cannot disable your own account" in str(own[0])
    assert ws.caller_named("root") is not None
    assert "Choose a user first" in str(admin.disable_user(None, ROOT)[0])
    assert "No user &#x27;nobody&#x27;" in str(admin.enable_user("nobody", ROOT)[0])


def test_an_administrator_resets_a_password(ws: Workspace, admin: AdminHandlers):
    status, password = admin.reset_password("alice", "a-new-password-9", ROOT)
    assert "New password set for alice" in str(status) and password == ""
    assert ws.login("alice", "a-new-password-9") is not None
    assert ws.login("alice", ALICE_PASSWORD) is None
    assert admin_ops(ws)[-1][:2] == ("root", "user_passwd")

    weak = admin.reset_password("alice", "short", ROOT)
    assert "Password too short" in str(weak[0]) and weak[1] == SKIP
    refused = admin.reset_password("root", "mallory-owns-it", ALICE)
    refused_for_member(refused)
    assert ws.login("root", ROOT_PASSWORD) is not None


def test_an_administrator_sets_a_users_teams(ws: Workspace, admin: AdminHandlers):
    assert admin.pick_user("alice", ROOT) == gr.update(value=["hr"])
    result = admin.set_teams("alice", ["eng"], ROOT)
    assert "alice is now in eng" in str(result[0])
    alice = ws.caller_named("alice")
    assert alice is not None and alice.teams == frozenset({"eng"})
    ops = [(op, d["team"]) for _, op, d in admin_ops(ws)[-2:]]
    assert ops == [("member_add", "eng"), ("member_remove", "hr")]

    unknown = admin.set_teams("alice", ["eng", "sales"], ROOT)
    kept_as_typed(unknown, 0)
    assert "No team &#x27;sales&#x27;" in str(unknown[0])
    refused_for_member(admin.set_teams("alice", ["hr", "eng"], ALICE))
    alice = ws.caller_named("alice")
    assert alice is not None and alice.teams == frozenset({"eng"})  # unchanged


# -- teams ---------------------------------------------------------------------------------


def test_an_administrator_adds_a_team_listed_with_its_members(ws: Workspace, admin: AdminHandlers):
    result = admin.add_team("sales", ROOT)
    assert "Added team sales" in str(result[0]) and result[1] == ""
    teams_table = result[2 + VIEWS.index("teams_table")]
    assert "sales" in teams_table and "alice" in teams_table  # hr's member
    assert admin_ops(ws)[-1][:2] == ("root", "team_add")
    duplicate = admin.add_team("sales", ROOT)
    kept_as_typed(duplicate, 1)
    assert "already exists" in str(duplicate[0])
    refused_for_member(admin.add_team("mallory-team", ALICE))
    assert "mallory-team" not in ws.accounts.teams()


# -- collections ---------------------------------------------------------------------------


def test_an_administrator_creates_a_collection_and_changes_its_owner(
    ws: Workspace, admin: AdminHandlers
):
    result = admin.create_collection("eng-docs", "eng", ROOT)
    assert "Created eng-docs, readable by eng" in str(result[0])
    table = result[2 + VIEWS.index("collections_table")]
    assert "eng-docs" in table and "hr-docs" in table
    assert ws.catalog.owners()["eng-docs"] == "eng"
    assert admin_ops(ws)[-1][:2] == ("root", "assign_collection")

    again = admin.create_collection("eng-docs", "hr", ROOT)
    kept_as_typed(again, 1)
    assert "already exists" in str(again[0])
    assert ws.catalog.owners()["eng-docs"] == "eng"

    moved = admin.set_owner("eng-docs", "hr", ROOT)
    assert "eng-docs now belongs to hr" in str(moved[0])
    alice = ws.caller_named("alice")
    assert alice is not None and "eng-docs" in ws.readable(alice)
    (actor, op, detail) = admin_ops(ws)[-1]
    assert (actor, op, detail["team"]) == ("root", "assign_collection", "hr")
    assert "administrators only" in str(admin.set_owner("eng-docs", "", ROOT)[0])
    assert ws.catalog.owners()["eng-docs"] is None

    assert "No such collection" in str(admin.set_owner("nowhere", "hr", ROOT)[0])
    assert "nowhere" not in ws.catalog.owners()
    assert "Invalid collection name" in str(admin.create_collection("../x", "hr", ROOT)[0])
    refused_for_member(admin.create_collection("mine", "hr", ALICE))
    refused_for_member(admin.set_owner("hr-docs", "", ALICE))
    assert ws.catalog.owners()["hr-docs"] == "hr"


# -- API keys ------------------------------------------------------------------------------


def test_an_administrator_creates_a_key_shown_once_and_revokes_it(
    ws: Workspace, admin: AdminHandlers
):
    shown, label, *views = admin.create_key("alice", "nightly sync", ROOT)
    assert "shown only this once" in shown and label == ""
    secret = shown.split('class="citadel-secret-key">')[1].split("<")[0]
    caller = ws.accounts.caller_for_key(secret)
    assert caller is not None and caller.name == "alice"
    keys_table = views[VIEWS.index("keys_table")]
    assert "nightly sync" in keys_table and secret[:12] in keys_table
    assert secret not in keys_table  # the secret itself is never listed
    assert admin_ops(ws)[-1][:2] == ("root", "key_create")
    (choice,) = views[VIEWS.index("key_pick")].choices
    assert choice[1] == f"alice\t{secret[:12]}"

    result = admin.revoke_key(choice[1], ROOT)
    assert "Revoked alice&#x27;s key" in str(result[0])
    assert ws.accounts.caller_for_key(secret) is None
    assert "revoked" in result[1 + VIEWS.index("keys_table")]
    assert admin_ops(ws)[-1][:2] == ("root", "key_revoke")

    assert "No user &#x27;nobody&#x27;" in str(admin.create_key("nobody", "", ROOT)[0])
    assert "Choose a key" in str(admin.revoke_key("", ROOT)[0])
    refused_for_member(admin.create_key("root", "mallory", ALICE))
    assert ws.accounts.keys("root") == []
    own = ws.accounts.create_key("root", "root's")
    refused_for_member(admin.revoke_key(f"root\t{own[:12]}", ALICE))
    assert ws.accounts.caller_for_key(own) is not None


# -- audit log -----------------------------------------------------------------------------


def test_the_audit_log_is_filtered_by_user_action_and_days(ws: Workspace, admin: AdminHandlers):
    ws.login("alice", ALICE_PASSWORD)
    ws.login("alice", "wrong password")
    ws.audit.record("bob", "ask", "hr-docs", question='<img src=x onerror="alert(1)">')
    admin.add_team("sales", ROOT)

    count, table = admin.audit("alice", "", "", "", ROOT)
    assert "Showing 2 of 2" in count
    assert "login_failed" in table and "bob" not in table and "team_add" not in table
    count, table = admin.audit("", "login_failed", "", "", ROOT)
    assert "Showing 1 of 1" in count and "alice" in table
    count, table = admin.audit("", "", "", "", ROOT)
    assert "Showing 4 of 4" in count
    rows = table.split("<tbody>")[1]
    assert rows.index("team_add") < rows.index("login_failed")  # newest first
    # Document and question text is untrusted: shown as text, never as markup.
    assert "&lt;img src=x onerror=" in table and "<img" not in table

    today = ws.audit.entries(1)[0].at[:10]
    assert "Showing 4 of 4" in admin.audit("", "", today, today, ROOT)[0]
    assert "Showing 0 of 0" in admin.audit("", "", "2000-01-01", "2000-12-31", ROOT)[0]
    bad = admin.audit("", "", "yesterday", "", ROOT)
    assert "YYYY-MM-DD" in bad[0] and bad[1] == SKIP
    assert "comes after" in admin.audit("", "", "2026-12-05", "2026-12-01", ROOT)[0]
    refused_for_member(admin.audit("", "", "", "", ALICE))


def test_the_audit_log_shows_the_newest_entries_and_says_how_many_match(
    ws: Workspace, admin: AdminHandlers
):
    for n in range(AUDIT_SHOWN + 30):
        ws.audit.record("bot", "search", None, None, n=n)
    count, table = admin.audit("bot", "search", "", "", ROOT)
    assert f"newest {AUDIT_SHOWN} of {AUDIT_SHOWN + 30}" in count
    assert table.count("<tr>") == AUDIT_SHOWN + 1  # the header row, and the shown rows
    assert f"n: {AUDIT_SHOWN + 29}" in table and "n: 0<" not in table


# -- suggested questions, model, lists -----------------------------------------------------


def test_suggested_questions_are_edited_here_by_an_administrator_only(
    ws: Workspace, admin: AdminHandlers
):
    status, editor, _ = admin.save_starters(
        "hr-docs", "Where do I park?\n\n  Who is HR?  ", [], ROOT
    )
    assert "Saved 2" in str(status) and editor == "Where do I park?\nWho is HR?"
    assert admin.load_starters("hr-docs", ROOT) == "Where do I park?\nWho is HR?"
    assert admin_ops(ws)[-1][:2] == ("root", "starters")
    refused_for_member(admin.save_starters("hr-docs", "pwned?", [], ALICE))
    assert ws.catalog.starters("hr-docs") == ["Where do I park?", "Who is HR?"]


def test_the_model_status_says_what_answers_and_why_not(ws: Workspace, admin: AdminHandlers):
    shown = admin.model_status(ROOT)
    assert "Ollama" in shown and "llama3.2:3b" in shown
    assert 'data-reachable="false"' in shown and "not reachable" in shown
    assert "search mode" in shown  # the error, for the administrator
    assert ws.settings.llm.host in shown
    refused_for_member(admin.model_status(ALICE))


def test_every_list_is_refused_to_a_member(ws: Workspace, admin: AdminHandlers):
    listed = admin.views(ROOT)
    assert len(listed) == len(VIEWS)
    assert "alice" in listed[0] and "hr-docs" in listed[2]
    for table in admin.views(ALICE)[:4]:
        assert "only administrators" in str(table).lower()
        assert "alice" not in str(table)
    refused_for_member(admin.export(ALICE)[1:])


def test_the_users_list_says_how_each_account_signs_in(ws: Workspace, admin: AdminHandlers):
    # An account a directory login created (its teams come from the directory).
    ws.accounts.sync_external("ldap", "uid=dan,ou=people,dc=example,dc=org", "dan", False, ["hr"])
    users = admin.views(ROOT)[0]
    assert "Signs in with" in users
    assert users.count("<td>password</td>") == 2 and users.count("<td>directory</td>") == 1
