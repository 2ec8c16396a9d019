"""Chunks follow structure and always fit the embedder's window (counted by its tokenizer)."""

from __future__ import annotations

import pytest

from ingest.chunk import Chunker, document_title
from ingest.parse import ParsedElement


@pytest.fixture(scope="module")
def chunker(embedder) -> Chunker:
    return Chunker(embedder.count_tokens, embedder.max_tokens)


def _e(category: str, text: str, **kw) -> ParsedElement:
    return ParsedElement(category=category, text=text, **kw)


def test_no_chunk_ever_exceeds_the_window(chunker, embedder):
    giant_word = "x" * 5000
    prose = " ".join(
        f"Sentence number {i} explains the failover procedure in detail." for i in range(400)
    )
    elements = [
        _e("Title", "Runbook", depth=0),
        _e("NarrativeText", prose),
        _e("NarrativeText", giant_word),
    ]

    drafts = chunker.chunk(elements, "md", "Runbook")

    assert len(drafts) > 5
    assert max(embedder.count_tokens(d.embed_text) for d in drafts) <= embedder.max_tokens
    assert "Sentence number 399" in " ".join(d.text for d in drafts)


def test_oversized_table_is_split_by_rows_with_its_header_repeated(chunker, embedder):
    rows = "".join(
        f"<tr><td>host-{i}</td><td>10.0.{i}.1</td><td>rack {i % 9}</td></tr>" for i in range(200)
    )
    html = f"<table><tr><th>Host</th><th>Address</th><th>Rack</th></tr>{rows}</table>"
    drafts = chunker.chunk([_e("Table", "flattened", html=html)], "html", "Inventory")

    assert len(drafts) > 1
    assert all(d.text.startswith("Host | Address | Rack\n") for d in drafts)
    assert all(embedder.count_tokens(d.embed_text) <= embedder.max_tokens for d in drafts)
    assert sum(d.text.count("host-") for d in drafts) == 200


def test_small_table_stays_whole_with_its_section(chunker):
    html = "<table><tr><td>City</td><td>Cap</td></tr><tr><td>Paris</td><td>190</td></tr></table>"
    drafts = chunker.chunk(
        [_e("Title", "Allowances", depth=0), _e("Table", "x", html=html)], "docx", "Travel"
    )
    assert [(d.text, d.headings) for d in drafts] == [("City | Cap\nParis | 190", ("Allowances",))]


def test_sections_build_a_trail_and_never_share_a_chunk(chunker):
    elements = [
        _e("Title", "Guide", depth=0),
        _e("NarrativeText", "Intro."),
        _e("Title", "Install", depth=1),
        _e("NarrativeText", "Run the installer."),
        _e("Title", "Upgrade", depth=1),
        _e("NarrativeText", "Back up first."),
    ]
    drafts = chunker.chunk(elements, "md", "Guide")
    assert [(d.headings, d.text) for d in drafts] == [
        (("Guide",), "Intro."),
        (("Guide", "Install"), "Run the installer."),
        (("Guide", "Upgrade"), "Back up first."),
    ]
    assert drafts[1].embed_text == "Guide\nInstall\n\nRun the installer."


def test_pdf_chunks_never_span_two_pages_and_numbered_headings_nest(chunker):
    elements = [
        _e("NarrativeText", "9.10. Backup", page=1),
        _e("NarrativeText", "Backups matter.", page=1),
        _e("ListItem", "9.10.1. Backing Up with rsync", page=1),
        _e("NarrativeText", "Use rsync.", page=1),
        _e("Title", "Example 9.3. master.conf", page=2),  # a caption: must not evict 9.10.1
        _e("NarrativeText", "bank: /backup", page=2),
    ]
    drafts = chunker.chunk(elements, "pdf", "Backup")
    assert [(d.pages, d.headings[-1]) for d in drafts] == [
        ((1,), "9.10. Backup"),
        ((1,), "9.10.1. Backing Up with rsync"),
        ((2,), "Example 9.3. master.conf"),
    ]
    assert drafts[2].headings == (
        "9.10. Backup",
        "9.10.1. Backing Up with rsync",
        "Example 9.3. master.conf",
    )


def test_sentences_are_never_taken_for_headings_and_closing_lines_are_kept(chunker):
    elements = [
        _e("Title", "Policy", depth=0),
        _e("NarrativeText", "Body."),
        _e("Title", "The CISO reviews this policy every year."),
    ]
    drafts = chunker.chunk(elements, "pdf", "Policy")
    assert "The CISO reviews this policy every year." in drafts[-1].text


