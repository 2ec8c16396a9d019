"""unstructured, called inside a parser process: a file in, plain elements out.

Runs in the isolated worker (see workers.py), so it may import heavy parsing libraries;
it returns plain data that crosses the process boundary cheaply.
"""

from __future__ import annotations

import codecs
import importlib
import math
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ingest.formats import IMAGE_TYPES
from ingest.html_main import main_content
from ingest.ocr import OcrError, OcrOptions, OcrPage, image_pages, scanned_pdf_pages

# (module, function, extra keyword arguments) per file type
_PARTITIONERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    # "fast": pdfminer text extraction; no OCR or layout models, nothing to download.
    "pdf": (
        "unstructured.partition.pdf",
        "partition_pdf",
        {"strategy": "fast", "languages": ["eng"]},
    ),
    "docx": ("unstructured.partition.docx", "partition_docx", {}),
    "pptx": ("unstructured.partition.pptx", "partition_pptx", {}),
    # One table per sheet (no sub-table guessing): the chunker repeats its header row.
    "xlsx": ("unstructured.partition.xlsx", "partition_xlsx", {"find_subtable": False}),
    "odt": ("unstructured.partition.odt", "partition_odt", {}),
    "epub": ("unstructured.partition.epub", "partition_epub", {}),
    "html": ("unstructured.partition.html", "partition_html", {}),
    "md": ("unstructured.partition.md", "partition_md", {}),
    "txt": ("unstructured.partition.text", "partition_text", {}),
    "csv": ("unstructured.partition.csv", "partition_csv", {}),
    "tsv": ("unstructured.partition.tsv", "partition_tsv", {}),
    "eml": ("unstructured.partition.email", "partition_email", {}),
    "rtf": ("unstructured.partition.rtf", "partition_rtf", {}),
    "rst": ("unstructured.partition.rst", "partition_rst", {}),
    "org": ("unstructured.partition.org", "partition_org", {}),
}

# Formats read as text, whose encoding Citadel decides (unstructured guesses badly on short text).
_TEXT_WITH_ENCODING = {"html", "md", "txt", "csv"}
# When bytes are not UTF-8 and detection lands among the Latin single-byte code pages (which
# it cannot tell apart on short text), Windows-1252 is the one Western offices write.
_LEGACY_ENCODING = "cp1252"
_LATIN_SINGLE_BYTE = {
    "cp1250",
    "cp1252",
    "cp1254",
    "cp1257",
    "cp1258",
    "latin_1",
    "iso8859_2",
    "iso8859_3",
    "iso8859_4",
    "iso8859_9",
    "iso8859_10",
    "iso8859_13",
    "iso8859_14",
    "iso8859_15",
    "iso8859_16",
    "mac_latin2",
    "mac_roman",
    "mac_iceland",
    "mac_turkish",
    "cp850",
    "cp437",
}

# Element kinds that never carry document text worth citing.
_SKIPPED_CATEGORIES = {"PageBreak", "Image", "PageNumber"}
# A "word" this long is no language (an inlined image, a hash dump, a hostile file): kept
# whole, a 2 MB one became 8,890 chunks of nothing to read, embedded for a quarter of an hour.
MAX_WORD_CHARS = 200
_LONG_WORD = re.compile(r"\S{" + str(MAX_WORD_CHARS + 1) + ",}")
_PAGE_NUMBER = re.compile(r"^\s*(page\s*)?\d+(\s*(/|of)\s*\d+)?\s*$", re.IGNORECASE)
# A PDF's line that ends in a hyphen reaches us joined to the next one by a space:
# "keyword-" / "only" reads "keyword- only", "compres-" / "sion" reads "compres- sion".
_LINE_END_HYPHEN = re.compile(r"(\w+)-[ \n](\w+)")
# "pre- and post-processing": the hyphen of a word left unfinished on purpose.
_AFTER_SUSPENDED_HYPHEN = frozenset({"and", "or", "to", "et", "ou", "à"})
_WORD_OR_COMPOUND = re.compile(r"\w+(?:-\w+)*")


