"""The content of a web page without its chrome: what a reader reads, not the site around it.

Exported documentation, wikis and intranet pages repeat their navigation, search box, header
and footer on every page. Parsed as text, that chrome became a third of a documentation
corpus's chunks ("index | modules | next | previous", "Report a Bug / Show Source"), the
title of every page ("Navigation", the sidebar's heading) and the closest match of questions
that match nothing well, French ones above all. The page says which part is its content:
the `<main>` element (or `role="main"`), else everything but the landmarks HTML and ARIA
give to chrome.
"""

from __future__ import annotations

from typing import Any

# ARIA landmark roles of page chrome (and the elements that carry them implicitly).
_CHROME_ROLES = ("navigation", "banner", "contentinfo", "search", "complementary")
_NEVER_TEXT = ("script", "style", "template", "noscript")


def main_content(markup: str) -> str:
    """`markup` with only its main content in `<body>`, the `<head>` (title) kept. Markup
    that does not parse, or has no chrome to remove, comes back as it was."""
    import lxml.html
    from lxml import etree

    try:
        root = lxml.html.document_fromstring(markup)
    except (etree.ParserError, ValueError):
        return markup
    body = root.find("body")
    mains = root.xpath(".//main | .//*[@role='main']")
    # One main region with text: the page's content. Several would be the page's own idea
    # of structure: keep them all, removing the chrome around them instead.
    kept_main = body is not None and len(mains) == 1 and "".join(mains[0].itertext()).strip()
    if kept_main:
        for child in list(body):
            body.remove(child)
        body.append(mains[0])
    else:
        # unstructured reads only the first <main> when there is one: an empty one (or one
        # of several) would hide the rest of the page.
        for main in mains:
            main.tag = "div" if main.tag == "main" else main.tag
    chrome = _chrome(body if body is not None else root)
    if not mains and not chrome:
        return markup
    for element in chrome:
        element.drop_tree()  # its tail (text after it) stays
    return str(lxml.html.tostring(root, encoding="unicode"))


def _chrome(scope: Any) -> list[Any]:
    roles = " or ".join(f"@role='{role}'" for role in _CHROME_ROLES)
    never = " | ".join(f".//{tag}" for tag in _NEVER_TEXT)
    # <header>/<footer>/<aside> are chrome only at page level: inside an <article>,
    # <section> or <main> they hold that part's own title, byline or note.
    page_level = "not(ancestor::article or ancestor::section or ancestor::main)"
    found = scope.xpath(
        f".//nav | .//aside[{page_level}] | .//header[{page_level}]"
        f" | .//footer[{page_level}] | .//*[{roles}] | {never}"
    )
    # Nested chrome goes with its outermost element.
    outer = set(found)
    return [e for e in found if not any(a in outer for a in e.iterancestors())]
