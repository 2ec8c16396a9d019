"""The web UI in a real browser (Debian's chromium, driven by Playwright) against the real
server: uploads, streamed answers, citations that open the cited page, team isolation,
hostile documents kept inert, and not one request leaving the machine.

One server (real embedder, real store, the fake Ollama over real HTTP) serves the module.
On failure, screenshots are saved under test-artifacts/.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright

from rag.settings import LlmSettings, ServerSettings, Settings
from rag.wiring import Services
from tests.fake_ollama import FakeOllama, Script
from tests.live_server import LiveServer
from ui.service.workspace import Answered, Workspace
from ui.web.document_handlers import DocumentHandlers
from ui.web.handlers import Handlers
from ui.web.render import Turn

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
PDF = REPO / "samples" / "policies" / "information-security-policy.pdf"
PASSWORDS = {"alice": "alice-password-1", "bob": "bob-password-12", "root": "root-password-1"}
LAPTOP = "How quickly must a lost or stolen laptop be reported?"
LEAVE = "How many days of paid annual leave do employees get?"
WAIT_MS = 120_000  # ingestion and answers on a busy 2-core machine
PWNED = "window.__pwned=1"
HOSTILE_TITLE = f'<img src=x onerror="{PWNED}"> Zephyr garage rules'
HOSTILE_HTML = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Zephyr</title>
<script>{PWNED}</script></head>
<body>
<h1>&lt;img src=x onerror="{PWNED}"&gt; Zephyr garage rules</h1>
<p>The Zephyr parking garage opens at 06:45 every weekday. &lt;script&gt;{PWNED}&lt;/script&gt;
Visitors park on level minus two &lt;img src=x onerror="{PWNED}"&gt; near the lifts.</p>
<p>![t](http://evil.example/t.png) Bicycles go in the cage by the north ramp &amp; staff
use badge 7 &lt;b&gt;only&lt;/b&gt;.</p>
<img src="http://evil.example/real.png" onerror="{PWNED}">
</body></html>
"""

# Never skipped: a missing browser would silently drop the UI's tests. .ci/run installs it.
assert CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"


@dataclass
class Site:
    url: str
    workspace: Workspace
    fake: FakeOllama


@dataclass
class Visit:
    """One user's browser session, with every URL it requested."""

    context: BrowserContext
    page: Page
    requests: list[str] = field(default_factory=list)

    def outside_requests(self, base: str) -> list[str]:
        allowed = urlsplit(base).netloc
        return [
            u
            for u in self.requests
            if urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).netloc != allowed
        ]


def add_people(workspace: Workspace) -> None:
    """Teams hr and eng, alice in hr, bob in eng, root the administrator; hr-docs is hr's,
    eng-docs eng's."""
    accounts = workspace.accounts
    for team in ("hr", "eng"):
        accounts.add_team(team)
    for user, team in (("alice", "hr"), ("bob", "eng")):
        accounts.add_user(user, PASSWORDS[user])
        accounts.add_member(team, user)
    accounts.add_user("root", PASSWORDS["root"], role="admin")
    workspace.catalog.assign("hr-docs", "hr")
    workspace.catalog.assign("eng-docs", "eng")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, embedder) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("web")
    fake = FakeOllama().start()
    settings = Settings(
        data_dir=base / "data",
        llm=LlmSettings(host=fake.url),
        server=ServerSettings(auth=True),
    )
    workspace = Workspace(settings, Services(settings, preloaded_embedder=embedder))
    add_people(workspace)
    accounts = workspace.accounts
    root = accounts.caller("root")
    assert root is not None
    workspace.set_starters(root, "hr-docs", [LAPTOP])
    # bob's team has a document of its own (the upload is moved away: give it a copy).
    copy = base / "handbook.md"
    shutil.copy(REPO / "samples" / "handbook.md", copy)
    bob = accounts.caller("bob")
    assert bob is not None
    job = workspace.upload(bob, "eng-docs", [("handbook.md", copy)]).job
    assert job is not None and workspace.jobs.wait(job, 300) and job.state == "done", job

    try:
        with LiveServer(workspace) as server:
            yield Site(server.url, workspace, fake)
    finally:
        workspace.close()
        fake.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def shots() -> list[Page]:
    """The test's pages, screenshotted by `screenshots_on_failure` if it fails."""
    return []


def _save(name: str, pages: list[Page]) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for i, page in enumerate(pages):
        with contextlib.suppress(Exception):
            page.screenshot(path=str(ARTIFACTS / f"{name}-{i}.png"), full_page=True)


@contextlib.contextmanager
def screenshots_on_failure(name: str, pages: list[Page]) -> Iterator[None]:
    try:
        yield
    except BaseException:
        _save(name, pages)
        raise


def login(browser: Browser, site: Site, user: str, pages: list[Page], dark: bool = False) -> Visit:
    context = browser.new_context(
        viewport={"width": 1400, "height": 1000}, color_scheme="dark" if dark else "light"
    )
    context.set_default_timeout(30_000)
    page = context.new_page()
    visit = Visit(context, page)
    context.on("request", lambda r: visit.requests.append(r.url))
    context.on("websocket", lambda ws: visit.requests.append(ws.url))
    pages.append(page)
    page.goto(site.url + "/")  # redirected to Citadel's login form
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(PASSWORDS[user])
    page.get_by_role("button", name="Log in").click()
    page.locator("#citadel-question textarea").wait_for()
    expect(page.locator("#citadel-user")).to_contain_text(f"Signed in as {user}")
    # The page's own script ran (it adds the live region): an error in it would leave
    # sources, feedback and Copy dead without any other sign.
    expect(page.locator("#citadel-live")).to_have_count(1)
    return visit


