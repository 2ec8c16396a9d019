"""Every format the README lists is parsed by an installed parser (no missing dependency)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.formats import SUPPORTED_EXTENSIONS, format_of
from ingest.parse import parse_file, warm_up
from rag.offline import enforce_offline

MARKDOWN = "# Parking rules\n\nVisitors park on level -2. Badges are issued at reception.\n"


def test_every_supported_format_has_an_importable_parser():
    enforce_offline()
    formats = [format_of(Path(f"file{ext}")) for ext in SUPPORTED_EXTENSIONS]
    warm_up({f.name for f in formats if f is not None})


@pytest.mark.parametrize("fmt", ["odt", "epub", "rtf", "rst", "org"])
def test_pandoc_formats_are_parsed_to_text(tmp_path, fmt):
    import pypandoc

    target = tmp_path / f"parking.{fmt}"
    source = tmp_path / "parking.md"
    source.write_text(MARKDOWN, encoding="utf-8")
    pypandoc.convert_file(str(source), fmt, outputfile=str(target), extra_args=["--standalone"])

    text = " ".join(e.text for e in parse_file(str(target), fmt))

    assert "Visitors park on level -2" in text


def test_tab_separated_values_are_parsed_as_a_table(tmp_path):
    target = tmp_path / "rooms.tsv"
    target.write_text("Room\tSeats\nAtlas\t12\nBoreal\t6\n", encoding="utf-8")

    [table] = [e for e in parse_file(str(target), "tsv") if e.category == "Table"]

    assert "Boreal" in table.text and table.html and "<td>6</td>" in table.html


def test_words_a_pdf_broke_at_a_line_end_are_whole_again(tmp_path):
    """pdfminer joins a PDF's lines with a space, so a line ending in a hyphen read
    "keyword- only": quoted like that in a citation, and no longer the word a search for
    keyword-only looks for."""
    from tests.docgen import write_pdf

    pdf = write_pdf(
        tmp_path / "notes.pdf",
        [
            [
                "Arguments after the star are keyword-",
                "only: they must be passed by name. The compres-",
                "sion level defaults to 9, the slowest compression.",
                "Both pre- and post-processing hooks run on each file.",
            ]
        ],
    )
    text = " ".join(e.text for e in parse_file(str(pdf), "pdf"))

    assert "keyword-only: they" in text
    assert "The compression level" in text  # the document writes "compression" elsewhere
    assert "pre- and post-processing" in text  # a hyphen left unfinished on purpose
