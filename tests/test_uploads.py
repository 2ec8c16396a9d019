"""Uploads from strangers: hostile names, disguised content, bombs, and too many at once.

Every file is written to disk here and checked for real; nothing of ui.uploads is mocked.
"""

from __future__ import annotations

import copy
import threading
import unicodedata
import zipfile
from pathlib import Path

import pytest

from ingest.report import FileOutcome
from tests.docgen import (
    write_docx,
    write_entity_expansion_docx,
    write_pdf,
    write_pptx,
    write_xlsx,
    write_zip_bomb,
)
from ui.service.errors import RateLimited, UploadRejected
from ui.service.jobs import Job, JobQueue
from ui.service.limits import RateLimiter
from ui.service.uploads import MAX_NAME_BYTES, check_upload, safe_filename

MIB = 2**20
LIMIT = 50 * MIB
RATIO = 100.0
MINIMAL_PDF = (
    b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
    b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"
)
ODT_MIME = b"application/vnd.oasis.opendocument.text"
EPUB_MIME = b"application/epub+zip"


def _no_unprintable(text: str) -> bool:
    return not any(unicodedata.category(ch).startswith("C") for ch in text)


def _upload(path: Path, name: str, max_bytes: int = LIMIT) -> str:
    return check_upload(name, path, max_bytes, RATIO)


def _rejected(path: Path, name: str, max_bytes: int = LIMIT) -> str:
    with pytest.raises(UploadRejected) as caught:
        _upload(path, name, max_bytes)
    message = str(caught.value)
    assert _no_unprintable(message)
    return message


def _write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            kind = zipfile.ZIP_STORED if name == "mimetype" else zipfile.ZIP_DEFLATED
            archive.writestr(name, data, compress_type=kind)
    return path


# --- file names -------------------------------------------------------------------------

HOSTILE_NAMES = [
    "../../etc/passwd",
    "..\\..\\windows\\system32\\cmd.exe.txt",
    "/abs/path/x.pdf",
    "C:\\evil\\x.docx",
    "report\x00.pdf",
    "x.pdf\x00.exe",
    "line\nbreak.txt",
    "carriage\r\nreturn.md",
    "invoice\u202efdp.exe",
    "\u202e\u2066bidi\u2069.txt",
    "CON.txt",
    "nul",
    "com1.tar.gz",
    "Lpt9",
    "aux .md",
    ".htaccess",
    "-rf.txt",
    "--help",
    "😀" * 100 + ".pdf",
    "%2e%2e%2fetc",
    "%2e%2e%5c%2e%2e%5cwin.ini",
    "a/../../b.txt",
    ". . ./x.md",
    "trailing dots....",
    "trailing spaces   ",
    'what<>:"|?*.txt',
    "full\uff0fwidth\uff3cslash.txt",
    "zero\u200bwidth.txt",
    "\ud800lone-surrogate.txt",
    "x" * 1000,
    "y" * 300 + "." + "z" * 300,
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_name_becomes_one_harmless_component(tmp_path: Path, name: str):
    result = safe_filename(name)

    assert result not in {"", ".", ".."}
    assert "/" not in result and "\\" not in result
    assert not result.startswith((".", " ", "-"))
    assert not result.endswith((".", " "))
    assert not any(ch in result for ch in '<>:"|?*')
    assert _no_unprintable(result)
    assert unicodedata.is_normalized("NFC", result)
    encoded = result.encode("utf-8")  # valid UTF-8: a lone surrogate would raise here
    assert len(encoded) <= MAX_NAME_BYTES
    stored = (tmp_path / result).resolve()
    assert stored.parent == tmp_path.resolve()
    stored.write_bytes(b"ok")  # the file system accepts it as one file in the folder
    assert [p.name for p in tmp_path.iterdir()] == [result]
    assert safe_filename(result) == result  # stable: a stored name stays as it is


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\cmd.exe.txt", "cmd.exe.txt"),
        ("/abs/path/x.pdf", "x.pdf"),
        ("C:\\evil\\x.docx", "x.docx"),
        ("report\x00.pdf", "report.pdf"),
        ("x.pdf\x00.exe", "x.pdf.exe"),  # no C-string truncation to a harmless-looking .pdf
        ("line\nbreak.txt", "linebreak.txt"),
        ("invoice\u202efdp.exe", "invoicefdp.exe"),  # shows as invoiceexe.pdf with the override
        ("CON.txt", "_CON.txt"),
        ("nul", "_nul"),
        ("com1.tar.gz", "_com1.tar.gz"),
        ("aux .md", "_aux .md"),
        ("CONSOLE.txt", "CONSOLE.txt"),  # only the exact device names are reserved
        ("COM10.txt", "COM10.txt"),
        (".htaccess", "htaccess"),
        ("-rf.txt", "_rf.txt"),
        ("--help", "__help"),
        ("%2e%2e%2fetc", "%2e%2e%2fetc"),  # literal: never decoded into a path
        ('what<>:"|?*.txt', "what_______.txt"),
        ("full\uff0fwidth.txt", "full_width.txt"),
        ("trailing dots....", "trailing dots"),
        ("  Quarterly report (final).pdf", "Quarterly report (final).pdf"),
        ("résumé – 日本語 ✓.md", "résumé – 日本語 ✓.md"),
    ],
)
def test_safe_filename_results(name: str, expected: str):
    assert safe_filename(name) == expected


