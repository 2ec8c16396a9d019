"""The web UI's HTML: document text, names and model output are inert, citations link only
to real sources, highlights are cut out of escaped text safely."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from rag.types import OCR_NOTE, Answer, Citation, Passage
from ui.web.render import (
    FileRow,
    Turn,
    actions_html,
    answer_html,
    chat_messages,
    error_html,
    esc,
    highlight,
    progress_html,
    source_block,
    streaming_html,
    thinking_html,
    user_html,
)

HOSTILE = (
    'Intro <script>alert(1)</script> then <img src=x onerror="alert(2)"> and '
    "![x](http://evil.example/p.png) and [link](javascript:alert(3)) "
    '<a href="http://evil.example/">click</a> <iframe src="http://evil.example/"></iframe> '
    "<svg onload=alert(4)></svg> <style>body{display:none}</style> \x1b[2J\u202eevil"
)
# Our own markup: the only tags and attributes the renderer may produce.
ALLOWED_TAGS = {
    "a",
    "code",
    "em",
    "pre",
    "blockquote",
    "div",
    "li",
    "mark",
    "ol",
    "p",
    "span",
    "strong",
    "ul",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "form",  # the log-out button's, posting to /logout only (checked below)
    "button",
    "input",  # the comment under an answer (a thumb sends it)
    "details",  # a reasoning model's thinking, collapsed
    "summary",
    "time",  # when a document was added (the library)
    "caption",
}
ALLOWED_ATTRIBUTES = {
    "aria-label",
    "maxlength",
    "placeholder",
    "method",
    "action",
    "type",
    "class",
    "href",
    "role",
    "title",
    "hidden",
    "target",
    "rel",
    "data-state",
    "data-status",
    "data-stage",  # the Documents tab: a file's stage, Retry / Dismiss, a library row
    "data-action",
    "data-source",
    "data-document",
    "datetime",
    "tabindex",
    "scope",
}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags_of(markup: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(markup)
    parser.close()
    return parser.tags


def assert_inert(markup: str) -> None:
    """Only the renderer's own tags, no event handler, no outside URL, no script."""
    lowered = markup.lower()
    assert "<script" not in lowered and "<img" not in lowered and "<iframe" not in lowered
    assert "<svg" not in lowered and "<style" not in lowered
    for tag, attrs in tags_of(markup):
        assert tag in ALLOWED_TAGS, tag
        assert set(attrs) <= ALLOWED_ATTRIBUTES, attrs
        href = attrs.get("href")
        if href is not None and re.fullmatch(r"#citadel-source-[^\s]+-\d+-\d+", href):
            # a chip: its source block, named in the fragment (no other "#" link is made)
            assert tag == "a" and "citadel-cite" in (attrs.get("class") or ""), attrs
        elif href is not None and not href.startswith("/files/"):
            # a link the model wrote: http(s) only, a new tab without access to this page
            assert href.startswith(("https://", "http://")), href
            assert attrs.get("target") == "_blank" and "noopener" in (attrs.get("rel") or "")
        if tag == "form":
            assert attrs == {"class": "citadel-logout", "method": "post", "action": "logout"}
    assert "\x1b" not in markup and "\u202e" not in markup


def passage(text: str = HOSTILE, **fields: object) -> Passage:
    values: dict[str, object] = {
        "chunk_id": "c1",
        "collection": "hr-docs",
        "document_id": "doc-1",
        "source": 'policies/<img src=x onerror="alert(5)">.pdf',
        "file_type": "pdf",
        "title": "<b>Title</b> & more",
        "headings": ("<script>h</script>",),
        "pages": (2, 3),
        "number": 0,
        "text": text,
        "score": 0.9,
    }
    values.update(fields)
    return Passage(**values)  # type: ignore[arg-type]


def link_for(p: Passage) -> str:
    return f"/files/{p.document_id}?u=YWxpY2U&e=1&s=sig#page={p.pages[0] if p.pages else 1}"


def answer(text: str, citations: list[Citation], **fields: object) -> Answer:
    values: dict[str, object] = {
        "question": "q",
        "standalone_question": "q",
        "text": text,
        "citations": citations,
        "passages": [c.passage for c in citations],
    }
    values.update(fields)
    return Answer(**values)  # type: ignore[arg-type]


# -- escaping ------------------------------------------------------------------------------


def test_esc_escapes_markup_quotes_and_drops_control_characters():
    assert esc('<a href="x">\'&') == "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;"
    assert esc("a\x1b[2Jb\u202ec\nd\te") == "a[2Jbc\nd\te"