def options(page: Page, elem_id: str) -> list[str]:
    """The choices a dropdown offers (opened, read, closed)."""
    page.locator(f"#{elem_id} input").click()
    listed = page.locator(f"#{elem_id} [role='option']")
    listed.first.wait_for()
    names = [t.replace("✓", "").strip() for t in listed.all_inner_texts()]
    page.keyboard.press("Escape")
    return names


def choose(page: Page, elem_id: str, choice: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.locator(f"#{elem_id} [role='option']", has_text=choice).click()


def upload(page: Page, path: Path) -> Page:
    page.get_by_role("tab", name="Documents").click()
    page.locator("#citadel-upload input[type='file']").set_input_files(str(path))
    done = page.locator("#citadel-upload-status .citadel-progress[data-state='done']")
    done.wait_for(timeout=WAIT_MS)
    row = done.locator("tr[data-status]", has_text=path.name)
    expect(row).to_have_attribute("data-status", "added")
    return page


def ask(page: Page, question: str) -> None:
    page.get_by_role("tab", name="Ask").click()
    page.locator("#citadel-question textarea").fill(question)
    page.locator("#citadel-send").click()


def answer_of(page: Page, turn: int) -> Locator:
    """The answer of the conversation's turn (from 1), in Gradio's chat."""
    return page.locator("#citadel-conversation .citadel-a").nth(turn - 1)


def wait_for_answer(page: Page, turn: int) -> None:
    answer = answer_of(page, turn)
    answer.wait_for(timeout=WAIT_MS)
    expect(answer.locator(".citadel-streaming")).to_have_count(0, timeout=WAIT_MS)


# WCAG's contrast ratio of an element's text on its own background (both computed).
CONTRAST_JS = """(el) => {
  const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  let bg = el;
  while (bg && getComputedStyle(bg).backgroundColor.match(/rgba\\(.*, 0\\)$|transparent/)) {
    bg = bg.parentElement;
  }
  const a = lum(rgb(getComputedStyle(el).color));
  const b = lum(rgb(getComputedStyle(bg).backgroundColor));
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""


def test_the_chat_sends_on_enter_stops_on_request_and_reads_well_in_the_dark(
    site: Site, browser: Browser, shots: list[Page]
):
    with screenshots_on_failure("chat-keys", shots):
        bob = login(browser, site, "bob", shots, dark=True)
        page = bob.page
        assert page.evaluate("document.body.classList.contains('dark')")
        expect(page.locator("h1")).to_have_count(1)
        expect(page.locator("h1")).to_have_text("Citadel")
        page.get_by_role("tab", name="Documents").click()
        expect(page.locator("#citadel-upload")).to_contain_text("add them to eng-docs")
        page.get_by_role("tab", name="Ask").click()

        box = page.locator("#citadel-question textarea")
        box.focus()
        ring = box.evaluate(
            "(e) => [getComputedStyle(e).outlineStyle, getComputedStyle(e).outlineWidth]"
        )
        assert ring[0] != "none" and float(ring[1].removesuffix("px")) >= 2, ring
        # Shift+Enter starts a new line; Enter sends.
        box.type("How many days of paid annual leave")
        box.press("Shift+Enter")
        box.type("do employees get?")
        assert box.input_value() == "How many days of paid annual leave\ndo employees get?"
        expect(page.locator("#citadel-conversation .citadel-a")).to_have_count(0)
        words = [f"word{i} " for i in range(40)]
        site.fake.enqueue(Script(tokens=["Employees get ", *words], delay_between_s=0.5))
        box.press("Enter")
        streaming = page.locator("#citadel-conversation .citadel-streaming")
        expect(streaming).to_contain_text("Employees get", timeout=WAIT_MS)
        # Stop while it streams: the text so far stays, marked as stopped; Send is back.
        expect(page.locator("#citadel-send")).to_be_hidden()
        page.locator("#citadel-stop").click()
        expect(streaming).to_have_count(0)
        first = answer_of(page, 1)
        expect(first.locator(".citadel-banner-incomplete")).to_contain_text("Stopped")
        expect(first).to_contain_text("Employees get")
        expect(page.locator("#citadel-send")).to_be_visible()
        expect(page.locator("#citadel-stop")).to_be_hidden()
        assert "word39" not in (first.inner_text())

        # The model fails: the search-mode banner, legible on the dark theme. (A stopped
        # answer is no history: the question goes as it is, not condensed.)
        site.fake.enqueue(Script(tokens=[], status=500))
        ask(page, LEAVE)
        wait_for_answer(page, 2)
        banner = answer_of(page, 2).locator(".citadel-banner-search")
        for part in (banner.locator("strong"), banner.locator("div").first):
            assert part.evaluate(CONTRAST_JS) >= 4.5
        # The answer, once complete, is said once in the live region.
        live = page.locator("#citadel-live")
        expect(live).to_have_attribute("aria-live", "polite")
        expect(live).to_contain_text("Written answers are unavailable right now")


AXE = REPO / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"


def axe_problems(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now (WCAG 2.x A and
    AA rules), one line each: rule, impact, and the first elements concerned."""
    assert AXE.exists(), f"{AXE} is missing: make test installs it (make axe)"
    # Measured on the page at rest: colours caught half-way through a fade (a tab Gradio is
    # still drawing, dimmed while pending) fail the contrast rule on a busy machine.
    page.wait_for_function(
        """() => !document.querySelector('.pending, .generating') &&
          document.getAnimations().every((a) => a.playState !== 'running' ||
            a.effect?.getTiming().iterations === Infinity)"""
    )
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        """async () => {
          const result = await axe.run(document, {
            runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
            resultTypes: ['violations'],
          });
          return result.violations
            .filter((v) => v.impact === 'serious' || v.impact === 'critical')
            .map((v) => `${v.id} (${v.impact}): ` +
              v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(' | '));
        }"""
    )
    return list(found)


