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
