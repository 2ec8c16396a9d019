"""Scanned pages made in the test: text drawn on a white page with a real font at 300 dpi,
saved as an image or wrapped in a PDF, like an office scanner's output."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf")
DPI = 300
A4_PIXELS = (2480, 3508)  # 210 x 297 mm at 300 dpi


def scanned_page(lines: list[str], size: tuple[int, int] = A4_PIXELS) -> Image.Image:
    """A grayscale page with `lines` at 12 pt (50 px at 300 dpi), an inch from the edges."""
    page = Image.new("L", size, 255)
    draw = ImageDraw.Draw(page)
    font = ImageFont.truetype(str(FONT), 50)
    for i, line in enumerate(lines):
        draw.text((DPI, DPI + i * 80), line, font=font, fill=0)
    return page


def write_scanned_pdf(path: Path, pages: list[Image.Image]) -> Path:
    """A PDF of page images and nothing else: no text layer, as a scanner writes it."""
    first, *rest = pages
    first.save(path, "PDF", resolution=DPI, save_all=True, append_images=rest)
    return path


def write_image(path: Path, pages: list[Image.Image], image_format: str) -> Path:
    """PNG, JPEG or TIFF (several pages only in a TIFF), with its resolution recorded."""
    first, *rest = pages
    extra = {"save_all": True, "append_images": rest} if rest else {}
    first.save(path, image_format, dpi=(DPI, DPI), **extra)
    return path


def merged_pdf(path: Path, parts: list[Path]) -> Path:
    """The pages of `parts`, in order, in one PDF (a text page beside a scanned one)."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    for part in parts:
        writer.append(str(part))
    out = io.BytesIO()
    writer.write(out)
    path.write_bytes(out.getvalue())
    return path