def _ask_and_wait(site: Site, page: Page, turn: int) -> None:
    # The same standalone question each turn: no follow-up, so no condense request first.
    lines = [f"Point {k} of answer {turn} about the leave rules.\n" for k in range(10)]
    site.fake.enqueue(Script(tokens=[*lines, "Employees get 25 days of paid leave [1]."]))
    ask(page, LEAVE)
    wait_for_answer(page, turn)


def test_the_view_follows_new_answers_and_sources_stay_at_hand(
    site: Site, browser: Browser, shots: list[Page]
):
    with screenshots_on_failure("follow", shots):
        page = login(browser, site, "bob", shots).page
        for turn in range(1, 6):
            _ask_and_wait(site, page, turn)
            last = answer_of(page, turn).locator(".citadel-text")
            expect(last).to_be_in_viewport()
        jump = page.locator("#citadel-jump")
        expect(jump).to_be_hidden()

        # Scrolled up to re-read, the reader is not pulled down; a button offers the latest.
        answer_of(page, 1).scroll_into_view_if_needed()
        page.mouse.wheel(0, -5000)
        _ask_and_wait(site, page, 6)
        latest = answer_of(page, 6).locator(".citadel-text")
        expect(jump).to_be_visible()
        expect(latest).not_to_be_in_viewport()
        jump.click()
        expect(latest).to_be_in_viewport()
        expect(jump).to_be_hidden()

        # The source panel stays beside the chat; a new conversation clears it.
        answer_of(page, 6).locator(".citadel-text a.citadel-cite").first.click()
        shown = page.locator("#citadel-source-panel .citadel-src-shown")
        expect(shown).to_contain_text("handbook.md")
        column = page.locator("#citadel-source-column")
        assert column.evaluate("(e) => getComputedStyle(e).position") == "sticky"
        page.locator("#citadel-new-chat").click()
        expect(shown).to_have_count(0)
        expect(page.locator("#citadel-source-panel")).to_contain_text("Click a [n]")


def test_a_markdown_answer_is_rendered_with_its_chips_outside_tables(
    site: Site, browser: Browser, shots: list[Page]
):
    with screenshots_on_failure("markdown", shots):
        page = login(browser, site, "bob", shots).page
        written = (
            "**Annual leave**: 25 days [1].\n\n- Ask your manager\n- Book it in Beacon\n\n"
            "| Site | Days |\n|---|---|\n| Lyon | 25 [1] |\n\n<b>raw</b> `code`"
        )
        site.fake.enqueue(Script(tokens=[written[i : i + 20] for i in range(0, len(written), 20)]))
        ask(page, LEAVE)
        wait_for_answer(page, 1)
        answer = answer_of(page, 1).locator(".citadel-md")
        expect(answer.locator("strong")).to_have_text("Annual leave")
        expect(answer.locator("li")).to_have_count(2)
        expect(answer.locator("table td").first).to_have_text("Lyon")
        expect(answer.locator("table a.citadel-cite")).to_have_count(0)
        expect(answer.locator("b")).to_have_count(0)
        expect(answer).to_contain_text("<b>raw</b>")
        expect(answer.locator("code")).to_have_text("code")
        answer.locator("a.citadel-cite").first.click()
        expect(page.locator("#citadel-source-panel .citadel-src-shown")).to_contain_text(
            "handbook.md"
        )

        # Feedback right under the answer: a comment, then a thumb.
        rate = answer_of(page, 1).locator(".citadel-rate")
        rate.get_by_title("Comment on this answer").fill("the table helps")
        rate.get_by_role("button", name="Not helpful").click()
        expect(page.locator("#citadel-rate-result")).to_contain_text(
            "Thank you: recorded as not helpful"
        )
        expect(rate.get_by_role("button", name="Not helpful")).to_have_attribute(
            "aria-pressed", "true"
        )
        kept = site.workspace.feedback.entries()
        assert (kept[-1].rating, kept[-1].comment) == (-1, "the table helps")
        assert kept[-1].actor == "bob"