def test_a_hostile_passage_renders_as_text_in_its_source_block():
    p = passage()
    block = source_block("ans-1", 1, p, "then <img src=x", link_for(p))

    assert_inert(block)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in block
    assert "![x](http://evil.example/p.png)" in block  # shown as typed, never an image
    assert "&lt;b&gt;Title&lt;/b&gt; &amp; more" in block
    assert "policies/&lt;img src=x onerror=&quot;alert(5)&quot;&gt;.pdf" in block
    assert "<mark class='citadel-mark'>then &lt;img src=x</mark>" in block
    assert 'href="/files/doc-1?u=YWxpY2U&amp;e=1&amp;s=sig#page=2"' in block
    assert 'target="_blank" rel="noopener noreferrer"' in block
    assert "Open the document at page 2" in block
    assert "page" in block and "pages 2-3" in block


def test_a_hostile_answer_stays_inert_in_every_mode():
    p = passage()
    cited = answer(
        f"{HOSTILE} [1] and [2] and [7].",
        [Citation(1, p, "Intro", False), Citation(2, passage(chunk_id="c2"), "then", False)],
        unsupported=[HOSTILE],
        notice=HOSTILE,
        incomplete=True,
    )
    search = answer(
        "",
        [Citation(1, p, HOSTILE[:60], False)],
        search_mode=True,
        notice=f"Search mode: {HOSTILE}",
    )
    refused = answer("I could not find this in your documents.", [], refused=True)
    refused = Answer(**{**refused.__dict__, "passages": [p, passage(document_id="doc-2")]})
    for a in (cited, search, refused):
        markup = answer_html('a"><script>', a, link_for)
        assert_inert(markup)
        assert "citadel-source-a&quot;&gt;&lt;script&gt;-1-0" in markup


def test_streamed_text_is_escaped_and_markers_are_not_links_yet():
    markup = streaming_html("<img src=x onerror=alert(1)> so [1]")
    assert_inert(markup)
    assert "citadel-cite" not in markup
    assert "&lt;img src=x onerror=alert(1)&gt; so [1]" in markup


def test_conversation_questions_and_errors_are_escaped():
    messages = chat_messages(
        [
            Turn("<script>alert(1)</script>?", error_html("<img src=x onerror=alert(2)>")),
            Turn("![x](http://evil.example/p.png)", streaming_html("")),
        ]
    )
    assert [m["role"] for m in messages] == ["user", "assistant"] * 2
    markup = "".join(m["content"] for m in messages)
    assert_inert(markup)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;?" in markup
    assert "citadel-banner-error" in markup


def test_progress_table_and_user_line_escape_names():
    rows = [
        FileRow('<img src=x onerror="alert(1)">.pdf', "failed", 0, "<script>x</script>"),
        FileRow("ok.md", "added", 3),
    ]
    markup = progress_html(rows, "done", "Done <b>", "<i>message</i>")
    assert_inert(markup)
    assert 'data-state="done"' in markup and 'data-status="added"' in markup
    signed_in = user_html("<img src=x>", False, ["<b>team</b>"], auth=True)
    assert_inert(signed_in)
    assert "&lt;img src=x&gt;" in signed_in and "&lt;b&gt;team&lt;/b&gt;" in signed_in
    assert 'method="post" action="logout"' in signed_in  # a link could be followed by anyone
    assert "<form" not in user_html("local", True, [], auth=False)


# -- citation markers ----------------------------------------------------------------------


def cited_html(answer_id: str, text: str, *cited: tuple[int, str, bool]) -> str:
    """An answer's HTML, with a citation (number, its passage's text, placed by Citadel?)
    for each of `cited`."""
    citations = [Citation(n, passage(t, chunk_id=f"c{n}"), t, placed) for n, t, placed in cited]
    return answer_html(answer_id, answer(text, citations), link_for)


def test_markers_become_links_only_for_real_citations():
    markup = cited_html(
        "ans",
        "A [1], B [2], C [3] [x] [12] [1, 2] [-1]",
        (1, "First passage.", False),
        (3, "Third one.", False),
    )

    in_text = markup.split('class="citadel-sources"')[0]
    links = re.findall(
        r'<a class="citadel-cite" href="#citadel-source-ans-(\d+)-0"[^>]*>\[(\d+)\]</a>', in_text
    )
    assert links == [("1", "1"), ("3", "3")]
    assert "B [2]," in markup and "[12]" in markup and "[1, 2]" in markup
    assert_inert(markup)


def test_marker_links_carry_the_answer_id_escaped():
    markup = cited_html('id"onclick="alert(1)', "<b>x</b> [1]", (1, "First passage.", False))
    assert 'href="#citadel-source-id&quot;onclick=&quot;alert(1)-1-0"' in markup
    assert "&lt;b&gt;x&lt;/b&gt; " in markup
    assert_inert(markup)