def test_the_byte_cap_keeps_the_extension_and_whole_characters():
    name = "😀" * 100 + ".pdf"  # 404 bytes
    assert len(name.encode("utf-8")) == 404

    result = safe_filename(name)

    encoded = result.encode("utf-8")
    assert len(encoded) <= MAX_NAME_BYTES
    assert encoded.decode("utf-8") == result
    assert result.endswith(".pdf")
    assert set(result.removesuffix(".pdf")) == {"😀"}
    assert len(result.removesuffix(".pdf")) == (MAX_NAME_BYTES - 4) // 4


def test_the_byte_cap_on_a_name_without_a_real_extension():
    assert safe_filename("x" * 1000) == "x" * MAX_NAME_BYTES
    capped = safe_filename("y" * 300 + "." + "z" * 300)  # a 300-byte "extension" is no type
    assert capped == "y" * MAX_NAME_BYTES


def test_a_cut_that_would_leave_a_device_name_is_prefixed():
    assert safe_filename("COM1" + " " * 300 + "x.txt") == "_COM1.txt"


def test_nfd_and_nfc_spellings_give_the_same_name():
    nfc = "caf\u00e9 r\u00e9sum\u00e9.md"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfd != nfc

    assert safe_filename(nfd) == safe_filename(nfc) == nfc


@pytest.mark.parametrize(
    "name", ["", ".", "..", "...", "/", "\\", "../", "..\\..\\", " . . ", "\x00\x01", "\u202e"]
)
def test_a_name_with_nothing_usable_is_rejected(name: str):
    with pytest.raises(UploadRejected) as caught:
        safe_filename(name)
    assert _no_unprintable(str(caught.value))


def test_a_rejection_never_echoes_raw_control_or_bidi_characters():
    with pytest.raises(UploadRejected) as caught:
        safe_filename("\x1b[31m\u202e/")
    assert _no_unprintable(str(caught.value))
    assert UploadRejected("bad \x00\x1b\u202e name").args[0] == "bad \\x00\\x1b\\u202e name"


# --- content ----------------------------------------------------------------------------


def test_a_minimal_pdf_is_accepted(tmp_path: Path):
    path = tmp_path / "upload.tmp"
    path.write_bytes(MINIMAL_PDF)
    assert _upload(path, "notes.pdf") == "pdf"
    assert _upload(path, "../../Notes.PDF") == "pdf"


def test_a_real_pdf_is_accepted(tmp_path: Path):
    path = write_pdf(tmp_path / "upload.tmp", [["## Title", "Some text."], ["Page two."]])
    assert _upload(path, "report.pdf") == "pdf"


def test_pdf_bytes_named_docx_are_refused(tmp_path: Path):
    path = tmp_path / "upload.tmp"
    path.write_bytes(MINIMAL_PDF)
    assert "content does not match the .docx extension" in _rejected(path, "report.docx")


