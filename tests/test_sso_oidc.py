"""OpenID Connect login, the whole authorization code flow with PKCE driven over real HTTP:
a browser (httpx) starts at Citadel's live server, signs in at a local provider built on
authlib's server components (tests/oidc_provider.py: discovery, JWKS, authorize, token,
userinfo) and comes back with a session. The provider's groups become teams at every
login; forged tokens, replayed callbacks, a refusing or unreachable provider, disabled
users and a user left without groups are refused with a message and audited."""

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
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, redirected
from ui.service.workspace import Workspace

SECRET = "provider password 1"


def oidc_settings(data_dir: Path, issuer: str, **sso: object) -> Settings:
    oidc = {
        "issuer": issuer,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "teams": {"/hr": ["hr"], "/legal": ["legal"]},
        "admin_group": "/citadel-admins",
        "label": "Sign in with Example ID",
        "timeout_s": 3,
    }
    sso_settings = SsoSettings(oidc=oidc, **sso)
    return server_settings(data_dir).model_copy(update={"sso": sso_settings})


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with Provider() as idp:
        idp.add_person("dana", SECRET, ["/hr", "/legal", "/everyone"])
        idp.add_person("erin", SECRET, ["/citadel-admins"])
        idp.add_person("frank", SECRET, ["/everyone"])
        idp.add_person("gina", SECRET, ["/hr", "/legal"])
        idp.add_person("hugo", SECRET, ["/hr"])
        idp.add_person("olivia", SECRET, ["/hr"])  # the name of a local account
        yield idp


def serve(provider: Provider, data_dir: Path, **sso: object) -> tuple[Workspace, LiveServer]:
    workspace = workspace_with(oidc_settings(data_dir, provider.issuer, **sso))
    server = LiveServer(workspace)
    provider.allow_redirect(f"{server.url}/login/oidc/callback")
    return workspace, server


