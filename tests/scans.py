"""Scanned pages made in the test: text drawn on a white page with a real font at 300 dpi,
saved as an image or wrapped in a PDF, like an office scanner's output."""

from __future__ import annotations

import io
import struct
import zlib
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


def with_picture(page: Image.Image, seed: int = 7) -> Image.Image:
    """`page` with a black-and-white photograph-like texture under its text (a halftone,
    the kind of picture Tesseract reads as letters: 'SAO', 'CEES')."""
    import random

    from PIL import ImageFilter

    texture = random.Random(seed).randbytes(300 * 150)
    blob = Image.frombytes("L", (300, 150), texture).resize((1200, 600))
    halftone = blob.filter(ImageFilter.GaussianBlur(1.5)).point(lambda v: 0 if v < 110 else 255)
    out = page.copy()
    out.paste(halftone, (DPI, page.height - DPI - 600))
    return out


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


def write_pixel_bomb(path: Path, width: int, height: int) -> Path:
    """A PNG that says it is `width` x `height` pixels in a few bytes (its pixel data is
    missing: only a reader that decodes before it checks would find out)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" + bytes(width))  # one row of the many it claims
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat)
    path.write_bytes(png + chunk(b"IEND", b""))
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