def test_slides_and_sheets_are_their_own_chunks(chunker):
    slides = [
        _e("Title", "Welcome", page=1, depth=0),
        _e("NarrativeText", "Hello", page=1),
        _e("Title", "Short bullet", page=1, depth=1),
        _e("Title", "Agenda", page=2, depth=0),
        _e("NarrativeText", "Plan", page=2),
    ]
    drafts = chunker.chunk(slides, "pptx", "Deck")
    assert [(d.slide, d.headings, d.text) for d in drafts] == [
        (1, ("Welcome",), "Hello\n\nShort bullet"),
        (2, ("Agenda",), "Plan"),
    ]

    html = "<table><tr><td>a</td></tr><tr><td>b</td></tr></table>"
    sheets = [
        _e("Table", "a b", html=html, sheet="Q1", page=1),
        _e("Table", "a b", html=html, sheet="Q2", page=2),
    ]
    assert [(d.sheet, d.headings) for d in chunker.chunk(sheets, "xlsx", "Book")] == [
        ("Q1", ("Q1",)),
        ("Q2", ("Q2",)),
    ]


def test_document_title_prefers_the_first_heading():
    assert (
        document_title(
            [_e("NarrativeText", "x"), _e("Title", "Annual Report", depth=0)], "pdf", "file"
        )
        == "Annual Report"
    )
    assert document_title([_e("NarrativeText", "Just text.")], "txt", "notes") == "notes"


def test_a_sentence_cut_by_a_pdf_page_break_is_joined_and_cites_both_pages(chunker):
    drafts = chunker.chunk(
        [
            _e("NarrativeText", "Kernel sources are in a package. Note that the source", page=1),
            _e("NarrativeText", "tree is patched by Debian.", page=2),
            _e("NarrativeText", "A new paragraph on page two.", page=2),
            _e("NarrativeText", "The build needs 20 GB.", page=2),
            _e("NarrativeText", "Page three starts anew.", page=3),
        ],
        "pdf",
        "Kernel",
    )

    assert [(d.pages, d.text) for d in drafts] == [
        (
            (1, 2),
            "Kernel sources are in a package. Note that the source tree is patched by Debian.",
        ),
        ((2,), "A new paragraph on page two.\n\nThe build needs 20 GB."),
        ((3,), "Page three starts anew."),
    ]


def test_pdf_titles_that_are_file_names_or_terms_are_not_headings(chunker):
    drafts = chunker.chunk(
        [
            _e("ListItem", "8.10.4. Compiling and Building the Package", page=1),
            _e("NarrativeText", "The build produces several packages:", page=1),
            _e("Title", "linux-libc-dev", page=1),
            _e("NarrativeText", "contains headers for user-space libraries.", page=1),
            _e("Title", "debian/certs/debian-uefi-certs.pem", page=1),
            _e("Title", "6.2.6, “Working with Several Distributions”", page=1),
            _e("Title", "NOTE Clean up before rebuilding", page=1),
            _e("NarrativeText", "Run make clean first.", page=1),
        ],
        "pdf",
        "Kernel",
    )

    assert [d.headings for d in drafts] == [
        ("8.10.4. Compiling and Building the Package",),
        ("8.10.4. Compiling and Building the Package", "NOTE Clean up before rebuilding"),
    ]
    assert "linux-libc-dev" in drafts[0].text and "debian-uefi-certs.pem" in drafts[0].text


def test_a_page_footer_is_not_joined_with_the_next_page(chunker):
    drafts = chunker.chunk(
        [
            _e("NarrativeText", "The policy applies to everyone.", page=1),
            _e("Footer", "Company confidential", page=1),
            _e("NarrativeText", "and contractors too, as section 2 says.", page=2),
        ],
        "pdf",
        "Policy",
    )

    assert all("confidential and contractors" not in d.text for d in drafts)


def test_titles_without_capitals_still_count_outside_pdfs(chunker):
    drafts = chunker.chunk(
        [
            _e("Title", "数据保护政策"),
            _e("NarrativeText", "内容。"),
            _e("Title", "iOS setup"),
            _e("NarrativeText", "Install the profile."),
        ],
        "docx",
        "Guide",
    )

    assert [d.headings[-1] for d in drafts] == ["数据保护政策", "iOS setup"]