@pytest.fixture(scope="module")
def live(provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    workspace, server = serve(provider, tmp_path_factory.mktemp("citadel"))
    add_user(workspace, "olivia", ("hr",))
    for team in ("legal", "finance"):
        workspace.accounts.add_team(team)
    for collection, team in (("hr-docs", "hr"), ("legal-docs", "legal"), ("money", "finance")):
        workspace.catalog.assign(collection, team)
    with server:
        yield server
    workspace.close()


def sign_in(browser: httpx.Client, name: str, password: str = SECRET) -> httpx.Response:
    """The whole flow as a browser goes through it; Citadel's answer to the callback."""
    authorize = redirected(browser.get("/login/oidc"))
    assert "code_challenge=" in authorize and "code_challenge_method=S256" in authorize
    assert "nonce=" in authorize
    with httpx.Client(timeout=30) as at_provider:  # the provider's own cookies, apart
        assert at_provider.get(authorize).status_code == 200  # its login form
        callback = redirected(
            at_provider.post(authorize, data={"username": name, "password": password})
        )
    return browser.get(callback)


def browser_of(live: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=live.url, timeout=30)


def test_the_login_page_offers_single_sign_on_beside_the_password_form(live):
    with browser_of(live) as browser:
        page = browser.get("/login").text
    assert 'href="/login/oidc"' in page and "Sign in with Example ID" in page
    assert 'name="password"' in page


def test_first_login_creates_the_user_with_the_teams_of_their_groups(live):
    with browser_of(live) as browser:
        back = sign_in(browser, "dana")
        assert back.status_code == 303 and back.headers["location"] == "/"
        assert "citadel_session" in browser.cookies
        assert browser.get("/session").status_code == 204
        assert browser.get("/").status_code == 200  # the web UI, not the login page
        assert browser.get("/config").status_code == 200  # Gradio's routes take the session
    caller = live.workspace.accounts.caller("dana")
    assert caller is not None and not caller.admin and caller.teams == {"hr", "legal"}
    # Permissions as for every account: the store is asked for hr's and legal's only.
    assert readable_with_a_key(live, "dana") == {"hr-docs", "legal-docs"}
    action, detail = last_login(live.workspace, "dana")
    assert action == "login" and detail["method"] == "oidc" and detail["teams"] == ["hr", "legal"]
    (entry,) = live.workspace.audit.entries(1, actor="dana", action="login")
    assert entry.client == "127.0.0.1"


def test_the_admin_group_gives_the_administrator_role(live):
    with browser_of(live) as browser:
        assert sign_in(browser, "erin").status_code == 303
    assert_admin_by_group(live, "erin", "oidc")


def test_groups_given_by_userinfo_only_are_read_there(live, provider):
    provider.groups_in_id_token = False
    try:
        with browser_of(live) as browser:
            assert sign_in(browser, "hugo").status_code == 303
    finally:
        provider.groups_in_id_token = True
    assert live.workspace.accounts.caller("hugo").teams == {"hr"}


def test_a_team_taken_away_at_the_provider_is_gone_at_the_next_login(live, provider):
    with browser_of(live) as browser:
        assert sign_in(browser, "gina").status_code == 303
    assert live.workspace.accounts.caller("gina").teams == {"hr", "legal"}
    provider.people["gina"].groups.remove("/legal")
    with browser_of(live) as browser:
        assert sign_in(browser, "gina").status_code == 303
    assert live.workspace.accounts.caller("gina").teams == {"hr"}
    assert readable_with_a_key(live, "gina") == {"hr-docs"}
    provider.people["gina"].groups.remove("/hr")  # no group left that gives access
    with browser_of(live) as browser:
        refused = sign_in(browser, "gina")
        assert refused.status_code == 403
        assert "in none of the groups that give access to Citadel" in refused.text
        assert "citadel_session" not in browser.cookies
    action, detail = last_login(live.workspace, "gina")
    assert action == "login_failed" and detail["method"] == "oidc"


def test_a_user_in_no_mapped_group_is_refused_and_not_created(live):
    with browser_of(live) as browser:
        assert sign_in(browser, "frank").status_code == 403
    assert live.workspace.accounts.caller("frank") is None


def test_a_disabled_user_cannot_sign_in(live):
    with browser_of(live) as browser:
        assert sign_in(browser, "hugo").status_code == 303
    with disabled(live.workspace, "hugo"), browser_of(live) as browser:
        assert_refused_as_disabled(live.workspace, "hugo", sign_in(browser, "hugo"))


def test_a_wrong_password_at_the_provider_comes_back_as_a_refusal(live):
    with browser_of(live) as browser:
        refused = sign_in(browser, "dana", "not the password")
    assert refused.status_code == 403
    assert "refused the sign-in: access_denied" in refused.text
    (entry,) = live.workspace.audit.entries(1, action="login_failed")
    assert entry.detail["method"] == "oidc" and "access_denied" in entry.detail["reason"]


def test_a_local_account_is_not_taken_over_by_a_provider_user_of_its_name(live):
    with browser_of(live) as browser:
        refused = sign_in(browser, "olivia")
        assert refused.status_code == 403
        assert "belongs to another Citadel account" in refused.text
        # The local account itself still logs in with its password.
        ok = browser.post("/login", data={"username": "olivia", "password": PASSWORD})
        assert ok.status_code == 303


def test_a_callback_is_accepted_once_and_only_from_the_browser_that_started(live):
    with browser_of(live) as browser:
        authorize = redirected(browser.get("/login/oidc"))
        with httpx.Client(timeout=30) as at_provider:
            callback = redirected(
                at_provider.post(authorize, data={"username": "dana", "password": SECRET})
            )
        # Another browser (no state cookie: a login forced on a victim) is refused.
        with browser_of(live) as other:
            forced = other.get(callback)
            assert forced.status_code == 403 and "start it again" in forced.text
            assert "citadel_session" not in other.cookies
        assert browser.get(callback).status_code == 303
        browser.cookies.clear()
        # The same callback again (replayed) is refused: its state was used.
        browser.cookies.set("citadel_sso_state", dict(httpx.URL(callback).params)["state"])
        assert browser.get(callback).status_code == 403


@pytest.mark.parametrize("forge", ["key", "nonce", "audience", "expired"])
def test_an_id_token_that_fails_a_check_is_refused(live, provider, forge):
    """Signed by a key the provider does not publish, made for another sign-in (nonce) or
    another client, or expired: no session, and the reason in the audit log."""
    provider.forge = forge
    try:
        with browser_of(live) as browser:
            refused = sign_in(browser, "dana")
            assert refused.status_code == 403 and "ID token is not valid" in refused.text
            assert "citadel_session" not in browser.cookies
    finally:
        provider.forge = None
    (entry,) = live.workspace.audit.entries(1, action="login_failed")
    assert entry.actor == "(unknown)" and "ID token is not valid" in entry.detail["reason"]


def test_an_unreachable_provider_is_said_and_local_accounts_still_work(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"
    workspace = workspace_with(oidc_settings(tmp_path, closed))
    add_user(workspace, "olivia", ("hr",))
    with LiveServer(workspace) as server, browser_of(server) as browser:
        told = browser.get("/login/oidc")
        assert told.status_code == 503
        assert "The sign-in service cannot be reached right now" in told.text
        assert "Local accounts can still sign in" in told.text
        ok = browser.post("/login", data={"username": "olivia", "password": PASSWORD})
        assert ok.status_code == 303
    (entry,) = workspace.audit.entries(1, action="login_failed")
    assert entry.detail["method"] == "oidc" and "cannot be reached" in entry.detail["reason"]
    workspace.close()


def test_a_provider_that_never_answers_is_given_up_on(tmp_path):
    """A provider that accepts the connection and says nothing: the login page says it
    cannot be reached after `sso.oidc.timeout_s`, instead of hanging."""
    with silent_port() as port:
        settings = oidc_settings(tmp_path, f"http://127.0.0.1:{port}")
        oidc = settings.sso.oidc.model_copy(update={"timeout_s": 1})
        workspace = workspace_with(settings.model_copy(update={"sso": SsoSettings(oidc=oidc)}))
        with LiveServer(workspace) as server, browser_of(server) as browser:
            started = time.monotonic()
            told = browser.get("/login/oidc")
            assert told.status_code == 503 and "cannot be reached" in told.text
            assert time.monotonic() - started < 10
        workspace.close()


def test_local_accounts_can_be_turned_off(provider, tmp_path):
    workspace, server = serve(provider, tmp_path, local_accounts=False)
    add_user(workspace, "olivia", ("hr",))
    with server, browser_of(server) as browser:
        page = browser.get("/login").text
        assert 'href="/login/oidc"' in page and 'name="password"' not in page
        refused = browser.post("/login", data={"username": "olivia", "password": PASSWORD})
        assert refused.status_code == 401
        assert sign_in(browser, "dana").status_code == 303
    action, detail = last_login(workspace, "olivia")
    assert action == "login_failed" and "turned off" in str(detail["reason"])
    workspace.close()
