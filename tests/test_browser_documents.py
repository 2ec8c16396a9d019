# ruff: noqa: F811  (the browser and shots fixtures are test_browser's, taken as arguments)
"""The Documents tab in a real browser (Debian's chromium, driven by Playwright) against
the real server: per-file progress, one Needs attention list with Retry, re-ingestion
reported as updated, the library a page at a time, and no collection chosen for a user
who may add to several. On failure, screenshots are saved under test-artifacts/.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from rag.ids import document_id
from rag.settings import ServerSettings, Settings
from rag.types import CollectionSpec, DocumentRecord
from rag.wiring import Services
from tests.live_server import LiveServer, free_port
from tests.test_browser import (  # noqa: F401  (browser and shots are fixtures)
    PDF,
    WAIT_MS,
    axe_problems,
    browser,
    choose,
    options,
    screenshots_on_failure,
    shots,
)
from ui.service.workspace import Workspace

pytestmark = pytest.mark.slow

PASSWORDS = {
    "alice": "alice-password-1",
    "bob": "bob-password-12",
    "carol": "carol-password-1",
}
BROKEN_PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog"  # a PDF cut short
ARCHIVED = 120  # documents of eng-docs: three pages of 50


@dataclass
class Site:
    url: str
    workspace: Workspace


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, embedder) -> Iterator[Site]:
    base = tmp_path_factory.mktemp("documents")
    settings = Settings(
        data_dir=base / "data",
        llm={"host": f"http://127.0.0.1:{free_port()}"},  # type: ignore[arg-type]
        server=ServerSettings(auth=True),
    )
    workspace = Workspace(settings, Services(settings, preloaded_embedder=embedder))
    accounts = workspace.accounts
    for team in ("hr", "eng"):
        accounts.add_team(team)
    for user, teams in (("alice", ["hr"]), ("bob", ["eng"]), ("carol", ["hr", "eng"])):
        accounts.add_user(user, PASSWORDS[user])
        for team in teams:
            accounts.add_member(team, user)
    workspace.catalog.assign("hr-docs", "hr")
    workspace.catalog.assign("eng-docs", "eng")
    # Many small documents, quickly: their records only (the library lists records).
    store, embedder_ = workspace.services.store, workspace.services.embedder
    store.ensure_collection("eng-docs", CollectionSpec(embedder_.model_name, embedder_.dimension))
    for i in range(ARCHIVED):
        source = f"memo-{i:03d}-{'quarterly-engineering-review' if i % 7 == 0 else 'note'}.md"
        store.put_document(
            DocumentRecord(
                id=document_id("eng-docs", source),
                collection="eng-docs",
                source=source,
                file_type="md",
                title=f"Memo {i}",
                pages=0,
                chunks=1 + i % 5,
                sha256=f"{i:064x}",
                size=900 + 4000 * i,
                ingested_at="2026-11-20T10:00:00+00:00",
                root=str(base),
            )
        )
    try:
        with LiveServer(workspace) as server:
            yield Site(server.url, workspace)
    finally:
        workspace.close()


def login(browser: Browser, site: Site, user: str, pages: list[Page], **context: object) -> Page:
    options_ = {"viewport": {"width": 1400, "height": 1000}, **context}
    page = browser.new_context(**options_).new_page()  # type: ignore[arg-type]
    page.context.set_default_timeout(30_000)
    pages.append(page)
    page.goto(site.url + "/")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(PASSWORDS[user])
    page.get_by_role("button", name="Log in").click()
    page.locator("#citadel-question textarea").wait_for()
    page.get_by_role("tab", name="Documents").click()
    return page


def drop(page: Page, *paths: Path) -> None:
    page.locator("#citadel-upload input[type='file']").set_input_files([str(p) for p in paths])


def finished(page: Page, where: str = "#citadel-upload-status") -> object:
    done = page.locator(f"{where} .citadel-progress[data-state='done']")
    done.wait_for(timeout=WAIT_MS)
    return done


RECORD_STAGES = """() => {
  window.__stages = new Set();
  new MutationObserver(() => {
    for (const row of document.querySelectorAll('#citadel-upload-status tr[data-stage]')) {
      window.__stages.add(row.dataset.stage);
    }
  }).observe(document.body, {childList: true, subtree: true});
}"""


def test_three_files_one_rejected_one_failing_then_retry_until_it_goes_in(
    site: Site, browser: Browser, shots: list[Page], tmp_path: Path
):
    notes = tmp_path / "canteen-opening-hours.md"
    notes.write_text("# Canteen\n\nThe canteen opens at noon on weekdays.\n")
    tool = tmp_path / "installer.exe"
    tool.write_bytes(b"MZ\x90\x00 a program")
    broken = tmp_path / "budget-2027.pdf"
    broken.write_bytes(BROKEN_PDF)
    with screenshots_on_failure("documents-attention", shots):
        page = login(browser, site, "alice", shots)
        # Her only collection is chosen for her, and named by the drop zone.
        expect(page.locator("#citadel-doc-collection input")).to_have_value("hr-docs")
        expect(page.locator("#citadel-upload")).to_contain_text("add them to hr-docs")
        page.evaluate(RECORD_STAGES)
        drop(page, notes, tool, broken)
        done = page.locator("#citadel-upload-status .citadel-progress[data-state='done']")
        done.wait_for(timeout=WAIT_MS)
        rows = {
            name: done.locator("tr[data-status]", has_text=name)
            for name in (notes.name, tool.name, broken.name)
        }
        expect(rows[notes.name]).to_have_attribute("data-status", "added")
        expect(rows[notes.name].locator(".citadel-file-status")).to_contain_text("Added: 1 section")
        expect(rows[tool.name]).to_have_attribute("data-status", "rejected")
        expect(rows[broken.name]).to_have_attribute("data-status", "failed")
        expect(done.locator(".citadel-job-state")).to_contain_text("hr-docs")
        seen = set(page.evaluate("Array.from(window.__stages)"))
        assert {"received", "done", "rejected"} <= seen, seen  # and stages between, if seen
        # One list: the file not accepted (why, what to do) and the one not read (Retry).
        attention = page.locator("#citadel-attention")
        rejected = attention.locator("li[data-status='rejected']", has_text=tool.name)
        expect(rejected).to_contain_text("cannot read this type of file")
        expect(rejected).to_contain_text("Save it as PDF or Word")
        failed = attention.locator("li[data-status='failed']", has_text=broken.name)
        expect(failed.get_by_role("button", name=f"Retry {broken.name}")).to_be_visible()
        # Retry with the cause still there: it reports the failure again.
        failed.get_by_role("button", name=f"Retry {broken.name}").click()
        expect(page.locator("#citadel-upload-status .citadel-job-state")).to_contain_text(
            f"Trying {broken.name} again", timeout=WAIT_MS
        )
        again = finished(page)
        expect(again.locator("tr[data-status]", has_text=broken.name)).to_have_attribute(
            "data-status", "failed"
        )
        expect(attention.locator("li[data-status='failed']", has_text=broken.name)).to_be_visible()
        # The cause fixed (the kept original replaced by a good PDF): Retry adds it.
        kept = site.workspace.settings.uploads_path / "hr-docs" / broken.name
        shutil.copy(PDF, kept)
        failed = attention.locator("li[data-status='failed']", has_text=broken.name)
        failed.get_by_role("button", name=f"Retry {broken.name}").click()
        expect(
            page.locator("#citadel-upload-status tr[data-status='added']", has_text=broken.name)
        ).to_be_visible(timeout=WAIT_MS)
        expect(attention.locator("li", has_text=broken.name)).to_have_count(0)
        expect(page.locator("#citadel-library")).to_contain_text(broken.name)
        # The rejected file stays until dismissed.
        rejected.get_by_role("button", name=f"Dismiss {tool.name}").click()
        expect(attention.locator("li", has_text=tool.name)).to_have_count(0)
        expect(attention).to_contain_text("Nothing needs your attention in hr-docs")
        # Read again: reported as updated, not added.
        choose(page, "citadel-doc-select", notes.name)
        page.locator("#citadel-doc-reingest").click()
        status = page.locator("#citadel-doc-status .citadel-progress[data-state='done']")
        status.wait_for(timeout=WAIT_MS)
        expect(status.locator("tr[data-status]", has_text=notes.name)).to_have_attribute(
            "data-status", "updated"
        )
        # The same name uploaded again with new content: updated too.
        notes.write_text("# Canteen\n\nThe canteen opens at half past eleven.\n")
        drop(page, notes)
        page.wait_for_timeout(300)
        expect(
            page.locator("#citadel-upload-status tr[data-status='updated']", has_text=notes.name)
        ).to_be_visible(timeout=WAIT_MS)
        page.context.close()


def test_the_library_pages_through_many_documents_readably(
    site: Site, browser: Browser, shots: list[Page]
):
    with screenshots_on_failure("documents-paging", shots):
        page = login(browser, site, "bob", shots)
        line = page.locator("#citadel-library-page")
        expect(line).to_have_text(f"Documents 1–50 of {ARCHIVED}")
        library = page.locator("#citadel-library")
        expect(library.locator("tbody tr")).to_have_count(50)
        previous, following = (
            page.locator("#citadel-library-previous"),
            page.locator("#citadel-library-next"),
        )
        expect(previous).to_be_disabled()
        following.click()
        expect(line).to_have_text(f"Documents 51–100 of {ARCHIVED}")
        expect(library).to_contain_text("memo-050-note.md")
        following.click()
        expect(line).to_have_text(f"Documents 101–120 of {ARCHIVED}")
        expect(following).to_be_disabled()
        previous.click()
        expect(line).to_have_text(f"Documents 51–100 of {ARCHIVED}")
        # Sizes in KB or MB, dates as people say them, a proportional font, no column cut.
        first = library.locator("tbody tr").first
        expect(first).to_contain_text("KB")
        expect(first.locator("time")).to_have_attribute("datetime", "2026-11-20T10:00:00+00:00")
        font = library.locator("td").first.evaluate("(el) => getComputedStyle(el).fontFamily")
        assert "mono" not in font.lower(), font
        table = library.locator("table")
        widths = table.evaluate("(t) => [t.scrollWidth, t.parentElement.clientWidth]")
        assert widths[0] <= widths[1] + 1, widths  # nothing hidden at 1400 px
        # A filter starts again from the first page.
        page.locator("#citadel-library-filter input, #citadel-library-filter textarea").first.fill(
            "quarterly"
        )
        page.keyboard.press("Enter")
        expect(line).to_have_text("Documents 1–18 of 18")
        page.context.close()


def test_with_two_collections_nothing_is_chosen_and_the_choice_is_remembered(
    site: Site, browser: Browser, shots: list[Page], tmp_path: Path
):
    memo = tmp_path / "memo.md"
    memo.write_text("# Memo\n\nThe lab closes on Fridays.\n")
    with screenshots_on_failure("documents-choice", shots):
        page = login(browser, site, "carol", shots)
        assert options(page, "citadel-doc-collection") == ["eng-docs", "hr-docs"]
        expect(page.locator("#citadel-doc-collection input")).to_have_value("")
        expect(page.locator("#citadel-upload")).to_contain_text("Choose a collection above")
        drop(page, memo)
        expect(page.locator("#citadel-upload-status")).to_contain_text(
            "Nothing was added: choose the collection"
        )
        assert "memo.md" not in str(site.workspace.audit.entries(50, actor="carol"))
        page.locator("#citadel-doc-collection input").evaluate("(el) => el.blur()")
        choose(page, "citadel-doc-collection", "hr-docs")
        expect(page.locator("#citadel-upload")).to_contain_text("add them to hr-docs")
        expect(page.locator("#citadel-attention")).to_contain_text("in hr-docs")
        page.reload()
        page.get_by_role("tab", name="Documents").click()
        expect(page.locator("#citadel-doc-collection input")).to_have_value("hr-docs")
        expect(page.locator("#citadel-upload")).to_contain_text("add them to hr-docs")
        page.context.close()


def test_the_documents_tab_passes_axe_core_light_and_dark_desktop_and_phone(
    site: Site, browser: Browser, shots: list[Page], tmp_path: Path
):
    odd = tmp_path / "a-rather-long-file-name-for-the-quarterly-review-of-things.exe"
    odd.write_bytes(b"MZ\x90\x00 a program")
    problems: dict[str, list[str]] = {}
    with screenshots_on_failure("documents-axe", shots):
        for dark in (False, True):
            for width, height in ((1400, 1000), (390, 844)):
                page = login(
                    browser,
                    site,
                    "bob",
                    shots,
                    viewport={"width": width, "height": height},
                    color_scheme="dark" if dark else "light",
                )
                expect(page.locator("#citadel-library-page")).to_contain_text("Documents 1–50")
                drop(page, odd)
                expect(page.locator("#citadel-attention")).to_contain_text(odd.name)
                problems[f"{'dark' if dark else 'light'} {width}px"] = axe_problems(page)
                if width == 390:  # the library scrolls sideways inside its own box only
                    overflow = page.evaluate(
                        "document.documentElement.scrollWidth - window.innerWidth"
                    )
                    assert overflow <= 1, overflow
                    fit = page.locator("#citadel-library table").evaluate(
                        "(t) => t.scrollWidth - t.parentElement.clientWidth"
                    )
                    assert fit <= 1, fit  # every column shown is whole, none scrolled off
                page.context.close()
    found = [f"{screen}: {problem}" for screen, listed in problems.items() for problem in listed]
    assert found == [], "\n".join(found)
