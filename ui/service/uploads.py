"""The checks the team server applies to every uploaded file before it is saved and ingested.

    safe_filename   the name an upload is stored under (never a path, never a device name)
    check_upload    extension, size and content of the saved temporary file

The content rules are ingest's own (`ingest.formats.check_magic`, `ingest.guards.check_file`),
so an accepted upload is never refused later for a reason known now; the checks below only
add what a file from a stranger needs on top: the member a zip container's extension
promises, and no executable or PDF passed off as text.
"""

from __future__ import annotations

import re
import unicodedata
import zipfile
from pathlib import Path

from ingest.formats import ContentMismatch, Format, check_magic, format_of
from ingest.guards import Refused, check_file
from rag.text import escape_invisible
from ui.service.errors import UploadRejected

MAX_NAME_BYTES = 150
_MAX_EXTENSION_BYTES = 16  # a longer "extension" is part of the name, not a file type
_SHOWN_NAME_CHARS = 80
_TEXT_HEAD_BYTES = 65536  # text must hold no NUL byte in its first 64 KiB
_MIMETYPE_MAX_BYTES = 256

# Illegal on Windows, or a path separator somewhere. The look-alike slashes are mapped to
# "/" and "\" by Windows' best-fit conversion to the ANSI code page.
_ILLEGAL = re.compile(r'[<>:"/\\|?*\u2044\u2215\u29f5\u29f8\u29f9\ufe68\uff0f\uff3c]')
_SEPARATORS = re.compile(r"[/\\]")
_RESERVED = re.compile(r"(CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|COM[0-9¹²³]|LPT[0-9¹²³])", re.IGNORECASE)

# Executables and containers that are never text, whatever the file is called.
_FOREIGN_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF"),
    (b"PK\x03\x04", "a zip archive"),
    (b"\x7fELF", "an ELF executable"),
)

# The member each zip-based format cannot do without: (name, required content or None).
_ZIP_MEMBERS: dict[str, tuple[str, bytes | None]] = {
    "docx": ("word/document.xml", None),
    "pptx": ("ppt/presentation.xml", None),
    "xlsx": ("xl/workbook.xml", None),
    "odt": ("mimetype", b"application/vnd.oasis.opendocument.text"),
    "epub": ("mimetype", b"application/epub+zip"),
}


def _shown(name: str) -> str:
    """A client-supplied name as it may appear in a message: printable and not too long."""
    shown = escape_invisible(name)
    if len(shown) > _SHOWN_NAME_CHARS:
        shown = shown[: _SHOWN_NAME_CHARS - 1] + "…"
    return f'"{shown}"'


def safe_filename(name: str) -> str:
    """The name an upload is stored under: one harmless path component.

    Only the last component is kept (both / and \\ separate; %2f and %5c are not decoded, so
    they stay literal text); characters of category C* (controls, bidi overrides, format
    characters, surrogates) are dropped and the rest is NFC; <>:"|?* and the slash look-alikes
    Windows maps to separators become "_", as does a leading "-"; leading and trailing dots
    and spaces go; a Windows device name (CON, PRN, AUX, NUL, COM0-9, LPT0-9, CONIN$,
    CONOUT$, any case, with or without extension) gets a "_" prefix; the result is at most
    150 bytes of UTF-8, cut on a character boundary and keeping the extension.

    Raises UploadRejected if nothing usable remains ('', '..', '/', '...').
    """
    cleaned = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C"))
    cleaned = unicodedata.normalize("NFC", cleaned)
    cleaned = _SEPARATORS.split(cleaned)[-1]
    cleaned = _ILLEGAL.sub("_", cleaned)
    cleaned = _strip_dots_and_spaces(cleaned)
    dashes = len(cleaned) - len(cleaned.lstrip("-"))
    cleaned = "_" * dashes + cleaned[dashes:]
    if not cleaned:
        raise UploadRejected(f"the file name {_shown(name)} leaves no usable name")
    cleaned = _cap_bytes(cleaned)
    if _RESERVED.fullmatch(cleaned.split(".", 1)[0].rstrip(" ")):
        cleaned = _cap_bytes("_" + cleaned)
    return cleaned


