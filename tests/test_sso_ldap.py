"""Login with a directory password, against a real OpenLDAP server (Debian's slapd on a
loopback port, tests/slapd.py) through Citadel's live server: the directory's groups become
teams at every login, the administrator role comes from a group, and each failure (wrong
password, disabled account, no group left, directory down) is a clear message on the login
page and an audit entry."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rag.settings import Settings, SsoSettings
from tests.live_server import (
    PASSWORD,
    LiveServer,
    add_user,
    assert_admin_by_group,
    assert_refused_as_disabled,
    disabled,
    free_port,
    last_login,
    readable_with_a_key,
    server_settings,
    silent_port,
    workspace_with,
)
from tests.slapd import PEOPLE, Slapd
from ui.metadata.errors import AccountError
from ui.service.sso import ProviderUnavailable

SERVICE_PASSWORD = "service-account-secret"
DIRECTORY_PASSWORD = "directory password 1"


def ldap_settings(data_dir: Path, url: str, **sso: object) -> Settings:
    ldap = {
        "url": url,
        "bind_dn": Slapd.user_dn("citadel"),
        "bind_password": SERVICE_PASSWORD,
        "user_base": PEOPLE,
        "group_base": "ou=groups,dc=example,dc=org",
        "teams": {"hr-staff": ["hr"], "lawyers": ["legal"]},
        "admin_group": "it-admins",
        "timeout_s": 2,
    }
    sso_settings = SsoSettings(ldap=ldap, **sso)
    return server_settings(data_dir).model_copy(update={"sso": sso_settings})


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    with Slapd(tmp_path_factory.mktemp("slapd")) as directory:
        directory.add_user("citadel", SERVICE_PASSWORD)
        for uid in ("dana", "erin", "frank", "gina", "hugo"):
            directory.add_user(uid, DIRECTORY_PASSWORD)
        directory.add_group("hr-staff", "dana", "gina", "hugo")
        directory.add_group("lawyers", "dana")
        directory.add_group("it-admins", "erin")
        directory.add_group("canteen", "frank")  # a group no rule maps
        directory.add_posix_group("ops", 5000, "frank")
        yield directory


@pytest.fixture(scope="module")
def live(slapd: Slapd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    workspace = workspace_with(ldap_settings(tmp_path_factory.mktemp("citadel"), slapd.url))
    add_user(workspace, "olivia", ("hr",))  # a local account beside the directory's
    for team in ("legal", "finance"):
        workspace.accounts.add_team(team)
    for collection, team in (("hr-docs", "hr"), ("legal-docs", "legal"), ("money", "finance")):
        workspace.catalog.assign(collection, team)
    with LiveServer(workspace) as server:
        yield server
    workspace.close()


def log_in(
    url: str, name: str, password: str, browser: httpx.Client | None = None
) -> httpx.Response:
    """The login form's answer, sent by `browser` (a fresh one by default)."""
    if browser is not None:
        return browser.post("/login", data={"username": name, "password": password})
    with httpx.Client(base_url=url, timeout=30) as fresh:
        return log_in(url, name, password, fresh)


def test_first_login_creates_the_user_with_the_teams_of_their_groups(live):
    with httpx.Client(base_url=live.url, timeout=30) as browser:
        response = log_in(live.url, "dana", DIRECTORY_PASSWORD, browser)
        assert response.status_code == 303 and "citadel_session" in browser.cookies
        assert browser.get("/session").status_code == 204
    caller = live.workspace.accounts.caller("dana")
    assert caller is not None and not caller.admin
    assert caller.teams == {"hr", "legal"}
    # The same permissions as any account: hr's and legal's collections, not finance's.
    assert readable_with_a_key(live, "dana") == {"hr-docs", "legal-docs"}
    action, detail = last_login(live.workspace, "dana")
    assert action == "login" and detail["method"] == "ldap"
    assert detail["teams"] == ["hr", "legal"] and detail["groups"] == ["hr-staff", "lawyers"]
    # Their password is the directory's: Citadel keeps none to reset.
    with pytest.raises(AccountError, match="signs in through single sign-on"):
        live.workspace.accounts.set_password("dana", "a local password")


def test_the_admin_group_gives_the_administrator_role(live):
    response = log_in(live.url, "erin", DIRECTORY_PASSWORD)
    assert response.status_code == 303
    assert_admin_by_group(live, "erin", "ldap")


def test_a_wrong_password_is_refused_and_audited(live):
    response = log_in(live.url, "dana", "not the directory password")
    assert response.status_code == 401 and "Wrong username or password" in response.text
    assert last_login(live.workspace, "dana") == (
        "login_failed",
        {"method": "ldap", "reason": "wrong username or password"},
    )
    # An empty password would be an anonymous bind, which LDAP accepts: never a login.
    assert live.workspace.login("dana", "") is None
    unknown = log_in(live.url, "nobody", DIRECTORY_PASSWORD)
    assert unknown.status_code == 401


def test_a_name_that_would_widen_the_search_finds_nobody(live):
    # "*" in the filter would match every user; escaped, it matches a user named "*" only.
    response = log_in(live.url, "*", DIRECTORY_PASSWORD)
    assert response.status_code == 401


