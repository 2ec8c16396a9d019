"""The Administration tab in a real browser (Debian's chromium, driven by Playwright)
against the real server: an administrator adds a user who can then sign in, disables them,
who then cannot; creates an API key that works and revokes it; filters the audit log by
user; and every sub-screen passes axe-core, light and dark, desktop and phone.

Its own server (no documents: the embedder is never loaded; the fake Ollama answers the
model's status). On failure, screenshots are saved under test-artifacts/.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from rag.settings import LlmSettings, ServerSettings, Settings
from rag.wiring import Services
from tests import test_browser
from tests.fake_ollama import FakeOllama
from tests.live_server import LiveServer
from tests.test_browser import (
    PASSWORDS,
    Site,
    add_people,
    axe_problems,
    choose,
    login,
    screenshots_on_failure,
)
from ui.service.workspace import Workspace

pytestmark = pytest.mark.slow

SUB_SCREENS = (
    "Users",
    "Teams",
    "Collections",
    "Folders",
    "API keys",
    "Audit log",
    "Suggested questions",
    "Model",
    "Feedback export",
)
CAROL = "carol-password-1"

# The browser (one per module) and the pages screenshotted on failure, as tests/test_browser.py
# has them.
browser = test_browser.browser
shots = test_browser.shots


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("web-admin")
    fake = FakeOllama().start()
    settings = Settings(
        data_dir=base / "data",
        llm=LlmSettings(host=fake.url),
        server=ServerSettings(auth=True),
    )
    workspace = Workspace(settings, Services(settings))
    add_people(workspace)
    try:
        with LiveServer(workspace) as server:
            yield Site(server.url, workspace, fake)
    finally:
        workspace.close()
        fake.stop()


def open_admin(page: Page, screen: str = "Users") -> None:
    """The Administration tab, at one of its sub-screens (on a phone, some of Gradio's tabs
    sit in its overflow menu)."""
    outer = page.get_by_role("tab", name="Administration")
    if outer.get_attribute("aria-selected") != "true":
        outer.click()
    tabs = page.locator("#citadel-admin-tabs")
    wanted = tabs.get_by_role("tab", name=screen, exact=True)
    if not wanted.is_visible():
        tabs.locator(".overflow-menu button, button.overflow-menu").first.click()
        tabs.get_by_role("button", name=screen, exact=True).or_(
            tabs.locator(".overflow-dropdown button", has_text=screen)
        ).first.click()
    else:
        wanted.click()
    settle(page)


def settle(page: Page) -> None:
    """Until no event is pending (Gradio's loading veil dims what it covers), and the
    pointer rests away from the buttons (a hovered button has its own colours)."""
    page.mouse.move(0, 0)
    page.wait_for_timeout(200)
    page.wait_for_function(
        "() => document.querySelectorAll('.wrap.full:not(.hide), .wrap.minimal:not(.hide)')"
        ".length === 0"
    )


def field(page: Page, elem_id: str) -> Locator:
    return page.locator(f"#{elem_id} input, #{elem_id} textarea").first


def sign_in(browser: Browser, site: Site, user: str, password: str) -> Page:
    """A fresh browser at the login form, the form sent; the page as it then is."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.goto(site.url + "/")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    return page


def test_an_administrator_adds_a_user_who_signs_in_then_disables_them_who_cannot(
    site: Site, browser: Browser, shots: list[Page]
):
    with screenshots_on_failure("admin-users", shots):
        page = login(browser, site, "root", shots).page
        open_admin(page)
        users = page.locator("#citadel-admin-users")
        expect(users).to_contain_text("alice")

        # A weak password is refused in words, and what was typed stays.
        field(page, "citadel-admin-new-name").fill("carol")
        field(page, "citadel-admin-new-password").fill("short")
        choose(page, "citadel-admin-new-teams", "eng")
        page.locator("#citadel-admin-add").click()
        status = page.locator("#citadel-admin-new-status")
        expect(status).to_contain_text("Password too short")
        expect(field(page, "citadel-admin-new-name")).to_have_value("carol")
        assert site.workspace.caller_named("carol") is None

        field(page, "citadel-admin-new-password").fill(CAROL)
        page.locator("#citadel-admin-add").click()
        expect(status).to_contain_text("Added user carol in eng")
        expect(users).to_contain_text("carol")
        expect(field(page, "citadel-admin-new-name")).to_have_value("")

        carol = sign_in(browser, site, "carol", CAROL)
        shots.append(carol)
        carol.locator("#citadel-question textarea").wait_for()
        expect(carol.locator("#citadel-user")).to_contain_text("Signed in as carol")
        expect(carol.get_by_role("tab", name="Administration")).not_to_be_visible()

        choose(page, "citadel-admin-user", "carol")
        page.locator("#citadel-admin-disable").click()
        expect(page.locator("#citadel-admin-user-status")).to_contain_text("Disabled carol")
        expect(users.locator("tr", has_text="carol")).to_contain_text("disabled")

        # Her open session ends; a new sign-in is refused.
        carol.reload()
        expect(carol.get_by_label("Username")).to_be_visible()
        refused = sign_in(browser, site, "carol", CAROL)
        shots.append(refused)
        expect(refused.get_by_role("alert")).to_contain_text("Wrong username or password")
        ops = [e.detail.get("op") for e in site.workspace.audit.entries(20, actor="root")]
        assert "user_add" in ops and "user_disable" in ops
        for opened in (page, carol, refused):
            opened.context.close()


def test_an_administrator_creates_a_key_that_works_then_revokes_it(
    site: Site, browser: Browser, shots: list[Page]
):
    with screenshots_on_failure("admin-keys", shots):
        page = login(browser, site, "root", shots).page
        open_admin(page, "API keys")
        choose(page, "citadel-admin-key-user", "bob")
        field(page, "citadel-admin-key-label").fill("nightly sync")
        page.locator("#citadel-admin-create-key").click()
        shown = page.locator("#citadel-admin-key-created .citadel-secret-key")
        expect(shown).to_contain_text("ctl_")
        expect(page.locator("#citadel-admin-key-created")).to_contain_text("shown only this once")
        secret = shown.inner_text().strip()
        keys = page.locator("#citadel-admin-keys")
        expect(keys.locator("tr", has_text="nightly sync")).to_contain_text(secret[:12])
        assert secret not in keys.inner_text()

        me = httpx.get(f"{site.url}/api/me", headers={"Authorization": f"Bearer {secret}"})
        assert me.status_code == 200 and me.json()["name"] == "bob"

        choose(page, "citadel-admin-key-pick", secret[:12])
        page.locator("#citadel-admin-revoke-key").click()
        expect(page.locator("#citadel-admin-key-status")).to_contain_text("Revoked bob's key")
        expect(keys.locator("tr", has_text="nightly sync")).to_contain_text("revoked")
        me = httpx.get(f"{site.url}/api/me", headers={"Authorization": f"Bearer {secret}"})
        assert me.status_code == 401
        page.context.close()


def test_the_audit_log_is_filtered_by_user(site: Site, browser: Browser, shots: list[Page]):
    assert site.workspace.login("alice", PASSWORDS["alice"]) is not None
    assert site.workspace.login("bob", "not bob's password") is None
    with screenshots_on_failure("admin-audit", shots):
        page = login(browser, site, "root", shots).page
        open_admin(page, "Audit log")
        table = page.locator("#citadel-admin-audit")
        expect(table).to_contain_text("login_failed")  # everyone's, newest first
        choose(page, "citadel-admin-audit-user", "alice")
        page.locator("#citadel-admin-audit-show").click()
        expect(page.locator("#citadel-admin-audit-count")).to_contain_text("Showing")
        users = table.locator("tbody tr td:nth-child(2)")
        expect(users.first).to_have_text("alice")
        assert set(users.all_inner_texts()) == {"alice"}
        total = len(site.workspace.audit.entries(1000, actor="alice"))
        expect(page.locator("#citadel-admin-audit-count")).to_contain_text(f"{total} of {total}")

        field(page, "citadel-admin-audit-since").fill("05/12/2026")
        page.locator("#citadel-admin-audit-show").click()
        expect(page.locator("#citadel-admin-audit-count")).to_contain_text("YYYY-MM-DD")
        expect(field(page, "citadel-admin-audit-since")).to_have_value("05/12/2026")
        page.context.close()


def test_every_admin_screen_passes_axe_core_light_and_dark_desktop_and_phone(
    site: Site, browser: Browser, shots: list[Page]
):
    problems: dict[str, list[str]] = {}
    with screenshots_on_failure("admin-axe", shots):
        for dark in (False, True):
            for width, height in ((1400, 1000), (390, 844)):
                where = f"{'dark' if dark else 'light'} {width}px"
                visit = login(browser, site, "root", shots, dark=dark)
                page = visit.page
                page.set_viewport_size({"width": width, "height": height})
                for screen in SUB_SCREENS:
                    open_admin(page, screen)
                    if screen == "Model":
                        expect(page.locator("#citadel-admin-model")).to_contain_text("Ollama")
                    if screen == "Audit log":
                        expect(page.locator("#citadel-admin-audit-count")).to_contain_text(
                            "Showing"
                        )
                    settle(page)  # its content shown, no longer dimmed as pending
                    problems[f"{screen}, {where}"] = axe_problems(page)
                # An error shown, and a new key: legible too.
                open_admin(page, "Teams")
                page.locator("#citadel-admin-add-team").click()
                expect(page.locator("#citadel-admin-team-status")).to_contain_text("Type")
                settle(page)
                problems[f"Teams with an error, {where}"] = axe_problems(page)
                open_admin(page, "API keys")
                choose(page, "citadel-admin-key-user", "alice")
                page.locator("#citadel-admin-create-key").click()
                expect(page.locator("#citadel-admin-key-created")).to_contain_text("ctl_")
                settle(page)
                problems[f"API keys with a new key, {where}"] = axe_problems(page)
                assert visit.outside_requests(site.url) == []
                visit.context.close()
    found = [f"{screen}: {problem}" for screen, listed in problems.items() for problem in listed]
    assert found == [], "\n".join(found)


def test_the_model_screen_names_the_model_and_says_it_answers(
    site: Site, browser: Browser, shots: list[Page]
):
    with screenshots_on_failure("admin-model", shots):
        page = login(browser, site, "root", shots).page
        open_admin(page, "Model")
        model = page.locator("#citadel-admin-model .citadel-model")
        expect(model).to_have_attribute("data-reachable", "true")
        expect(model).to_contain_text(site.workspace.settings.llm.model or "")
        expect(model).to_contain_text("tokens")
        page.context.close()