def _strip_dots_and_spaces(text: str) -> str:
    start, end = 0, len(text)
    while start < end and (text[start] == "." or text[start].isspace()):
        start += 1
    while end > start and (text[end - 1] == "." or text[end - 1].isspace()):
        end -= 1
    return text[start:end]


def _cap_bytes(name: str) -> str:
    if len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension.encode("utf-8")) + 1 > _MAX_EXTENSION_BYTES:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    budget = MAX_NAME_BYTES - len(suffix.encode("utf-8"))
    # Cut on a byte count, then drop the character the cut split in two.
    stem = stem.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    stem = _strip_dots_and_spaces(stem)
    return stem + suffix


def check_upload(name: str, path: Path, max_bytes: int, max_expansion_ratio: float) -> str:
    """Validate the saved temporary file `path` uploaded under the client name `name`.

    The extension (of the name as stored, see safe_filename) must be supported; the size must
    be 0 < size <= max_bytes; the content must match the extension: ingest's check_magic
    (NUL bytes looked for in the first 64 KiB of text), no PDF, zip or executable passed off
    as text, the member a zip format cannot do without; and the file must pass
    ingest.guards.check_file (zip bomb, XML entities, corrupt archive).
    Returns the format name (Format.name, e.g. 'pdf'); raises UploadRejected with the reason.
    """
    stored = safe_filename(name)  # the extension judged is the one the stored file will have
    shown = _shown(stored)
    fmt = format_of(Path(stored))
    if fmt is None:
        raise UploadRejected(
            f"{shown}: Citadel cannot read this type of file (it reads PDF, Word, "
            "PowerPoint, Excel, OpenDocument text, HTML, Markdown, plain text, CSV, RTF, "
            "e-mail and e-book files, and scans as PNG, JPEG or TIFF images)"
        )
    size = path.stat().st_size
    if size == 0:
        raise UploadRejected(f"{shown}: the file is empty (0 bytes)")
    if size > max_bytes:
        raise UploadRejected(
            f"{shown}: the file is {_mb(size)} MB, over the {_mb(max_bytes)} MB upload limit"
        )
    with path.open("rb") as fh:
        head = fh.read(_TEXT_HEAD_BYTES)
    extension = Path(stored).suffix.lower()
    try:
        if fmt.container == "text":
            _check_not_foreign(head)
        check_magic(fmt, head)
    except ContentMismatch as exc:
        raise UploadRejected(
            f"{shown}: content does not match the {extension} extension ({exc})"
        ) from exc
    try:
        check_file(path, fmt, max_expansion_ratio, max_bytes)
        if fmt.container == "zip":
            _check_zip_members(path, fmt)
    except ContentMismatch as exc:
        raise UploadRejected(
            f"{shown}: content does not match the {extension} extension ({exc})"
        ) from exc
    except Refused as exc:
        raise UploadRejected(f"{shown}: {exc}") from exc
    return fmt.name


def _mb(size: int) -> str:
    return f"{size / 2**20:,.2f}".rstrip("0").rstrip(".")


def _check_not_foreign(head: bytes) -> None:
    for magic, what in _FOREIGN_MAGIC:
        if head.startswith(magic):
            raise ContentMismatch(f"the content is {what}")
    # A DOS/Windows executable: "MZ" then a binary header (a text may well start with "MZ").
    if head.startswith(b"MZ") and b"\x00" in head[:64]:
        raise ContentMismatch("the content is a Windows executable")


def _check_zip_members(path: Path, fmt: Format) -> None:
    required = _ZIP_MEMBERS.get(fmt.name)
    if required is None:
        return
    member, content = required
    what = f"not a {fmt.name.upper()} file"
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo(member)
            except KeyError:
                raise ContentMismatch(f"{what}: the archive has no {member}") from None
            if content is None:
                return
            if info.file_size > _MIMETYPE_MAX_BYTES:
                raise ContentMismatch(f"{what}: {member} is not a media type")
            with archive.open(info) as fh:
                found = fh.read(_MIMETYPE_MAX_BYTES).strip()
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
        # RuntimeError: an encrypted member; NotImplementedError: an unknown compression.
        raise Refused(f"unreadable archive: {exc}") from exc
    if found != content:
        raise ContentMismatch(f"{what}: {member} is not {content.decode()}")
