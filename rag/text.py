"""Untrusted text (documents, file names, model output) made safe to display.

rich escapes its own markup, but control characters pass through: an ESC in a document
could clear the screen, hide text or forge a link; bidirectional overrides could reorder
what is read.

    printable         removes them (tabs and newlines stay): for text a person reads
    escape_invisible  writes every invisible character as its escape (\u202e): for a name
                      that must stay recognisable, such as a rejected file's
"""

from __future__ import annotations

import re
import unicodedata

_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    return _CONTROLS.sub("", text)


def escape_invisible(text: str) -> str:
    """`text` with every control, format (bidi), surrogate or unassigned character escaped."""
    return "".join(
        ch if not unicodedata.category(ch).startswith("C") else ascii(ch)[1:-1] for ch in text
    )


def shorten(text: str, limit: int) -> str:
    """Whitespace collapsed, cut at a word boundary with an ellipsis beyond `limit`."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"