def test_an_answer_shows_its_thinking_copies_regenerates_and_highlights_each_claim(
    site: Site, browser: Browser, shots: list[Page]
):
    with screenshots_on_failure("answer-tools", shots):
        visit = login(browser, site, "bob", shots)
        page = visit.page
        visit.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
        written = (
            "Employees get 25 days of paid annual leave [1]. Carried-over days expire on "
            "31 March of the following year [1]."
        )
        site.fake.enqueue(
            Script(
                tokens=["<think>The reader asks about leave.</think>", written[:40], written[40:]]
            )
        )
        ask(page, LEAVE)
        wait_for_answer(page, 1)
        answer = answer_of(page, 1)
        # The reasoning: collapsed above the answer, never part of it.
        thinking = answer.locator("details.citadel-thinking")
        expect(thinking.locator("summary")).to_contain_text("Thinking")
        expect(thinking.locator(".citadel-text")).to_be_hidden()
        thinking.locator("summary").click()
        expect(thinking.locator(".citadel-text")).to_have_text("The reader asks about leave.")
        expect(answer.locator(".citadel-md")).not_to_contain_text("reader asks")

        # Each [1] opens the passage with the sentence behind its own claim highlighted.
        chips = answer.locator(".citadel-md a.citadel-cite")
        expect(chips).to_have_count(2)
        mark = page.locator("#citadel-source-panel .citadel-src-shown mark")
        chips.nth(0).click()
        expect(mark).to_contain_text("25 days of paid annual leave")
        chips.nth(1).click()
        expect(mark).to_contain_text("expire on 31 March")

        # Copy: the answer's text and its sources, as plain text.
        answer.get_by_role("button", name="Copy").click()
        expect(answer.get_by_role("button", name="Copied")).to_be_visible()
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied.startswith("Employees get 25 days of paid annual leave [1].")
        assert "Sources:\n[1] handbook.md" in copied and "<" not in copied

        # Retry writes the last answer again, in its place.
        site.fake.enqueue(Script(tokens=["Full-time employees receive 25 days [1]."]))
        page.locator("#citadel-conversation").get_by_role("button", name="Retry").click()
        expect(answer_of(page, 1).locator(".citadel-md")).to_contain_text(
            "Full-time employees receive 25 days", timeout=WAIT_MS
        )
        expect(page.locator("#citadel-conversation .citadel-a")).to_have_count(1)
        expect(page.locator("#citadel-conversation .citadel-q")).to_have_count(1)
        assert site.fake.requests[-1]["messages"][-1]["content"].count(LEAVE) == 1


def test_on_a_phone_a_source_opens_as_a_sheet_without_moving_the_page(
    site: Site, browser: Browser, shots: list[Page]
):
    with screenshots_on_failure("phone", shots):
        visit = login(browser, site, "bob", shots)
        page = visit.page
        page.set_viewport_size({"width": 390, "height": 844})
        # The question box stays at hand at the bottom of the screen, wherever the page is.
        page.evaluate("window.scrollTo(0, 0)")
        expect(page.locator("#citadel-question textarea")).to_be_in_viewport()
        _ask_and_wait(site, page, 1)
        marker = answer_of(page, 1).locator(".citadel-text a.citadel-cite").first
        marker.scroll_into_view_if_needed()
        before = page.evaluate("window.scrollY")
        marker.click()
        sheet = page.locator("#citadel-source-column.citadel-sheet-open")
        expect(sheet).to_be_in_viewport()
        expect(sheet.locator(".citadel-src-shown")).to_contain_text("handbook.md")
        assert page.evaluate("window.scrollY") == before
        sheet.locator("#citadel-sheet-close").click()
        expect(page.locator("#citadel-source-column.citadel-sheet-open")).to_have_count(0)


def test_every_screen_passes_axe_core_light_and_dark_desktop_and_phone(
    site: Site, browser: Browser, shots: list[Page]
):
    problems: dict[str, list[str]] = {}
    blocked: list[str] = []  # the page's CSP refusing something Citadel's own UI needs
    with screenshots_on_failure("axe", shots):
        for dark in (False, True):
            for width, height in ((1400, 1000), (390, 844)):
                where = f"{'dark' if dark else 'light'} {width}px"
                visit = login(browser, site, "root", shots, dark=dark)
                page = visit.page
                page.on(
                    "console",
                    lambda m: blocked.append(m.text) if "Content Security" in m.text else None,
                )
                page.set_viewport_size({"width": width, "height": height})
                _ask_and_wait(site, page, 1)
                page.locator(".citadel-text a.citadel-cite").first.click()
                problems[f"ask, {where}"] = axe_problems(page)
                for tab in ("Documents", "Administration"):
                    page.get_by_role("tab", name=tab).click()
                    expect(page.get_by_role("tab", name=tab, selected=True)).to_be_visible()
                    page.wait_for_timeout(300)  # the tab's own loading starts (then settles)
                    problems[f"{tab.lower()}, {where}"] = axe_problems(page)
                page.context.clear_cookies()
                page.goto(site.url + "/login")
                problems[f"login, {where}"] = axe_problems(page)
                visit.context.close()
    found = [f"{screen}: {problem}" for screen, listed in problems.items() for problem in listed]
    assert found == [], "\n".join(found)
    assert blocked == []


def test_after_logout_or_an_ended_session_the_login_page_says_so(
    site: Site, browser: Browser, shots: list[Page]
):
    with screenshots_on_failure("session-ended", shots):
        page = login(browser, site, "alice", shots).page
        page.get_by_role("button", name="Log out").click()
        page.wait_for_url("**/login?ended=out")
        expect(page.get_by_role("status")).to_have_text("You are signed out.")
        page.go_back()  # not the app's page again, whose every event would fail
        expect(page.get_by_label("Username")).to_be_visible()
        assert "/login" in page.url

        page = login(browser, site, "bob", shots).page
        with page.expect_response(lambda r: r.url.endswith("/session")) as checked:
            page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
        assert checked.value.status == 204  # a session that works: the page stays
        page.wait_for_timeout(300)
        assert "/login" not in page.url
        site.workspace.accounts.set_password("bob", PASSWORDS["bob"] + "!")  # ends it
        try:
            page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")  # tab shown
            page.wait_for_url("**/login?ended=session")
            expect(page.get_by_role("status")).to_have_text(
                "Your session ended. Sign in again to continue."
            )
        finally:
            site.workspace.accounts.set_password("bob", PASSWORDS["bob"])


