"""Document text on the terminal: inert, whatever bytes it holds."""

from __future__ import annotations

import io

from rich.console import Console

from rag.types import Passage
from ui.cli.render import print_passages, shown


def test_control_sequences_and_markup_in_documents_are_inert() -> None:
    hostile = (
        "\x1b[2J\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\ [red]x[/] :warning: \u202eevil"
    )
    passage = Passage(
        chunk_id="c",
        collection="docs",
        document_id="d",
        source=f"a{hostile}.md",
        file_type="md",
        title="t",
        headings=(hostile,),
        pages=(),
        number=0,
        text=hostile,
        score=1.0,
    )
    buffer = io.StringIO()
    # No colour from rich itself: any ESC in the output would come from the document.
    console = Console(file=buffer, force_terminal=False, emoji=False, width=200)

    print_passages(console, [passage])

    output = buffer.getvalue()
    assert "\x1b" not in output and "\u202e" not in output
    assert "[red]x[/]" in output and ":warning:" in output
    assert shown("a\tb\nc\x07") == "a\tb\nc"
