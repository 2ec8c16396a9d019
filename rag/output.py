"""Model output made harmless before any front end shows it (web UI, REST, /v1, CLI): a
document can ask the model to write an image whose address carries the answer to another
server, and an OpenAI client that renders Markdown would fetch it.

Neutralised, whatever the route:
- Markdown images that are not on this server (`![x](http://elsewhere/...)`, `![x][ref]`):
  their alt text stays;
- links to `javascript:`, `data:`, `vbscript:` or `file:` addresses: their text stays;
- HTML that loads something (img, iframe, script, style, link, object, embed, video,
  audio, source, svg, meta, base, form): removed.

`OutputGuard` applies the same rules to a stream, holding back only what might still become
such a construct, so the streamed text and the final text agree.
"""

from __future__ import annotations

import re

_SAFE_SCHEMES = ("http", "https", "mailto")
_URL = r"((?:[^()\s<>]|\([^()\s]*\))*)"  # one level of parentheses, as in (a(1))
_INLINE_IMAGE = re.compile(r"!\[([^\]\n]*)\]\(\s*<?" + _URL + r">?(?:\s+[^)\n]*)?\)")
_REFERENCE_IMAGE = re.compile(r"!\[([^\]\n]*)\]\[[^\]\n]*\]")
_LINK = re.compile(r"(?<!!)\[([^\]\n]*)\]\(\s*<?" + _URL + r">?(?:\s+[^)\n]*)?\)")
_AUTOLINK = re.compile(r"<\s*([a-zA-Z][a-zA-Z0-9+.\-]*):[^>\s]*>")
_LOADING_TAG = re.compile(
    r"</?\s*(?:img|image|iframe|frame|script|style|link|object|embed|video|audio|source|"
    r"track|svg|meta|base|form|input|picture)\b[^>]*>",
    re.IGNORECASE,
)
_SCRIPT_HREF = re.compile(
    r"""\b(?:href|src|action|formaction|xlink:href)\s*=\s*["']?\s*"""
    r"""(?:javascript|data|vbscript|file)\s*:[^"'\s>]*["']?""",
    re.IGNORECASE,
)
_SCHEME = re.compile(r"^\s*([a-zA-Z][a-zA-Z0-9+.\-]*)\s*:")
# A construct is held back at most this long, or to the end of its line.
_LONGEST_HELD = 400
_CONSTRUCT_START = re.compile(r"!?\[|!$|<(?=[a-zA-Z/!]|$)")


def _on_this_server(url: str) -> bool:
    """A relative address without a host ("/files/..."): the only images allowed."""
    url = url.strip()
    return not _SCHEME.match(url) and not url.startswith(("//", "\\\\", "/\\"))


def _safe_link(url: str) -> bool:
    scheme = _SCHEME.match(url)
    return scheme is None or scheme.group(1).lower() in _SAFE_SCHEMES


def neutralise(text: str) -> str:
    """`text` with every construct that could reach another server, or run, made inert."""

    def image(match: re.Match[str]) -> str:
        return match.group(0) if _on_this_server(match.group(2)) else match.group(1)

    def link(match: re.Match[str]) -> str:
        return match.group(0) if _safe_link(match.group(2)) else match.group(1)

    def autolink(match: re.Match[str]) -> str:
        return match.group(0) if match.group(1).lower() in _SAFE_SCHEMES else ""

    text = _INLINE_IMAGE.sub(image, text)
    text = _REFERENCE_IMAGE.sub(lambda m: m.group(1), text)
    text = _LINK.sub(link, text)
    text = _AUTOLINK.sub(autolink, text)
    text = _LOADING_TAG.sub("", text)
    return _SCRIPT_HREF.sub("", text)


class OutputGuard:
    """`neutralise` for a stream: text is let through as soon as it cannot be the start of
    an image, a link or a tag any more."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, text: str) -> str:
        self._held += text
        cut = _open_construct(self._held)
        ready, self._held = self._held[:cut], self._held[cut:]
        return neutralise(ready)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return neutralise(held)


def _open_construct(text: str) -> int:
    """Where the earliest construct that is not finished yet starts (len(text): none)."""
    position = 0
    while match := _CONSTRUCT_START.search(text, position):
        rest = text[match.start() :]
        if "\n" in rest or len(rest) > _LONGEST_HELD:
            position = match.end()  # a construct ends with its line: finished, or never one
            continue
        length = _finished_length(rest)
        if length is None:
            return match.start()
        position = match.start() + max(length, 1)
    return len(text)


def _finished_length(construct: str) -> int | None:
    """The length of the construct at the start of `construct` once it is complete; None
    while more text could still change what it is."""
    if construct == "!":
        return None  # may become an image
    if construct.startswith("<"):
        end = construct.find(">")
        return None if end < 0 else end + 1
    close = construct.find("]")
    if close < 0:
        return None
    after = construct[close + 1 :]
    if not after:
        return None  # "(" or "[" may still come
    if after[0] == "(":
        depth = 0
        for i, ch in enumerate(after):
            depth += {"(": 1, ")": -1}.get(ch, 0)
            if depth == 0:
                return close + 1 + i + 1
        return None
    if after[0] == "[" and construct.startswith("!"):
        end = after.find("]", 1)
        return None if end < 0 else close + 1 + end + 1
    return close + 1
