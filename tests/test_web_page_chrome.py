"""A web page is indexed for its content: its navigation, search box, header and footer
(the same on every page of a site) are not passages, and do not name the page."""

from __future__ import annotations

from ingest.chunk import document_title
from ingest.parse import parse_file

# The shape of a page exported by Sphinx (Python's documentation): chrome marked with ARIA
# roles around one `role="main"` block.
SPHINX_LIKE = """<!DOCTYPE html><html><head><title>Leave — Handbook</title>
<style>body { color: black }</style></head><body>
<div class="related" role="navigation"><h3>Navigation</h3>
  <ul><li><a href="index.html">index</a></li><li><a href="next.html">next</a> |</li></ul></div>
<div class="document"><div class="body" role="main">
  <h1>Annual leave</h1>
  <p>Employees receive 25 days of paid leave per calendar year.</p>
  <p>Up to five unused days may be carried over until 31 March.</p>
</div></div>
<div class="sphinxsidebar" role="navigation"><h3>This Page</h3>
  <ul><li><a href="bug.html">Report a Bug</a></li><li>Show Source</li></ul>
  <div role="search"><h3>Quick search</h3><form><input name="q"></form></div></div>
<div class="footer">&copy; Copyright 2026, Example Corp.</div>
</body></html>"""

# No main element: chrome given by HTML's own landmarks, and an article whose header and
# footer belong to it.
LANDMARKS = """<html><head><title>Expenses</title></head><body>
<header><a href="/">Intranet home</a> <a href="/news">News</a></header>
<nav><ul><li>Benefits</li><li>Travel</li></ul></nav>
<article><header><h1>Travel expenses</h1><p>By the finance team</p></header>
  <p>Claims are filed within 30 days of the trip, with the receipts attached.</p>
  <footer><p>Reviewed in January.</p></footer></article>
<aside><h2>Popular pages</h2><p>Cafeteria menu</p></aside>
<footer><p>Contact the web team</p></footer>
<script>trackVisitor()</script>
</body></html>"""


def _parsed(tmp_path, name, markup):
    path = tmp_path / name
    path.write_text(markup, encoding="utf-8")
    return parse_file(str(path), "html")


def test_a_page_with_a_main_region_is_indexed_for_it_alone(tmp_path):
    elements = _parsed(tmp_path, "leave.html", SPHINX_LIKE)
    text = " ".join(e.text for e in elements)

    assert "25 days of paid leave" in text and "31 March" in text
    for chrome in ("Navigation", "Report a Bug", "Show Source", "Quick search", "Copyright"):
        assert chrome not in text
    assert document_title(elements, "html", "leave.html") == "Annual leave"


def test_without_a_main_region_the_landmarks_of_the_site_are_left_out(tmp_path):
    text = " ".join(e.text for e in _parsed(tmp_path, "expenses.html", LANDMARKS))

    assert "Claims are filed within 30 days" in text
    # The article's own header and footer are its content.
    assert "Travel expenses" in text and "By the finance team" in text
    assert "Reviewed in January" in text
    for chrome in ("Intranet home", "Benefits", "Popular pages", "web team", "trackVisitor"):
        assert chrome not in text


def test_a_page_without_chrome_is_read_whole(tmp_path):
    markup = "<html><body><h1>Parking</h1><p>Visitors park on level -2.</p></body></html>"

    text = " ".join(e.text for e in _parsed(tmp_path, "parking.html", markup))

    assert "Parking" in text and "Visitors park on level -2." in text


def test_a_page_whose_main_region_is_empty_keeps_the_rest(tmp_path):
    markup = (
        "<html><body><main></main><div><h1>Parking</h1>"
        "<p>Visitors park on level -2.</p></div><nav>Home</nav></body></html>"
    )

    text = " ".join(e.text for e in _parsed(tmp_path, "parking.html", markup))

    assert "Visitors park on level -2." in text and "Home" not in text
