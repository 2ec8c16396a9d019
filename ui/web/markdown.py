"""A model's answer as Markdown, rendered safely: what the model writes is untrusted.

No raw HTML (escaped, as text), no images (Citadel's output guard already turned images
from elsewhere into their text), links only to http(s) addresses, opening in a new tab
without access to this page (`rel="noopener noreferrer"`). Citation markers become the
same chips as elsewhere, never inside a table: a table row's markers are listed after
the table, where they cannot break its columns.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from typing import Any

from markdown_it import MarkdownIt

from rag.code_spans import in_code
from rag.text import printable

_MARKER = re.compile(r"\[(~?)(\d{1,3})\]")  # [n] the model's, [~n] placed by Citadel
# Stand-ins for markers while Markdown is rendered (private-use characters, removed from
# the model's text first, so that no text can forge one).
_OPEN, _PLACED, _CLOSE = "\ue000", "\ue001", "\ue002"
# A stand-in carries the marker's number and its place among the text's markers.
_STAND_IN = re.compile(f"([{_OPEN}{_PLACED}])(\\d{{1,3}})\\.(\\d{{1,5}}){_CLOSE}")
_PRIVATE = re.compile(f"[{_OPEN}{_PLACED}{_CLOSE}]")
_TABLE_ROW = re.compile(r"^\s*\|")

# (number, placed by Citadel, which marker of the text it is, from 0) -> HTML
Chip = Callable[[int, bool, int], str]


def _renderer() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table").disable("image")
    md.validateLink = _safe_link  # type: ignore[method-assign]

    def link_open(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
        tokens[idx].attrSet("target", "_blank")
        tokens[idx].attrSet("rel", "noopener noreferrer")
        return str(renderer.renderToken(tokens, idx, options, env))

    md.add_render_rule("link_open", link_open)
    return md


def _safe_link(url: str) -> bool:
    return url.strip().lower().startswith(("https://", "http://"))


_MD = _renderer()


def markdown_html(text: str, numbers: Iterable[int], chip: Chip) -> str:
    """`text` rendered as Markdown (escaped, see the module), each marker of a real
    citation (`numbers`) a chip; any other bracket stays text."""
    valid = set(numbers)
    counter = itertools.count()

    def stand_in(match: re.Match[str]) -> str:
        if in_code(shown[: match.start()]):  # items[1] in code is code, not a citation
            return match.group(0)
        number, place = int(match.group(2)), next(counter)
        if number not in valid:
            return match.group(0)
        return f"{_PLACED if match.group(1) else _OPEN}{number}.{place}{_CLOSE}"

    # Control and direction characters go first, as everywhere text is shown.
    shown = _PRIVATE.sub("", printable(text))
    marked = _MARKER.sub(stand_in, shown)
    rendered = _MD.render(_markers_out_of_tables(marked))
    return _STAND_IN.sub(
        lambda m: chip(int(m.group(2)), m.group(1) == _PLACED, int(m.group(3))), rendered
    )


def _markers_out_of_tables(text: str) -> str:
    """Each table's markers taken out of its rows and put on a line after it."""
    out: list[str] = []
    held: dict[str, str] = {}  # the first marker of each number (with its kind)
    for line in text.split("\n"):
        if _TABLE_ROW.match(line):
            for m in _STAND_IN.finditer(line):
                held.setdefault(m.group(1) + m.group(2), m.group(0))
            out.append(_STAND_IN.sub("", line))
            continue
        if held:
            out += ["", " ".join(held.values()), ""]
            held = {}
        out.append(line)
    if held:
        out += ["", " ".join(held.values())]
    return "\n".join(out)
