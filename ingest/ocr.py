"""Reading scanned pages: Tesseract (Debian's `tesseract-ocr`) on page images.

Runs in the isolated parser process (see workers.py). The `tesseract` program is called
directly with a fixed argv, the image on its stdin and its TSV on stdout: no shell, no
temporary files, nothing downloaded. unstructured's OCR strategy would need
unstructured-pytesseract and its hi-res stack; one subprocess per page is all it takes.

Limits: each page image is capped in pixels before it is decoded or rendered (a huge image
fails with a clear message instead of eating the parser's memory), every Tesseract call gets
what is left of the file's time limit, and the parent counts Tesseract's memory with the
parser's (workers.py).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rag.settings import IngestSettings

# Scans are read at 300 dpi: Tesseract's accuracy drops below ~200 dpi, and more only costs
# time and memory.
RENDER_DPI = 300
# Words Tesseract itself doubts this much are dropped. Measured here: printed text scores
# 95-97, small grey print too; a halftone picture on the page read as letters gave 30 words
# ("CALE", "Dak", "tos") scoring 6-88, 80% of them under 40. The floor stays low because
# a poor scan's real words score 50-80: the few letters of a picture that pass are noise
# no question matches, while a dropped real word is lost for good.
MIN_WORD_CONFIDENCE = 40.0
# Page segmentation 3: automatic, without orientation detection (which quadrupled the time
# of a page here); scans come upright from office scanners.
_PAGE_SEGMENTATION = "3"
# What Tesseract is given of the environment: where it and its languages are.
_ENV_KEPT = ("PATH", "TESSDATA_PREFIX", "LANG", "LC_ALL")
_MISSING_LANGUAGE = "Failed loading language"


@dataclass(frozen=True)
class OcrOptions:
    """What the parser process needs of the settings (picklable: it crosses to the worker)."""

    languages: str  # Tesseract's language codes joined with '+'
    max_megapixels: float  # per page image, before decoding


def ocr_options(settings: IngestSettings) -> OcrOptions | None:
    """What the parser processes are told of the settings; None: OCR is off."""
    if not settings.ocr:
        return None
    return OcrOptions(settings.ocr_languages, settings.ocr_max_megapixels)


class OcrError(Exception):
    """OCR could not run or could not finish; the message is for the user."""


class OcrTimeout(OcrError):
    def __init__(self) -> None:
        super().__init__(
            "reading scanned pages by OCR went past the file's time limit "
            "(CITADEL_INGEST__PARSE_TIMEOUT_S)"
        )


@dataclass(frozen=True)
class OcrPage:
    page: int  # 1-based
    paragraphs: list[str]


def tesseract() -> str:
    path = shutil.which("tesseract")
    if path is None:
        raise OcrError(
            "reading scanned pages needs the tesseract program (Debian package tesseract-ocr), "
            "which is not installed; or turn OCR off (CITADEL_INGEST__OCR=false)"
        )
    return path


def read_image(image: Any, options: OcrOptions, deadline: float, dpi: int | None) -> list[str]:
    """The paragraphs Tesseract reads on one page image (a Pillow image), in reading order."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise OcrTimeout()
    argv = [tesseract(), "stdin", "stdout", "-l", options.languages]
    argv += ["--psm", _PAGE_SEGMENTATION]
    if dpi:
        argv += ["--dpi", str(dpi)]
    argv.append("tsv")
    env = {k: os.environ[k] for k in _ENV_KEPT if k in os.environ}
    # One thread: parsers already run in parallel, and OpenMP's threads fight over the
    # cores (Tesseract's own advice for batch use).
    env["OMP_THREAD_LIMIT"] = "1"
    try:
        done = subprocess.run(
            argv,
            input=_as_pnm(image),
            capture_output=True,
            timeout=remaining if math.isfinite(remaining) else None,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise OcrTimeout() from exc
    stderr = done.stderr.decode("utf-8", "replace")
    # A missing language is only a warning when another one loads: the scan would be read
    # without it (French accents lost, silently), so it is an error.
    if done.returncode != 0 or _MISSING_LANGUAGE in stderr:
        raise OcrError(_tesseract_failure(stderr, options))
    return paragraphs(done.stdout.decode("utf-8", "replace"))


def _as_pnm(image: Any) -> bytes:
    """Grayscale PGM: a quarter of RGB's bytes, no compression to spend time on, and
    Leptonica (Tesseract's image library) reads it from a pipe."""
    import io

    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels are paper: on black they would hide the text.
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    gray = image.convert("L")
    out = io.BytesIO()
    gray.save(out, format="PPM")
    return out.getvalue()


def _tesseract_failure(stderr: str, options: OcrOptions) -> str:
    if _MISSING_LANGUAGE in stderr or "Error opening data file" in stderr:
        return (
            f"OCR languages '{options.languages}' are not all installed for Tesseract "
            "(`tesseract --list-langs` lists them; Debian packages tesseract-ocr-LANG); "
            "set CITADEL_INGEST__OCR_LANGUAGES"
        )
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return f"OCR failed (tesseract: {lines[-1][:200] if lines else 'no message'})"


def paragraphs(tsv: str) -> list[str]:
    """Tesseract's TSV as paragraphs: confident words joined into lines, lines into
    paragraphs (a line ending in '-' runs on: 'peut-' + 'être')."""
    found: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
    for row in tsv.splitlines()[1:]:
        cells = row.split("\t")
        if len(cells) < 12 or cells[0] != "5":  # level 5: a word
            continue
        word = cells[11].strip()
        try:
            confidence = float(cells[10])
        except ValueError:
            continue
        if not word or confidence < MIN_WORD_CONFIDENCE:
            continue
        block, paragraph, line = cells[2], cells[3], cells[4]
        found.setdefault((cells[1], block, paragraph), []).append((line, word))
    result = []
    for words in found.values():
        text = ""
        previous_line = None
        for line, word in words:
            if text and not (line != previous_line and text.endswith("-")):
                text += " "
            text += word
            previous_line = line
        result.append(text)
    return result


def check_pixels(width: int, height: int, options: OcrOptions, what: str) -> None:
    megapixels = width * height / 1e6
    if megapixels > options.max_megapixels:
        raise OcrError(
            f"{what} is {width}×{height} pixels ({megapixels:,.0f} megapixels), over the "
            f"{options.max_megapixels:g}-megapixel OCR limit (CITADEL_INGEST__OCR_MAX_MEGAPIXELS)"
        )


def image_pages(path: str, options: OcrOptions, deadline: float) -> Iterator[OcrPage]:
    """Each frame of an image file (a multi-page TIFF's frames are its pages), read."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
                # The header tells the size: checked before the pixels are decoded.
                check_pixels(*frame.size, options, f"page {number} of the image")
                dpi = frame.info.get("dpi")
                resolution = round(dpi[0]) if dpi and 50 <= dpi[0] <= 2400 else None
                yield OcrPage(number, read_image(frame, options, deadline, resolution))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        # Pillow's reasons for a truncated or damaged image (SyntaxError: a bad header).
        raise OcrError(f"the image is damaged or truncated ({type(exc).__name__})") from exc
    except Image.DecompressionBombError as exc:  # Pillow's own cap, past ours when raised
        raise OcrError(
            f"the image is over the {options.max_megapixels:g}-megapixel OCR limit "
            f"(CITADEL_INGEST__OCR_MAX_MEGAPIXELS): {exc}"
        ) from exc


def scanned_pdf_pages(
    path: str, pages: set[int] | None, options: OcrOptions, deadline: float
) -> Iterator[OcrPage]:
    """The PDF's scanned pages (outside `pages`, those the text path read): pages with an
    image and no text layer, rendered and read. A PDF pdfium cannot open yields nothing:
    the caller says why."""
    import pypdfium2 as pdfium

    with_images = _pages_with_images(path)
    try:
        document = pdfium.PdfDocument(path)
    except pdfium.PdfiumError:
        return
    try:
        for index in range(len(document)):
            number = index + 1
            if (pages is not None and number in pages) or (
                with_images is not None and number not in with_images
            ):
                continue
            page = document[index]
            try:
                if page.get_textpage().get_text_range().strip():
                    continue  # a text layer: never read by OCR
                width, height = page.get_size()  # points: 1/72 inch
                scale = _render_scale(width, height, options)
                # No smoothing: resampling a scan blurred its accents ("à" read as "a").
                bitmap = page.render(scale=scale, grayscale=True, no_smoothimage=True)
                try:  # the image shares the bitmap's memory: freed once it is read
                    read = read_image(bitmap.to_pil(), options, deadline, round(72 * scale))
                finally:
                    bitmap.close()
                yield OcrPage(number, read)
            finally:
                page.close()
    finally:
        document.close()


def _pages_with_images(path: str) -> set[int] | None:
    """The pages whose resources hold an image (a scan is one), found without reading any
    content stream: a page of only vector drawing, or a 1 GiB stream of spaces, is never
    rendered. None: the structure is unreadable here, every page is a candidate."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(path, strict=False)
        return {
            number
            for number, page in enumerate(reader.pages, start=1)
            if _holds_image(page.get("/Resources"), depth=0)
        }
    except Exception:  # pypdf's errors on a damaged file are many; pdfium decides then
        return None


def _holds_image(resources: Any, depth: int) -> bool:
    """An image XObject in `resources`, or in the forms it draws (a few levels deep)."""
    try:
        xobjects = resources.get_object().get("/XObject") if resources is not None else None
        if xobjects is None or depth > 3:
            return False
        for ref in xobjects.get_object().values():
            xobject = ref.get_object()
            subtype = xobject.get("/Subtype")
            if subtype == "/Image":
                return True
            if subtype == "/Form" and _holds_image(xobject.get("/Resources"), depth + 1):
                return True
    except (AttributeError, TypeError, KeyError):
        return False  # not a dictionary where one belongs: no image found there
    return False


def _render_scale(width_pt: float, height_pt: float, options: OcrOptions) -> float:
    """300 dpi, or less for a page too large for the pixel cap (a poster is read at what
    the cap allows rather than refused)."""
    scale = RENDER_DPI / 72
    pixels = width_pt * height_pt * scale * scale
    cap = options.max_megapixels * 1e6
    if pixels > cap:
        scale *= math.sqrt(cap / pixels)
    return scale