def test_junk_named_pdf_is_refused(tmp_path: Path):
    path = tmp_path / "upload.tmp"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    assert "content does not match the .pdf extension" in _rejected(path, "scan.pdf")


def test_real_office_files_are_accepted(tmp_path: Path):
    docx = write_docx(tmp_path / "a.tmp", [("h1", "Title"), ("p", "Body text.")], [["a", "b"]])
    pptx = write_pptx(tmp_path / "b.tmp", [("Slide", ["one", "two"])])
    xlsx = write_xlsx(tmp_path / "c.tmp", {"Sheet": [["name", "value"], ["x", 1]]})

    assert _upload(docx, "report.docx") == "docx"
    assert _upload(pptx, "deck.pptx") == "pptx"
    assert _upload(xlsx, "book.xlsx") == "xlsx"


def test_an_office_file_under_another_office_extension_is_refused(tmp_path: Path):
    docx = write_docx(tmp_path / "a.tmp", [("p", "Body text.")])
    message = _rejected(docx, "deck.pptx")
    assert "content does not match the .pptx extension" in message
    assert "ppt/presentation.xml" in message


def test_a_zip_without_word_document_xml_named_docx_is_refused(tmp_path: Path):
    path = _write_zip(
        tmp_path / "upload.tmp",
        {"[Content_Types].xml": b'<?xml version="1.0"?><Types/>', "payload.bin": b"x" * 100},
    )
    message = _rejected(path, "report.docx")
    assert "content does not match the .docx extension" in message
    assert "word/document.xml" in message


def test_odt_and_epub_need_their_mimetype_member(tmp_path: Path):
    odt = _write_zip(tmp_path / "a.tmp", {"mimetype": ODT_MIME, "content.xml": b"<office/>"})
    epub = _write_zip(tmp_path / "b.tmp", {"mimetype": EPUB_MIME, "content.opf": b"<package/>"})
    assert _upload(odt, "letter.odt") == "odt"
    assert _upload(epub, "book.epub") == "epub"

    assert "mimetype" in _rejected(epub, "letter.odt")  # an EPUB is not an ODT
    assert "mimetype" in _rejected(odt, "book.epub")
    bare = _write_zip(tmp_path / "c.tmp", {"content.xml": b"<office/>"})
    assert "content does not match the .odt extension" in _rejected(bare, "letter.odt")
    huge = _write_zip(tmp_path / "d.tmp", {"mimetype": ODT_MIME + b" " * 10_000})
    assert "content does not match the .odt extension" in _rejected(huge, "letter.odt")


@pytest.mark.parametrize(
    ("what", "head"),
    [
        ("ELF", b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 56),
        ("PE", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48),
        ("PDF", MINIMAL_PDF),
        ("zip", b"PK\x03\x04\x14\x00\x00\x00\x08\x00"),
    ],
)
def test_binaries_named_as_text_are_refused(tmp_path: Path, what: str, head: bytes):
    path = tmp_path / "upload.tmp"
    path.write_bytes(head + b"padding text " * 10)
    for name in ("readme.txt", "notes.md", "page.html"):
        message = _rejected(path, name)
        assert "content does not match the" in message, what
        assert Path(name).suffix in message


def test_text_is_accepted_utf8_or_not(tmp_path: Path):
    utf8 = tmp_path / "a.tmp"
    utf8.write_text("# Notes\n\nCafé, 日本語, ✓.\n", encoding="utf-8")
    latin1 = tmp_path / "b.tmp"
    latin1.write_bytes("Café crème à l'été.".encode("latin-1"))  # ingest reads it: so do we
    mz_text = tmp_path / "c.tmp"
    mz_text.write_text("MZ is the postal code prefix we use.\n", encoding="utf-8")

    assert _upload(utf8, "notes.md") == "md"
    assert _upload(latin1, "notes.txt") == "txt"
    assert _upload(mz_text, "codes.txt") == "txt"
    assert _upload(utf8, "data.csv") == "csv"