@dataclass(frozen=True)
class ParsedElement:
    category: str  # unstructured's element type: Title, NarrativeText, Table, ListItem...
    text: str
    page: int | None = None  # PDF page, PPTX slide, XLSX sheet index (1-based)
    depth: int | None = None  # heading level where the format tells it (0 = top)
    html: str | None = None  # tables: their HTML, to keep rows and cells
    sheet: str | None = None  # XLSX sheet name
    ocr: bool = False  # read by OCR from a scanned page or an image


class ParseError(Exception):
    """The document could not be read; the message is for the user."""


def warm_up(file_types: Iterable[str]) -> None:
    """Load what the partitioners need, so a file's time limit measures parsing only."""
    for file_type in sorted(set(file_types) - IMAGE_TYPES):
        importlib.import_module(_PARTITIONERS[file_type][0])
    # The spaCy model behind unstructured's text classification loads on first use (~1 s).
    from unstructured.partition.text import partition_text

    partition_text(text="Citadel warms up its parser. This sentence is classified.")


def parse_file(
    path: str, file_type: str, ocr: OcrOptions | None = None, deadline: float = math.inf
) -> list[ParsedElement]:
    """`ocr`: how to read pages without a text layer (None: not at all); `deadline`
    (time.monotonic()): when the file's time limit ends, for the OCR it waits on."""
    if not _utf8_name(path):
        # unstructured and pandoc encode the file name as UTF-8: a name in another encoding
        # (bytes Python keeps as surrogates) is parsed under a plain name, the same content.
        with tempfile.TemporaryDirectory(prefix="citadel-name-") as folder:
            plain = Path(folder) / f"document{Path(path).suffix.lower()}"
            shutil.copyfile(path, plain)
            return parse_file(str(plain), file_type, ocr, deadline)
    if file_type in IMAGE_TYPES:
        return _read_image(path, ocr, deadline)
    module, function, kwargs = _PARTITIONERS[file_type]
    partition = getattr(importlib.import_module(module), function)
    source: dict[str, Any] = {"filename": path}
    if file_type in _TEXT_WITH_ENCODING:
        raw = Path(path).read_bytes()
        encoding = text_encoding(raw)
        if file_type == "html":
            source = {"text": main_content(raw.decode(encoding, errors="replace"))}
        else:
            kwargs = {**kwargs, "encoding": encoding}
    try:
        elements = partition(**source, **kwargs)
    except MemoryError:
        raise
    except Exception as exc:
        raise ParseError(_describe(file_type, exc)) from exc
    parsed = [_convert(e) for e in elements]
    kept = [p for p in parsed if p is not None]
    if file_type == "eml" and elements:
        kept = _email_header(elements[0].metadata) + kept
    if file_type == "pdf" and ocr is not None:
        kept = _with_scanned_pages(path, kept, ocr, deadline)
    if not kept and file_type == "pdf":
        raise ParseError(_why_pdf_has_no_text(path, ocr))
    if file_type == "pdf":
        kept = rejoin_line_end_hyphens(kept)
    return kept


def rejoin_line_end_hyphens(elements: list[ParsedElement]) -> list[ParsedElement]:
    """Words a PDF broke at a line end, made whole again: "keyword- only" becomes
    "keyword-only" (a compound keeps its hyphen), and "compres- sion" becomes "compression"
    when the document writes "compression" elsewhere and never "compres-sion". Quoted in
    a citation, searched by its words, the word is the document's own."""
    words = {
        w.casefold() for e in elements for w in _WORD_OR_COMPOUND.findall(e.text) if len(w) > 1
    }

    def whole(match: re.Match[str]) -> str:
        left, right = match.group(1), match.group(2)
        if right.casefold() in _AFTER_SUSPENDED_HYPHEN:
            return match.group(0)
        joined, compound = left + right, f"{left}-{right}"
        if joined.casefold() in words and compound.casefold() not in words:
            return joined
        return compound

    return [replace(e, text=_LINE_END_HYPHEN.sub(whole, e.text)) for e in elements]


def _with_scanned_pages(
    path: str, elements: list[ParsedElement], ocr: OcrOptions, deadline: float
) -> list[ParsedElement]:
    """The PDF's elements with its scanned pages read by OCR, in page order. A page the
    text path read, or with any text layer, is never read by OCR."""
    read = {e.page for e in elements if e.page is not None}
    scanned = _ocr_elements(scanned_pdf_pages(path, read, ocr, deadline))
    if not scanned:
        return elements
    # Stable: each page's elements keep their order; pages without a number stay first.
    return sorted(elements + scanned, key=lambda e: e.page or 0)