def test_conversations_are_saved_survive_a_reload_and_can_be_renamed_and_deleted(
    site: Site, browser: Browser, shots: list[Page]
):
    with screenshots_on_failure("conversations", shots):
        visit = login(browser, site, "bob", shots)
        page = visit.page
        page.locator("#citadel-new-chat").click()
        _ask_and_wait(site, page, 1)
        title = page.locator(
            "#citadel-conversation-title textarea, #citadel-conversation-title input"
        )
        expect(title).to_have_value(LEAVE)

        page.reload()  # a new page opens on a new conversation; the saved one is listed
        page.locator("#citadel-question textarea").wait_for()
        expect(page.locator("#citadel-conversation .citadel-a")).to_have_count(0)
        page.locator("#citadel-saved input").click()
        newest = page.locator("#citadel-saved [role='option']").first  # newest first
        expect(newest).to_contain_text(LEAVE)
        newest.click()
        first = answer_of(page, 1)
        expect(first).to_contain_text("Employees get 25 days of paid leave")
        title.fill("Leave rules")
        page.locator("#citadel-rename").click()
        expect(page.locator("#citadel-saved-status")).to_contain_text("Renamed")
        expect(page.locator("#citadel-saved input")).to_have_value("Leave rules")
        bob = site.workspace.caller_named("bob")
        assert bob is not None
        assert "Leave rules" in [c.title for c in site.workspace.conversations(bob)]

        page.locator("#citadel-new-chat").click()
        expect(page.locator("#citadel-conversation .citadel-a")).to_have_count(0)
        _ask_and_wait(site, page, 1)
        expect(page.locator("#citadel-saved input")).to_have_value(LEAVE)
        before = len(site.workspace.conversations(bob))
        page.locator("#citadel-delete-conversation").click()
        expect(page.locator("#citadel-saved-status")).to_contain_text("Deleted")
        expect(page.locator("#citadel-conversation .citadel-a")).to_have_count(0)
        after = [c.title for c in site.workspace.conversations(bob)]
        assert len(after) == before - 1 and "Leave rules" in after

        # alice, in her own browser, sees none of bob's conversations.
        alice = login(browser, site, "alice", shots).page
        listed = alice.locator("#citadel-saved")
        expect(listed).not_to_contain_text("Leave rules")
        alice.locator("#citadel-saved input").click()
        expect(alice.get_by_role("option", name="Leave rules")).to_have_count(0)


def test_alice_uploads_asks_opens_the_cited_page_and_bob_sees_none_of_it(
    site: Site, browser: Browser, shots: list[Page]
):
    with screenshots_on_failure("journey", shots):
        alice = login(browser, site, "alice", shots)
        page = alice.page
        assert options(page, "citadel-collections") == ["hr-docs"]

        upload(page, PDF)
        expect(page.locator("#citadel-library")).to_contain_text(PDF.name)

        site.fake.enqueue(
            Script(
                tokens=["A lost or stolen device ", "must be reported ", "within one hour [1]."],
                delay_between_s=0.5,
            )
        )
        page.get_by_role("tab", name="Ask").click()
        page.locator("#citadel-starters").get_by_text(LAPTOP).click()  # a suggested question
        streaming = page.locator("#citadel-conversation .citadel-streaming")
        expect(streaming).to_contain_text("A lost or stolen device", timeout=WAIT_MS)
        wait_for_answer(page, 1)
        conversation = page.locator("#citadel-conversation")
        expect(conversation).to_contain_text(LAPTOP)
        expect(conversation).to_contain_text("must be reported within one hour")
        marker = conversation.locator(".citadel-text a.citadel-cite", has_text="[1]")
        expect(marker).to_have_text("[1]")
        expect(page.locator("#citadel-send")).to_be_enabled()

        marker.click()
        source = page.locator("#citadel-source-panel .citadel-src-shown")
        expect(source).to_contain_text(PDF.name)
        expect(source.locator(".citadel-src-where")).to_contain_text("page 2")
        expect(source.locator("mark")).to_contain_text("reported within one hour")
        link = source.locator("a.citadel-open")
        expect(link).to_have_text("Open the document at page 2")
        expect(link).to_have_attribute("target", "_blank")
        expect(link).to_have_attribute("rel", re.compile(r"\bnoopener\b"))
        href = link.get_attribute("href") or ""
        assert re.fullmatch(r"/files/[\w-]+\?u=[\w-]+&e=\d+&s=[\w-]+#page=2", href), href
        opened = alice.context.request.get(site.url + href.split("#")[0])
        assert opened.status == 200
        assert opened.headers["content-type"].startswith("application/pdf")
        assert opened.body().startswith(b"%PDF-")

        rate = answer_of(page, 1).locator(".citadel-rate")
        rate.get_by_title("Comment on this answer").fill("exactly what I needed")
        rate.get_by_role("button", name="Helpful", exact=True).click()
        expect(page.locator("#citadel-rate-result")).to_contain_text("Thank you")
        entries = [e for e in site.workspace.feedback.entries() if e.actor == "alice"]
        assert [(e.rating, e.comment) for e in entries] == [(1, "exactly what I needed")]
        assert entries[0].sources[0]["source"] == PDF.name

        # A follow-up carries the conversation; with the model failing, search mode.
        site.fake.enqueue(Script(tokens=[LAPTOP]))  # the follow-up, condensed with the history
        site.fake.enqueue(Script(tokens=[], status=500))
        ask(page, "And whom do I tell?")
        wait_for_answer(page, 2)
        condense = site.fake.requests[-2]["messages"][-1]["content"]
        assert LAPTOP in condense and "must be reported within one hour" in condense
        second = answer_of(page, 2)
        banner = second.locator(".citadel-banner-search")
        # alice is no administrator: plain words, not the model server's address or error
        expect(banner).to_contain_text("Written answers are unavailable right now")
        expect(banner).not_to_contain_text("Ollama")
        second.locator("ol.citadel-sources a.citadel-cite", has_text="[1]").click()
        expect(source.locator(".citadel-src-n")).to_have_text("[1]")
        expect(source.locator(".citadel-src-text")).not_to_be_empty()

        assert alice.outside_requests(site.url) == []

        # bob, of another team, in his own browser session.
        bob = login(browser, site, "bob", shots)
        page = bob.page
        assert options(page, "citadel-collections") == ["eng-docs"]
        expect(page.get_by_text(LAPTOP)).to_have_count(0)  # hr-docs' suggested question
        expect(page.get_by_role("tab", name="Administration")).not_to_be_visible()
        ask(page, LAPTOP)
        wait_for_answer(page, 1)
        page.get_by_role("tab", name="Documents").click()
        assert options(page, "citadel-doc-collection") == ["eng-docs"]
        expect(page.locator("#citadel-library")).to_contain_text("handbook.md")
        content = page.content()
        assert PDF.name not in content and "hr-docs" not in content
        assert "within one hour" not in content

        # A signed link is alice's: rewritten for bob, it opens nothing.
        as_bob = base64.urlsafe_b64encode(b"bob").decode().rstrip("=")
        forged = re.sub(r"u=[\w-]+", f"u={as_bob}", href.split("#")[0])
        assert bob.context.request.get(site.url + forged).status == 404
        assert bob.outside_requests(site.url) == []
        for visit in (alice, bob):
            visit.context.close()


