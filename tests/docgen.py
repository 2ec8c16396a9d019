"""Generators for test documents and the bundled samples: real files made by real writers.

`python -m tests.docgen samples` rebuilds the bundled sample documents.
"""

from __future__ import annotations

import email.message
import sys
import zipfile
import zlib
from pathlib import Path


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def write_pdf(path: Path, pages: list[list[str]]) -> Path:
    """A text PDF with a valid xref table: one list of lines per page.

    Lines starting with "## " are headings (bold, larger, set apart like a word processor
    would); an empty line is a paragraph gap.
    """
    objects: list[bytes] = []
    page_ids = [3 + 2 * i for i in range(len(pages))]
    font_id = 3 + 2 * len(pages)
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{i} 0 R" for i in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    for i, lines in enumerate(pages):
        content_id = page_ids[i] + 1
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << "
            f"/F1 {font_id} 0 R /F2 {font_id + 1} 0 R >> >> /Contents {content_id} 0 R >>".encode()
        )
        ops, y = ["BT"], 740
        for line in lines:
            if line.startswith("## "):
                y -= 12
                ops.append(f"/F2 14 Tf 1 0 0 1 72 {y} Tm ({_pdf_escape(line[3:])}) Tj")
                y -= 24
            elif not line:
                y -= 10
            else:
                ops.append(f"/F1 11 Tf 1 0 0 1 72 {y} Tm ({_pdf_escape(line)}) Tj")
                y -= 14
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    for font in (b"Helvetica", b"Helvetica-Bold"):
        objects.append(
            b"<< /Type /Font /Subtype /Type1 /BaseFont /" + font + b" /Encoding /WinAnsiEncoding >>"
        )
    path.write_bytes(assemble_pdf(objects))
    return path


def write_encrypted_pdf(path: Path, pages: list[list[str]], password: str = "s3cret") -> Path:
    from pypdf import PdfReader, PdfWriter

    plain = write_pdf(path.with_suffix(".plain.pdf"), pages)
    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.encrypt(user_password=password, owner_password=password, algorithm="AES-256")
    with path.open("wb") as fh:
        writer.write(fh)
    plain.unlink()
    return path


def write_docx(
    path: Path, blocks: list[tuple[str, str]], table: list[list[str]] | None = None
) -> Path:
    """`blocks`: ("h1"|"h2"|"p"|"li", text); an optional table at the end."""
    from docx import Document

    doc = Document()
    for kind, text in blocks:
        if kind.startswith("h"):
            doc.add_heading(text, level=int(kind[1]))
        elif kind == "li":
            doc.add_paragraph(text, style="List Bullet")
        else:
            doc.add_paragraph(text)
    if table:
        grid = doc.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                grid.cell(r, c).text = cell
    doc.save(str(path))
    return path


def write_pptx(path: Path, slides: list[tuple[str, list[str]]]) -> Path:
    from pptx import Presentation

    deck = Presentation()
    for title, bullets in slides:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        body = slide.placeholders[1].text_frame
        body.text = bullets[0]
        for bullet in bullets[1:]:
            body.add_paragraph().text = bullet
    deck.save(str(path))
    return path


def write_xlsx(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(str(path))
    return path


def write_eml(path: Path, subject: str, sender: str, to: str, body: str) -> Path:
    msg = email.message.EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = subject, sender, to
    msg["Date"] = "Mon, 02 Nov 2026 09:00:00 +0100"
    msg.set_content(body)
    path.write_bytes(bytes(msg))
    return path


def write_zip_bomb(path: Path, member: str, expanded_mib: int) -> Path:
    """An OOXML-looking zip whose one member inflates to `expanded_mib` MiB of spaces."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        with archive.open(member, "w", force_zip64=True) as fh:
            fh.write(b'<?xml version="1.0"?><w:document>')
            block = b" " * (1 << 20)
            for _ in range(expanded_mib):
                fh.write(block)
            fh.write(b"</w:document>")
    return path


def write_docx_bomb(path: Path, source: Path, expanded_mib: int) -> Path:
    """A real DOCX whose document.xml is padded with `expanded_mib` MiB of whitespace: valid
    XML that any parser must inflate, compressed to a few hundred KiB."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename != "word/document.xml":
                dst.writestr(item, data)
                continue
            head, tail = data.split(b"<w:body>", 1)
            with dst.open(item.filename, "w", force_zip64=True) as fh:
                fh.write(head + b"<w:body>")
                block = b" " * (1 << 20)
                for _ in range(expanded_mib):
                    fh.write(block)
                fh.write(tail)
    return path


def write_entity_expansion_docx(path: Path, source: Path) -> Path:
    """A real DOCX whose document.xml declares a 'billion laughs' DTD."""
    laughs = "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i else "lol"}">' for i in range(10)
    )
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "word/document.xml":
                head, rest = data.split(b"?>", 1)
                dtd = f"<!DOCTYPE lolz [{laughs}]>".encode()
                data = head + b"?>" + dtd + rest.replace(b"</w:t>", b"&lol9;</w:t>", 1)
            dst.writestr(item, data)
    return path


def deflate_ratio(data: bytes) -> float:
    return len(data) / max(1, len(zlib.compress(data)))


if __name__ == "__main__":
    from tests.samples_content import build_samples

    build_samples(Path(sys.argv[1] if len(sys.argv) > 1 else "samples"))


def assemble_pdf(objects: list[bytes], trailer: bytes = b"") -> bytes:
    """A PDF of `objects` numbered from 1 (1 is the catalog), with a valid xref table;
    `trailer`: more trailer entries ("{xref}" in them becomes the table's offset)."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    trailer = trailer.replace(b"{xref}", b"%d" % xref)
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        trailer,
        xref,
    )
    return bytes(out)