def test_a_cited_answer_has_one_hidden_block_per_citation_and_a_sources_list():
    markup = cited_html(
        "ans", "One [1]. Two [~2].", (1, "First passage.", False), (2, "Second one.", True)
    )
    blocks = [a for _, a in tags_of(markup) if (a.get("class") or "").startswith("citadel-src ")]
    assert [(b["class"], "hidden" in b) for b in blocks] == [
        ("citadel-src citadel-source-ans-1-0", True),
        ("citadel-src citadel-source-ans-2-0", True),
    ]
    # [1] the model's, [~2] placed by Citadel: each in the text and in the list, drawn apart
    assert markup.count('class="citadel-cite"') == 2
    assert markup.count('class="citadel-cite citadel-cite-placed"') == 2
    assert "citadel-banner" not in markup


# -- highlighting --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "snippet", "marked"),
    [
        (
            "Cats & dogs <3 are fine. Next.",
            "Cats & dogs <3 are fine.",
            "Cats &amp; dogs &lt;3 are fine.",
        ),
        ("a <b>bold</b> claim here", "<b>bold</b> claim", "&lt;b&gt;bold&lt;/b&gt; claim"),
        ("Spread\nover   lines & more", "Spread over lines &", "Spread\nover   lines &amp;"),
        (
            "Long sentence that was cut short by the snippet",
            "Long sentence that…",
            "Long sentence that",
        ),
        ("quote \" and ' marks", "\" and '", "&quot; and &#x27;"),
    ],
)
def test_highlight_marks_the_snippet_inside_escaped_text(text, snippet, marked):
    markup = highlight(text, snippet)
    assert f"<mark class='citadel-mark'>{marked}</mark>" in markup
    assert markup.replace(f"<mark class='citadel-mark'>{marked}</mark>", marked) == esc(text)


@pytest.mark.parametrize("snippet", ["", "…", "not in the text", "amp", "lt;"])
def test_highlight_without_a_match_is_just_the_escaped_text(snippet):
    # "amp" and "lt;" are in the escaped text only: the search runs on the raw text.
    assert highlight("a & b < c", snippet) == esc("a & b < c")


def test_highlight_cannot_be_steered_into_markup():
    text = "x <scr<mark>ipt> y"
    markup = highlight(text, "<mark>")
    assert markup == "x &lt;scr<mark class='citadel-mark'>&lt;mark&gt;</mark>ipt&gt; y"
    assert_inert(markup)


# -- banners -------------------------------------------------------------------------------


def test_search_mode_banner_speaks_plainly_to_employees_and_gives_admins_the_detail():
    p = passage("The best passage text.")
    searched = answer(
        "",
        [Citation(1, p, "The best passage text.", False)],
        search_mode=True,
        notice="Search mode: no Ollama server answers at http://127.0.0.1:11434.",
    )
    employee = answer_html("ans", searched, link_for)
    admin = answer_html("ans", searched, link_for, technical=True)

    assert 'class="citadel-banner citadel-banner-search"' in employee
    assert "Written answers are unavailable right now" in employee
    assert "passages that match" in employee and "administrator" in employee
    assert "Ollama" not in employee and "127.0.0.1" not in employee
    assert "no Ollama server answers at http://127.0.0.1:11434" in admin
    for markup in (employee, admin):
        assert 'class="citadel-src citadel-source-ans-1-0"' in markup


def test_refusal_banner_suggests_rephrasing_and_lists_the_closest_documents():
    a, b = passage(document_id="d1", source="a.pdf"), passage(document_id="d2", source="b.md")
    refused = answer("I could not find this in your documents.", [], refused=True)
    # The answer service gives a refusal one passage per document (the closest ones).
    refused = Answer(**{**refused.__dict__, "passages": [a, b]})
    markup = answer_html("ans", refused, link_for)
    assert 'class="citadel-banner citadel-banner-refused"' in markup
    assert "Not found in your documents" in markup and "rephras" in markup
    assert "collections" in markup
    assert markup.count(">a.pdf</a>") == 1 and markup.count(">b.md</a>") == 1


def test_a_refusal_for_a_name_no_document_mentions_says_the_name():
    refused = answer("I could not find this in your documents.", [], refused=True)
    named = Answer(**{**refused.__dict__, "absent_names": ("Workday",)})

    markup = answer_html("ans", named, link_for)

    assert "No document you can search mentions “Workday”. Check the spelling" in markup
    assert "do not seem to answer" not in markup
    # The same through the API's wire format, as the remote CLI reads it back.
    from ui.http.wire import AnswerOut

    assert AnswerOut.of(named).to_answer().absent_names == ("Workday",)