def test_a_hostile_document_stays_inert_from_upload_to_source_panel(
    site: Site, browser: Browser, shots: list[Page], tmp_path: Path
):
    hostile = tmp_path / "zephyr-garage.html"
    hostile.write_text(HOSTILE_HTML, encoding="utf-8")
    with screenshots_on_failure("hostile", shots):
        alice = login(browser, site, "alice", shots)
        page = alice.page
        upload(page, hostile)
        library = page.locator("#citadel-library")
        expect(library).to_contain_text(HOSTILE_TITLE)  # shown as text

        site.fake.enqueue(
            Script(
                tokens=[
                    "The Zephyr garage opens at 06:45 [1]. ",
                    f"<script>{PWNED}</script> ",
                    f'<img src=x onerror="{PWNED}"> ',
                    "![m](http://evil.example/model.png)",
                ],
                delay_between_s=0.2,
            )
        )
        ask(page, "When does the Zephyr parking garage open?")
        wait_for_answer(page, 1)
        conversation = page.locator("#citadel-conversation")
        # The model's HTML is dropped and its outside image reduced to its text (the
        # output guard); what remains is shown as text.
        written = conversation.locator(".citadel-a > .citadel-text")
        expect(written).to_contain_text("The Zephyr garage opens at 06:45")
        expect(written).to_contain_text(PWNED)
        expect(written).not_to_contain_text("<script>")
        expect(written).not_to_contain_text("evil.example/model.png")
        conversation.locator(".citadel-text a.citadel-cite", has_text="[1]").first.click()

        source = page.locator("#citadel-source-panel .citadel-src-shown")
        expect(source).to_contain_text("zephyr-garage.html")
        text = source.locator(".citadel-src-text")
        expect(text).to_contain_text(f"<script>{PWNED}</script>")
        expect(text).to_contain_text(f'<img src=x onerror="{PWNED}">')
        expect(text).to_contain_text("![t](http://evil.example/t.png)")
        mark = source.locator("mark")
        expect(mark).to_have_count(1)
        assert mark.inner_text().strip() in text.inner_text()  # cut out of the escaped text

        for area in ("#citadel-conversation", "#citadel-source-panel", "#citadel-library"):
            for tag in ("img", "script", "iframe", "svg image"):
                assert page.locator(f"{area} {tag}").count() == 0, (area, tag)
        assert page.evaluate("typeof window.__pwned") == "undefined"

        href = source.locator("a.citadel-open").get_attribute("href") or ""
        served = alice.context.request.get(site.url + href.split("#")[0])
        assert served.status == 200
        assert served.headers["content-disposition"].startswith("attachment")
        assert "sandbox" in served.headers["content-security-policy"]

        # Re-ingest, then delete it (two steps) from the library.
        page.get_by_role("tab", name="Documents").click()
        choose(page, "citadel-doc-select", hostile.name)
        page.locator("#citadel-doc-reingest").click()
        status = page.locator("#citadel-doc-status")
        status.locator(".citadel-progress[data-state='done']").wait_for(timeout=WAIT_MS)
        expect(status.locator("tr[data-status]")).to_have_attribute("data-status", "updated")
        choose(page, "citadel-doc-select", hostile.name)
        page.locator("#citadel-doc-delete").click()
        expect(status).to_contain_text("cannot be undone")
        page.locator("#citadel-doc-delete-confirm").click()
        expect(status).to_contain_text(f"Deleted {hostile.name}")
        expect(library).not_to_contain_text(hostile.name)
        expect(library).to_contain_text(PDF.name)

        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert alice.outside_requests(site.url) == []
        assert not [u for u in alice.requests if "evil.example" in u]
        alice.context.close()