def _read_image(path: str, ocr: OcrOptions | None, deadline: float) -> list[ParsedElement]:
    if ocr is None:
        raise ParseError("an image is read by OCR, which is turned off (CITADEL_INGEST__OCR=false)")
    elements = _ocr_elements(image_pages(path, ocr, deadline))
    if not elements:
        raise ParseError(
            "OCR found no text in this image (a photograph, or a blank or unreadable scan?)"
        )
    return elements


def _ocr_elements(pages: Iterable[OcrPage]) -> list[ParsedElement]:
    """Pages read by OCR as elements; the time limit and Tesseract's failures as the
    file's error."""
    elements: list[ParsedElement] = []
    try:
        for page in pages:
            for paragraph in page.paragraphs:
                text = _LONG_WORD.sub(_shortened, paragraph.strip())
                if text:
                    elements.append(ParsedElement("NarrativeText", text, page=page.page, ocr=True))
    except OcrError as exc:
        raise ParseError(str(exc)) from exc
    return elements


def _utf8_name(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text_encoding(raw: bytes) -> str:
    if raw.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        raw.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    import charset_normalizer

    best = charset_normalizer.from_bytes(raw).best()
    if best is None or best.encoding in _LATIN_SINGLE_BYTE:
        try:
            raw.decode(_LEGACY_ENCODING)
        except UnicodeDecodeError:
            # Bytes Windows-1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D): Latin-1
            # reads every byte, so the text is kept rather than the file refused.
            return "latin_1"
        return _LEGACY_ENCODING
    return str(best.encoding)


def _convert(element: Any) -> ParsedElement | None:
    category = str(element.category)
    text = _LONG_WORD.sub(_shortened, (element.text or "").strip())
    if category in _SKIPPED_CATEGORIES or not text:
        return None
    if category in {"Header", "Footer"} and _PAGE_NUMBER.match(text):
        return None
    md = element.metadata
    return ParsedElement(
        category=category,
        text=text,
        page=getattr(md, "page_number", None),
        depth=getattr(md, "category_depth", None),
        html=getattr(md, "text_as_html", None) if category == "Table" else None,
        sheet=getattr(md, "page_name", None),
    )


def _shortened(match: re.Match[str]) -> str:
    return match.group(0)[:MAX_WORD_CHARS] + "…"


def _email_header(md: Any) -> list[ParsedElement]:
    """The subject as the title, and who wrote to whom when: e-mail's own structure."""
    header: list[ParsedElement] = []
    if getattr(md, "subject", None):
        header.append(ParsedElement("Title", md.subject, depth=0))
    parts = [
        f"{label}: {', '.join(values)}"
        for label, values in (("From", md.sent_from), ("To", md.sent_to))
        if values
    ]
    if getattr(md, "last_modified", None):
        parts.append(f"Sent: {md.last_modified}")
    if parts:
        header.append(ParsedElement("NarrativeText", "; ".join(parts)))
    return header


def _describe(file_type: str, exc: Exception) -> str:
    name = type(exc).__name__
    message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else name
    if "password" in message.lower() or "encrypt" in message.lower() or "PDFPassword" in name:
        return (
            f"the {file_type.upper()} is password-protected (encrypted); remove the password first"
        )
    return f"cannot read this {file_type.upper()} ({name}: {message})"


def _why_pdf_has_no_text(path: str, ocr: OcrOptions | None) -> str:
    from pypdf import PdfReader

    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            return "the PDF is password-protected (encrypted); remove the password first"
        pages = len(reader.pages)
    except Exception as exc:
        return f"the PDF is damaged or truncated ({type(exc).__name__}); no text could be recovered"
    if ocr is None:
        return (
            f"no text layer in its {pages} page(s): a scanned PDF? "
            "(OCR is turned off: CITADEL_INGEST__OCR=false)"
        )
    return (
        f"no text layer in its {pages} page(s), and OCR found no text on them "
        "(no scanned image, or a blank or unreadable one)"
    )