def test_incomplete_and_truncated_answers_get_a_notice_banner():
    p = passage("Text.")
    cut = answer(
        "Partial [1]",
        [Citation(1, p, "Text.", False)],
        incomplete=True,
        notice="The answer is incomplete: the Ollama server stopped responding.",
    )
    markup = answer_html("ans", cut, link_for)
    assert "citadel-banner-incomplete" in markup and "stopped responding" in markup
    dropped = answer("Fine [1]", [Citation(1, p, "Text.", False)], notice="2 passages left out.")
    assert "citadel-banner-notice" in answer_html("ans", dropped, link_for)


def test_open_link_label_depends_on_the_file_type():
    assert "Open the document at page 4" in source_block(
        "a", 1, passage(pages=(4,)), "", "/files/x#page=4"
    )
    md = passage(file_type="md", pages=(), source="notes.md")
    assert "Download the original file" in source_block("a", 1, md, "", "/files/x")


def test_no_ui_handler_is_published_as_a_public_gradio_api(tmp_path):
    """Gradio publishes event handlers as API endpoints unless they are private: every
    handler of the UI must be, or it could be called outside the page's flow."""
    from rag.settings import Settings
    from ui.service.workspace import Workspace
    from ui.web.app import build
    from ui.web.handlers import Handlers

    workspace = Workspace(Settings(data_dir=tmp_path / "data"))
    try:
        handlers = build(Handlers(workspace)).get_config_file()["dependencies"]
    finally:
        workspace.close()
    assert len(handlers) > 20
    public = [h["api_name"] for h in handlers if h.get("api_visibility") != "private"]
    assert public == []


# -- plain words for the library -----------------------------------------------------------


def test_a_failure_reason_is_told_without_the_parsers_exception_names():
    from ui.web.render import plain_reason

    technical = "cannot read this PDF (PdfStreamError: Stream has ended unexpectedly)"
    assert plain_reason(technical) == "cannot read this PDF"
    damaged = "the PDF is damaged or truncated (KeyError); no text could be recovered"
    assert plain_reason(damaged) == "the PDF is damaged or truncated; no text could be recovered"
    kept = "the file is 80 MB, over the 50 MB upload limit (ask your administrator)"
    assert plain_reason(kept) == kept


def test_library_sizes_and_dates_read_as_people_say_them():
    from datetime import UTC, datetime

    from ui.web.render import ago, file_size

    assert [file_size(n) for n in (300, 2_048, 5 * 2**20 + 2**19)] == [
        "300 bytes",
        "2 KB",
        "5.5 MB",
    ]
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert ago("2026-12-05T11:59:30+00:00", now) == "just now"
    assert ago("2026-12-05T11:55:00+00:00", now) == "5 minutes ago"
    assert ago("2026-12-05T11:00:00+00:00", now) == "1 hour ago"
    assert ago("2026-12-02T12:00:00+00:00", now) == "3 days ago"
    assert ago("2026-01-15T09:00:00+00:00", now) == "15 Jan 2026"


# -- Markdown answers ----------------------------------------------------------------------


def _chip(n: int, placed: bool, place: int) -> str:
    return f'<a class="chip" data-n="{n}" data-placed="{placed}">[{n}]</a>'


def test_a_models_markdown_is_rendered_and_its_markers_become_chips():
    from ui.web.markdown import markdown_html

    text = (
        "**Leave**: 25 days [1].\n\n1. Ask your manager [~2]\n2. Book it in `Beacon`\n\n"
        "```\nrm -rf /\n```"
    )
    html_out = markdown_html(text, [1, 2], _chip)

    assert "<strong>Leave</strong>" in html_out and "<ol>" in html_out
    assert "<code>Beacon</code>" in html_out and "<pre><code>rm -rf /" in html_out
    assert '<a class="chip" data-n="1" data-placed="False">[1]</a>' in html_out
    assert '<a class="chip" data-n="2" data-placed="True">[2]</a>' in html_out
    assert "[~2]" not in html_out


def test_brackets_in_code_stay_code_and_chips_count_only_the_citations():
    from ui.web.markdown import markdown_html

    text = "Take the first [1]:\n```python\nfirst = items[1]\n```\nOr `row[2]`, as said [2]."
    places: list[tuple[int, int]] = []

    def chip(n: int, placed: bool, place: int) -> str:
        places.append((n, place))
        return _chip(n, placed, place)

    html_out = markdown_html(text, [1, 2], chip)

    assert '<pre><code class="language-python">first = items[1]\n</code></pre>' in html_out
    assert "<code>row[2]</code>" in html_out
    # The place of each chip among the citations, as `marker_support` numbers them.
    assert places == [(1, 0), (2, 1)]