def library_names(page: Page) -> list[str]:
    """The document names of the library table, in the order shown."""
    first_column = page.locator("#citadel-library td.citadel-doc-name .citadel-file-name")
    return [name.strip() for name in first_column.all_inner_texts()]


def test_several_files_at_once_with_their_results_then_the_library_and_its_failures(
    site: Site, browser: Browser, shots: list[Page], tmp_path: Path
):
    parking = tmp_path / "parking.md"
    parking.write_text("# Parking\n\nVisitors park on level minus two, near the lifts.\n")
    broken = tmp_path / "budget-2027.pdf"
    broken.write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog")  # a PDF cut short
    with screenshots_on_failure("library", shots):
        bob = login(browser, site, "bob", shots)
        page = bob.page
        page.get_by_role("tab", name="Documents").click()
        page.locator("#citadel-upload input[type='file']").set_input_files([parking, broken])
        done = page.locator("#citadel-upload-status .citadel-progress[data-state='done']")
        done.wait_for(timeout=WAIT_MS)
        expect(done.locator("tr[data-status]", has_text="parking.md")).to_have_attribute(
            "data-status", "added"
        )
        expect(done.locator("tr[data-status]", has_text="budget-2027.pdf")).to_have_attribute(
            "data-status", "failed"
        )
        # The failure stays listed with its reason, in Needs attention.
        failures = page.locator("#citadel-attention")
        expect(failures).to_contain_text("budget-2027.pdf")
        library = page.locator("#citadel-library")
        expect(library).to_contain_text("parking.md")
        assert library_names(page) == ["handbook.md", "parking.md"]  # by name
        choose(page, "citadel-library-sort", "Newest first")
        first_column = library.locator("td.citadel-doc-name")
        expect(first_column.first).to_contain_text("parking.md")
        page.locator("#citadel-library-filter textarea, #citadel-library-filter input").first.fill(
            "park"
        )
        page.keyboard.press("Enter")
        expect(first_column).to_have_count(1)
        assert library_names(page) == ["parking.md"]
        bob.context.close()


@contextlib.contextmanager
def other_site(html: str) -> Iterator[str]:
    """A page on another port of the same host: another origin, but the same site, so a
    SameSite=Lax cookie of Citadel's goes along with its requests (the worst case)."""
    body = html.encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_another_sites_page_can_neither_read_nor_act_with_a_users_session(
    site: Site, browser: Browser, shots: list[Page]
):
    # bob's page tries to read alice's UI and to sign her browser into bob's account.
    evil = f"""<!doctype html><html><body>
<form id="f" method="post" action="{site.url}/login">
<input name="username" value="bob"><input name="password" value="{PASSWORDS["bob"]}">
</form></body></html>"""
    with screenshots_on_failure("cross-site", shots), other_site(evil) as url:
        alice = login(browser, site, "alice", shots)
        page = alice.page
        page.goto(url)
        read = page.evaluate(
            """async (site) => {
                try { await fetch(site + '/config', {credentials: 'include'}); return 'read'; }
                catch (e) { return 'blocked'; }
            }""",
            site.url,
        )
        assert read == "blocked"  # no CORS grant: the UI's data stays out of bob's page
        logins = len(site.workspace.audit.entries(1000, actor="bob", action="login"))
        page.locator("#f").evaluate("form => form.submit()")
        expect(page.locator("body")).to_contain_text("cross-origin request refused")
        assert len(site.workspace.audit.entries(1000, actor="bob", action="login")) == logins
        page.goto(site.url + "/")  # alice is still alice
        expect(page.locator("#citadel-user")).to_contain_text("Signed in as alice")
        alice.context.close()


def test_an_administrator_edits_suggested_questions_and_exports_feedback(
    site: Site, browser: Browser, shots: list[Page]
):
    # One approved answer of root's own, so the export below has something to hold.
    ws = site.workspace
    admin = ws.caller_named("root")
    assert admin is not None
    site.fake.enqueue(Script(tokens=["Twenty-five days of paid annual leave [1]."]))
    *_, answered = ws.ask(admin, LEAVE, ["eng-docs"])
    assert isinstance(answered, Answered)
    ws.add_feedback(admin, answered.id, 1, "checked against the handbook")
    with screenshots_on_failure("admin", shots):
        root = login(browser, site, "root", shots)
        page = root.page
        assert set(options(page, "citadel-collections")) >= {"hr-docs", "eng-docs"}
        # Suggested questions are edited in the Administration tab, shown on the Ask tab.
        expect(page.get_by_text("Suggested questions (administrators)")).to_have_count(0)
        page.get_by_role("tab", name="Administration").click()
        page.get_by_role("tab", name="Suggested questions").click()
        editor = page.locator("#citadel-admin-starters-editor textarea")
        choose(page, "citadel-admin-starters-collection", "hr-docs")
        expect(editor).to_have_value(LAPTOP)
        editor.fill(f"{LAPTOP}\nWhere do visitors park?")
        page.locator("#citadel-admin-starters-save").click()
        expect(page.locator("#citadel-admin-starters-status")).to_contain_text("Saved 2")
        page.get_by_role("tab", name="Ask").click()
        expect(page.locator("#citadel-starters")).to_contain_text("Where do visitors park?")

        page.get_by_role("tab", name="Administration").click()
        page.get_by_role("tab", name="Feedback export").click()
        page.locator("#citadel-export-feedback").click()
        expect(page.locator("#citadel-export-status")).to_contain_text("exported")
        download = page.locator("#citadel-export-file a").first
        download.wait_for()
        href = download.get_attribute("href") or ""
        exported = root.context.request.get(href if "://" in href else site.url + href)
        assert exported.status == 200
        exported_questions = [json.loads(line) for line in exported.text().splitlines()]
        assert LEAVE in [q["question"] for q in exported_questions]
        (leave,) = [q for q in exported_questions if q["question"] == LEAVE]
        assert leave["sources"] == ["handbook.md"] and leave["collections"] == ["eng-docs"]
        assert root.outside_requests(site.url) == []
        root.context.close()