def test_a_user_removed_from_a_group_loses_its_team_at_the_next_login(live, slapd):
    response = log_in(live.url, "gina", DIRECTORY_PASSWORD)
    assert response.status_code == 303
    slapd.add_member("lawyers", "gina")
    log_in(live.url, "gina", DIRECTORY_PASSWORD)
    assert live.workspace.accounts.caller("gina").teams == {"hr", "legal"}
    slapd.remove_member("lawyers", "gina")
    log_in(live.url, "gina", DIRECTORY_PASSWORD)
    assert live.workspace.accounts.caller("gina").teams == {"hr"}
    assert readable_with_a_key(live, "gina") == {"hr-docs"}
    # Out of every mapped group: no login at all, and the page says why.
    slapd.remove_member("hr-staff", "gina")
    response = log_in(live.url, "gina", DIRECTORY_PASSWORD)
    assert response.status_code == 403
    assert "in none of the groups that give access to Citadel" in response.text
    action, detail = last_login(live.workspace, "gina")
    assert action == "login_failed" and "none of the groups" in str(detail["reason"])


def test_a_user_in_no_mapped_group_is_refused(live):
    response = log_in(live.url, "frank", DIRECTORY_PASSWORD)
    assert response.status_code == 403 and "none of the groups" in response.text
    assert live.workspace.accounts.caller("frank") is None


def test_a_disabled_user_cannot_log_in_with_the_directory_password(live):
    assert log_in(live.url, "hugo", DIRECTORY_PASSWORD).status_code == 303
    with disabled(live.workspace, "hugo"):
        response = log_in(live.url, "hugo", DIRECTORY_PASSWORD)
        assert_refused_as_disabled(live.workspace, "hugo", response)


def test_local_accounts_keep_working_and_cannot_be_taken_over(live, slapd):
    response = log_in(live.url, "olivia", PASSWORD)
    assert response.status_code == 303
    assert last_login(live.workspace, "olivia") == ("login", {"method": "password"})
    # A directory user of the same name does not log in as the local account.
    slapd.add_user("olivia", DIRECTORY_PASSWORD)
    response = log_in(live.url, "olivia", DIRECTORY_PASSWORD)
    assert response.status_code == 401


def test_an_unreachable_directory_is_said_and_local_accounts_still_work(tmp_path):
    closed = f"ldap://127.0.0.1:{free_port()}"
    workspace = workspace_with(ldap_settings(tmp_path, closed))
    add_user(workspace, "olivia", ("hr",))
    with LiveServer(workspace) as server:
        response = log_in(server.url, "dana", DIRECTORY_PASSWORD)
        assert response.status_code == 503
        assert "The company directory cannot be reached right now" in response.text
        assert "Local accounts can still sign in" in response.text
        assert log_in(server.url, "olivia", PASSWORD).status_code == 303
    action, detail = last_login(workspace, "dana")
    assert action == "login_failed" and "cannot be reached" in str(detail["reason"])
    workspace.close()


def test_local_accounts_can_be_turned_off(slapd, tmp_path):
    workspace = workspace_with(ldap_settings(tmp_path, slapd.url, local_accounts=False))
    add_user(workspace, "olivia", ("hr",))
    with LiveServer(workspace) as server:
        response = log_in(server.url, "olivia", PASSWORD)
        assert response.status_code == 401
        assert log_in(server.url, "dana", DIRECTORY_PASSWORD).status_code == 303
    action, detail = last_login(workspace, "olivia")
    assert action == "login_failed" and "turned off" in str(detail["reason"])
    workspace.close()


def test_users_bound_directly_and_posix_groups_by_member_uid(slapd, tmp_path):
    """No service account: the user binds through the DN template and reads their own
    groups, here posixGroups that name members by uid."""
    settings = ldap_settings(tmp_path, slapd.url)
    ldap = settings.sso.ldap.model_copy(
        update={
            "bind_dn": None,
            "bind_password": None,
            "user_dn_template": f"uid={{username}},{PEOPLE}",
            "group_filter": "(&(objectClass=posixGroup)(memberUid={username}))",
            "teams": {"ops": ["operations"]},
        }
    )
    workspace = workspace_with(settings.model_copy(update={"sso": SsoSettings(ldap=ldap)}))
    with LiveServer(workspace) as server:
        assert log_in(server.url, "frank", DIRECTORY_PASSWORD).status_code == 303
        assert log_in(server.url, "dana", DIRECTORY_PASSWORD).status_code == 403  # not in ops
        assert log_in(server.url, "frank", "wrong password").status_code == 401
    assert workspace.accounts.caller("frank").teams == {"operations"}
    workspace.close()


def test_a_directory_that_never_answers_is_given_up_on(tmp_path):
    """A server that accepts the connection and says nothing (hung, or a firewall that
    swallows packets): the login waits `timeout_s`, not forever."""
    with silent_port() as port:
        settings = ldap_settings(tmp_path, f"ldap://127.0.0.1:{port}")
        ldap = settings.sso.ldap.model_copy(update={"timeout_s": 1})
        workspace = workspace_with(settings.model_copy(update={"sso": SsoSettings(ldap=ldap)}))
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable, match="cannot be reached"):
            workspace.login("dana", DIRECTORY_PASSWORD)
        assert time.monotonic() - started < 10
        workspace.close()