def test_a_models_markdown_cannot_carry_html_scripts_images_or_unsafe_links():
    from ui.web.markdown import markdown_html

    hostile = (
        '<img src=x onerror="alert(1)"> <script>alert(2)</script> '
        "[click](javascript:alert(3)) [data](data:text/html,x) ![pic](http://evil.example/p.png) "
        "[fine](https://intranet.example/page) [9] \ue0001\ue002"
    )
    html_out = markdown_html(hostile, [1], _chip)

    assert "<img" not in html_out and "<script" not in html_out
    assert "&lt;img src=x" in html_out and "&lt;script&gt;" in html_out
    assert 'href="javascript' not in html_out and 'href="data' not in html_out
    assert (
        '<a href="https://intranet.example/page" target="_blank" rel="noopener noreferrer">'
        "fine</a>" in html_out
    )
    assert "[9]" in html_out and 'class="chip"' not in html_out  # no forged chip either


def test_markers_are_never_inside_a_table_row():
    from ui.web.markdown import markdown_html

    table = "| Site | Days [~1] |\n|---|---|\n| Lyon | 25 [2] |\n\nThat is all."
    html_out = markdown_html(table, [1, 2], _chip)

    table_part, after = html_out.split("</table>")
    assert "<th>Days</th>" in table_part and "<td>25</td>" in table_part
    assert 'class="chip"' not in table_part
    assert 'data-n="1"' in after and 'data-n="2"' in after and "That is all." in after


# -- per-claim highlights, thinking, actions -----------------------------------------------


def test_each_marker_highlights_the_sentence_behind_its_own_claim():
    text = (
        "Employees get 25 days of paid annual leave. Parental leave lasts 16 weeks, fully paid. "
        "Unused days expire in March."
    )
    p = passage(text, chunk_id="c1")
    written = "Annual leave is 25 days [1]. Parents get 16 weeks of leave [1]."
    # The citation's own snippet is the best match for both claims together.
    markup = answer_html("ans", answer(written, [Citation(1, p, "Unused days", False)]), link_for)

    chips = re.findall(r'<a class="citadel-cite" href="#([^"]+)"', markup)
    text_chips, list_chip = chips[:2], chips[2]
    assert list_chip == "citadel-source-ans-1-0"  # the list opens the citation's snippet
    assert len(set(text_chips)) == 2 and list_chip not in text_chips
    marked = {
        key: re.search(rf'class="citadel-src {key}" hidden>.*?<mark[^>]*>(.*?)</mark>', markup)
        for key in text_chips
    }
    assert [m.group(1) if m else None for m in marked.values()] == [
        "Employees get 25 days of paid annual leave.",
        "Parental leave lasts 16 weeks, fully paid.",
    ]
    assert_inert(markup)


def test_thinking_is_escaped_and_collapsed():
    markup = thinking_html("<img src=x onerror=alert(1)> **not markdown**")
    assert_inert(markup)
    assert markup.startswith('<details class="citadel-thinking"><summary>')
    assert " open" not in markup
    assert "&lt;img src=x onerror=alert(1)&gt; **not markdown**" in markup


def test_under_each_answer_copy_and_the_two_ratings_name_the_answer_in_a_class():
    markup = actions_html('id"x')
    assert_inert(markup)
    assert 'class="citadel-rate citadel-rate-for-id&quot;x"' in markup
    buttons = re.findall(r"<button[^>]*>([^<]*)</button>", markup)
    assert buttons == ["Copy", "Helpful", "Not helpful"]
    assert 'title="Comment on this answer"' in markup


def test_a_passage_read_by_ocr_says_so_where_it_is_cited():
    scanned = passage("Les employés reçoivent leur badge à l'accueil.", pages=(2,), ocr=True)
    typed = passage("Visitors wear a badge.", pages=(1,), chunk_id="c2", number=1)
    cited = [Citation(1, scanned, scanned.text, False), Citation(2, typed, typed.text, False)]
    answer = Answer("q", "q", "", cited, [scanned, typed], search_mode=True)

    html = answer_html("a1", answer, lambda p: "/files/d")

    # The scan's line in the list and its source panel, nothing of the typed page's.
    assert html.count(OCR_NOTE) == 2
    assert f".pdf, page 2 ({OCR_NOTE})" in html
    assert ".pdf, page 1 (" not in html