@dataclass
class FakeRequest:
    """What the handlers read of gr.Request: the logged-in user and the client."""

    username: str | None
    client: None = None


def test_handlers_recheck_every_permission_and_explain_errors(site: Site, tmp_path: Path):
    web = Handlers(site.workspace)
    alice, ghost, root = FakeRequest("alice"), FakeRequest("ghost"), FakeRequest("root")

    def final(events: Iterator[tuple[Any, ...]]) -> str:
        return str(list(events)[-1][0])

    # Unknown (removed, disabled) users get an explanation, nothing else.
    assert "disabled or was removed" in final(web.ask("q", ["hr-docs"], [], ghost))
    assert "disabled or was removed" in str(web.on_load(ghost)[0])
    # The picker is a convenience: another team's collection is refused by the workspace.
    refused = final(web.ask(LAPTOP, ["eng-docs"], [], alice))
    assert "citadel-banner-error" in refused and "no such collection" in refused
    assert "Traceback" not in refused
    assert "Choose at least one collection" in final(web.ask(LAPTOP, [], [], alice))
    # Asked before the page has filled the list in (None, where a list emptied is []): the
    # collections alice may read are searched, hers only.
    early = final(web.ask(LAPTOP, None, [], alice))
    assert "Choose at least one collection" not in early and "no such collection" not in early
    assert "handbook.md" not in early and "eng-docs" not in early
    # A conversation is its owner's, even if another browser presents its Gradio session.
    theirs = [Turn("What is my salary band", "<p>Band 7</p>", "a1", "Band 7", "alice")]
    shown, kept, *_ = list(web.ask("q", [], theirs, FakeRequest("bob")))[-1]
    assert "salary" not in str(shown) and "Band 7" not in str(shown) and kept == []
    shown, kept, *_ = list(web.ask("q", [], theirs, alice))[-1]
    assert "What is my salary band" in str(shown) and "Band 7" in str(shown)
    # A saved conversation is its owner's: another user can neither open, rename, delete
    # nor overwrite it, whatever id the browser sends.
    saved_id, _, _ = web.save_conversation("", theirs, alice)
    bob = FakeRequest("bob")
    opened = web.open_conversation(saved_id, bob)
    assert "salary" not in str(opened[0]) and opened[1] == []
    assert "no such conversation" in str(web.rename_conversation(saved_id, "pwned", bob)[1])
    assert "no such conversation" in str(web.delete_conversation(saved_id, bob)[-1])
    bobs = [Turn("Bob's own question", "<p>x</p>", "b1", "x", "bob")]
    assert web.save_conversation(saved_id, bobs, bob)[0] != saved_id  # a new one of his
    alice_caller = site.workspace.caller_named("alice")
    assert alice_caller is not None
    kept_turns = site.workspace.conversation(alice_caller, saved_id)
    assert [t["question"] for t in kept_turns] == ["What is my salary band"]
    assert saved_id not in str(web.saved_conversations(bob))
    # The text box's length limit is the browser's; the server checks again, before the
    # question reaches the audit log, the model or the store.
    asked_before = len(site.workspace.audit.entries(1000, actor="alice", action="ask"))
    too_long = final(web.ask("why " * 20_000, ["hr-docs"], [], alice))
    assert "citadel-banner-error" in too_long and "characters long" in too_long
    assert len(site.workspace.audit.entries(1000, actor="alice", action="ask")) == asked_before
    # Administrators only, checked by the workspace whatever the UI shows.
    saved = web.save_starters("hr-docs", "Q?", ["hr-docs"], alice)
    assert "only administrators" in str(saved[0])
    assert web.export(alice)[0] is None
    assert "only administrators" in str(web.export(alice)[1])
    assert web.export(root)[0] is not None
    assert "no such answer" in web.rate("not-an-answer-id", 1, "", alice)
    # A thumb under an answer goes through the same check; a forged payload does nothing.
    inline = web.rate_inline('{"answer": "not-an-answer-id", "rating": 1}', alice)
    assert "no such answer" in str(inline[0])
    for forged in ("", "not json", '{"answer": "x"}', '{"answer": "x", "rating": 5}'):
        shown, cleared = web.rate_inline(forged, alice)
        assert "Thank you" not in str(shown) and cleared == ""
    # Library of a collection that is not alice's: nothing, not an error page.
    docs = DocumentHandlers(web)
    rows, *_, failures = docs.library("eng-docs", "", "Name", 0, [], alice)
    assert "handbook" not in rows and "Choose a collection" in failures
    # An upload that is refused says why, per file; files outside Gradio's folder stay.
    fake_pdf = tmp_path / "report.pdf"
    fake_pdf.write_bytes(b"MZ\x90\x00 not a pdf at all")
    steps = list(docs.upload([str(fake_pdf)], "hr-docs", "", "Name", 0, [], alice))
    assert 'data-status="rejected"' in steps[-1][0] and "report.pdf" in steps[-1][0]
    assert fake_pdf.exists()