def test_nul_bytes_in_text_are_refused(tmp_path: Path):
    early = tmp_path / "a.tmp"
    early.write_bytes(b"# Title\n\x00\x00 binary")
    late = tmp_path / "b.tmp"  # beyond ingest's 8 KiB look, within the upload's 64 KiB
    late.write_bytes(b"a" * 40_000 + b"\x00" + b"b" * 100)

    assert "content does not match the .md extension" in _rejected(early, "notes.md")
    assert "content does not match the .md extension" in _rejected(late, "notes.md")


def test_a_zip_bomb_is_refused(tmp_path: Path):
    # 200 MiB of one byte, written in 1 MiB blocks: a few hundred KiB on disk.
    bomb = write_zip_bomb(tmp_path / "upload.tmp", "word/document.xml", 200)
    assert bomb.stat().st_size < MIB

    message = _rejected(bomb, "report.docx")
    assert "zip bomb" in message


def test_an_entity_expansion_docx_is_refused(tmp_path: Path):
    base = write_docx(tmp_path / "base.tmp", [("p", "Hello")])
    path = write_entity_expansion_docx(tmp_path / "upload.tmp", base)
    assert "entit" in _rejected(path, "report.docx")


def test_a_truncated_docx_is_refused(tmp_path: Path):
    data = write_docx(tmp_path / "base.tmp", [("p", "Hello")]).read_bytes()
    path = tmp_path / "upload.tmp"
    path.write_bytes(data[: len(data) // 2])
    assert "archive" in _rejected(path, "report.docx")


def test_an_empty_file_is_refused(tmp_path: Path):
    path = tmp_path / "upload.tmp"
    path.write_bytes(b"")
    assert "empty" in _rejected(path, "notes.txt")
    assert "empty" in _rejected(path, "report.pdf")


def test_a_file_over_the_limit_is_refused_with_the_limit(tmp_path: Path):
    path = tmp_path / "upload.tmp"
    path.write_bytes(b"a" * (MIB + 1))

    message = _rejected(path, "big.txt", max_bytes=MIB)
    assert "1 MB" in message
    assert "limit" in message
    assert _upload(path, "big.txt", max_bytes=MIB + 1) == "txt"  # the limit itself is allowed
    half = _rejected(path, "big.txt", max_bytes=MIB // 2)
    assert "0.5 MB" in half


@pytest.mark.parametrize("name", ["setup.exe", "README", "archive.tar.gz", "photo.gif", ".pdf"])
def test_an_unsupported_extension_is_refused_in_plain_words(tmp_path: Path, name: str):
    path = tmp_path / "upload.tmp"
    path.write_bytes(b"some content")

    message = _rejected(path, name)
    assert "cannot read this type of file" in message
    # the kinds of files it reads, as people name them, not a list of extensions
    assert "PDF, Word, PowerPoint, Excel" in message and ".docx" not in message


def test_the_extension_judged_is_the_one_stored(tmp_path: Path):
    path = tmp_path / "upload.tmp"
    path.write_bytes(MINIMAL_PDF)
    assert "cannot read this type" in _rejected(path, "x.pdf\x00.exe")  # stored as x.pdf.exe
    assert _upload(path, "x.pdf...") == "pdf"  # stored as x.pdf


def test_a_hostile_name_is_not_echoed_raw_by_a_content_rejection(tmp_path: Path):
    path = tmp_path / "upload.tmp"
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 56)
    message = _rejected(path, "\x1b[2J\u202eevil\x07.txt")
    assert "\x1b" not in message and "\u202e" not in message


# --- rate limiter -----------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limit_allows_n_then_refuses_until_the_window_moves():
    clock = FakeClock()
    limiter = RateLimiter(3, clock=clock)
    for offset in (0.0, 10.0, 20.0):
        clock.now = 1000.0 + offset
        limiter.check("alice")

    clock.now = 1030.0
    with pytest.raises(RateLimited) as caught:
        limiter.check("alice")
    assert caught.value.retry_after_s == pytest.approx(30.0)  # when the first one expires
    assert caught.value.retry_after_s > 0

    clock.now = 1059.9
    with pytest.raises(RateLimited):
        limiter.check("alice")
    clock.now = 1060.0  # 60 s after the first: allowed again
    limiter.check("alice")
    with pytest.raises(RateLimited) as again:
        limiter.check("alice")
    assert again.value.retry_after_s == pytest.approx(10.0)


def test_refused_attempts_are_not_counted():
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock)
    limiter.check("bob")
    limiter.check("bob")
    for _ in range(50):
        clock.now += 1
        with pytest.raises(RateLimited):
            limiter.check("bob")
    clock.now = 1060.0
    limiter.check("bob")
    limiter.check("bob")


def test_keys_are_independent():
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock)
    limiter.check("alice")
    limiter.check("alice")
    with pytest.raises(RateLimited):
        limiter.check("alice")
    limiter.check("bob")
    limiter.check("bob")
    with pytest.raises(RateLimited):
        limiter.check("bob")


