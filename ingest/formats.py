"""The file formats Citadel ingests, recognised by extension and confirmed by content."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Format:
    name: str  # the `file_type` stored with every chunk
    container: str  # "pdf", "zip" (OOXML, ODF, EPUB), "text", "ole" or "image" (read by OCR)
    paged: bool = False  # pages are meaningful for citations


_FORMATS = {
    ".pdf": Format("pdf", "pdf", paged=True),
    ".docx": Format("docx", "zip"),
    ".pptx": Format("pptx", "zip"),
    ".xlsx": Format("xlsx", "zip"),
    ".odt": Format("odt", "zip"),
    ".epub": Format("epub", "zip"),
    ".html": Format("html", "text"),
    ".htm": Format("html", "text"),
    ".md": Format("md", "text"),
    ".markdown": Format("md", "text"),
    ".txt": Format("txt", "text"),
    ".text": Format("txt", "text"),
    ".log": Format("txt", "text"),
    ".csv": Format("csv", "text"),
    ".tsv": Format("tsv", "text"),
    ".eml": Format("eml", "text"),
    ".rtf": Format("rtf", "text"),
    ".rst": Format("rst", "text"),
    ".org": Format("org", "text"),
    # Scans and photographed pages: read by OCR, each frame of a TIFF a page.
    ".png": Format("png", "image", paged=True),
    ".jpg": Format("jpeg", "image", paged=True),
    ".jpeg": Format("jpeg", "image", paged=True),
    ".tif": Format("tiff", "image", paged=True),
    ".tiff": Format("tiff", "image", paged=True),
}
# How each image format's content starts (TIFF: little- or big-endian).
_IMAGE_MAGIC = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
    "tiff": (b"II*\x00", b"MM\x00*"),
}

SUPPORTED_EXTENSIONS = tuple(sorted(_FORMATS))
IMAGE_TYPES = frozenset(f.name for f in _FORMATS.values() if f.container == "image")
# Formats whose chunks cite pages (PDF pages, image frames).
PAGE_TYPES = frozenset(f.name for f in _FORMATS.values() if f.paged)


def format_of(path: Path) -> Format | None:
    return _FORMATS.get(path.suffix.lower())


class ContentMismatch(ValueError):
    """The bytes do not match what the extension promises."""


def check_magic(fmt: Format, head: bytes) -> None:
    """Refuse content that cannot be what the extension says (binary junk named .pdf...)."""
    if fmt.container == "pdf" and b"%PDF-" not in head[:1024]:
        raise ContentMismatch("content is not a PDF (no %PDF- header)")
    if fmt.container == "zip" and not head.startswith(b"PK\x03\x04"):
        raise ContentMismatch(f"content is not a {fmt.name.upper()} file (not a zip container)")
    if fmt.container == "image" and not head.startswith(_IMAGE_MAGIC[fmt.name]):
        raise ContentMismatch(f"content is not a {fmt.name.upper()} image")
    if fmt.container == "text" and b"\x00" in head:
        raise ContentMismatch("content is binary, not text (contains NUL bytes)")