def test_a_cost_counts_several_units():
    clock = FakeClock()
    limiter = RateLimiter(5, clock=clock)
    limiter.check("alice", cost=3)
    clock.now += 5
    limiter.check("alice", cost=2)
    clock.now += 5
    with pytest.raises(RateLimited) as caught:
        limiter.check("alice", cost=3)  # needs the first 3 to expire: 50 s from now
    assert caught.value.retry_after_s == pytest.approx(50.0)
    with pytest.raises(RateLimited):
        limiter.check("alice", cost=6)  # more than a whole minute allows
    with pytest.raises(ValueError, match="cost"):
        limiter.check("alice", cost=0)


def test_rate_limited_survives_copying_with_its_delay():
    error = copy.deepcopy(RateLimited(12.5))  # what pickling across processes also uses
    assert isinstance(error, RateLimited)
    assert error.retry_after_s == 12.5
    assert "13 s" in str(error)


def test_many_threads_get_exactly_the_limit():
    limiter = RateLimiter(25, clock=lambda: 500.0)
    start = threading.Barrier(200)
    allowed: list[int] = []
    refused: list[float] = []

    def upload() -> None:
        start.wait()
        for _ in range(3):
            try:
                limiter.check("shared")
            except RateLimited as exc:
                refused.append(exc.retry_after_s)
            else:
                allowed.append(1)

    threads = [threading.Thread(target=upload) for _ in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(allowed) == 25
    assert len(refused) == 600 - 25
    assert all(delay == pytest.approx(60.0) for delay in refused)


# --- jobs: what a client polling an upload sees -----------------------------------------


def test_a_job_reports_each_files_stage_in_its_json_keeping_the_old_keys(tmp_path: Path):
    paths = []
    for name in ("a.md", "b.md"):
        (tmp_path / name).write_text("x" * 1000)
        paths.append(tmp_path / name)
    seen: list[dict] = []
    go = threading.Event()

    def runner(job: Job, done) -> None:
        seen.append(job.to_json())  # running, nothing read yet
        job.file_stage("a.md", "reading")
        job.file_stage("a.md", "indexing", 0, 4)
        job.file_stage("a.md", "indexing", 4, 4)
        seen.append(copy.deepcopy(job.to_json()))
        done(FileOutcome("a.md", "updated", "md", 4))
        job.file_stage("b.md", "unchanged", 3, 3)  # decided without work
        go.wait(5)

    queue = JobQueue(runner)
    job = queue.submit("alice", "hr-docs", "upload", paths)
    try:
        while len(seen) < 2:
            threading.Event().wait(0.01)
        first, indexed = seen
        assert {f["stage"] for f in first["files"]} == {"waiting"}
        assert first["seconds_left"] is None  # "estimating": nothing indexed yet
        a = indexed["files"][0]
        assert (a["stage"], a["chunks_done"], a["chunks_total"]) == ("indexing", 4, 4)
        go.set()
        assert queue.wait(job, 5)
    finally:
        go.set()
        queue.close()
    shown = job.to_json()
    assert {"id", "collection", "kind", "state", "message", "files"} <= shown.keys()
    assert [(f["name"], f["status"], f["stage"], f["chunks"]) for f in shown["files"]] == [
        ("a.md", "updated", "done", 4),
        ("b.md", "unchanged", "done", 3),
    ]
    assert set(shown["files"][0]) == {
        "name",
        "status",
        "chunks",
        "reason",
        "stage",
        "chunks_done",
        "chunks_total",
    }
