"""Hostile and broken input: each file ends with a stated outcome, the rest is ingested,
and memory stays bounded. Every fixture is generated here, none is a hand-copied blob."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from tests.docgen import (
    write_docx,
    write_docx_bomb,
    write_encrypted_pdf,
    write_entity_expansion_docx,
    write_pdf,
    write_zip_bomb,
)
from tests.samples_content import SECURITY_PAGES

LONG_NAME = "q" * 200 + ".md"
UNICODE_NAME = "résumé – 日本語 ✓.md"


@pytest.fixture
def hostile_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    good = write_pdf(folder / "good.pdf", SECURITY_PAGES)
    data = good.read_bytes()
    (folder / "truncated.pdf").write_bytes(data[: len(data) // 2])
    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(3000))
    write_encrypted_pdf(folder / "encrypted.pdf", SECURITY_PAGES)
    write_zip_bomb(folder / "bomb.docx", "word/document.xml", 300)
    write_zip_bomb(folder / "bomb.xlsx", "xl/worksheets/sheet1.xml", 300)
    base = write_docx(tmp_path / "base.docx", [("h1", "Hello"), ("p", "world")])
    write_entity_expansion_docx(folder / "entities.docx", base)
    (folder / "empty.txt").write_bytes(b"")
    (folder / "junk.pdf").write_bytes(os.urandom(5000))
    (folder / "latin1.txt").write_bytes("Café crème à l'été, déjà vu.".encode("latin-1"))
    (folder / "huge.txt").write_bytes(b"lorem ipsum " * 200_000)  # 2.3 MiB, over a 2 MiB limit
    outside = tmp_path / "outside-secret.md"
    outside.write_text("# Secret\n\nNot in the ingested folder.\n", encoding="utf-8")
    (folder / "link-out.md").symlink_to(outside)
    (folder / UNICODE_NAME).write_text("# CV\n\nUnicode names work.\n", encoding="utf-8")
    (folder / LONG_NAME).write_text("# Long\n\nLong names work.\n", encoding="utf-8")
    (folder / "notes.xyz").write_text("unsupported", encoding="utf-8")
    return folder


def test_each_hostile_file_ends_as_its_stated_outcome(
    make_pipeline, store, hostile_folder, embedder
):
    assert embedder.dimension == 384  # the model is loaded before the baseline is taken
    rss_before = psutil.Process().memory_info().rss

    report = make_pipeline(max_file_mb=2).run([hostile_folder], "docs")

    outcomes = {f.source: (f.status, f.reason) for f in report.files}
    expected = {
        "good.pdf": ("added", ""),
        "latin1.txt": ("added", ""),
        UNICODE_NAME: ("added", ""),
        LONG_NAME: ("added", ""),
        "truncated.pdf": ("failed", "damaged or truncated"),
        "corrupt.pdf": ("failed", "damaged or truncated"),
        "encrypted.pdf": ("failed", "password-protected"),
        "bomb.docx": ("failed", "likely zip bomb"),
        "bomb.xlsx": ("failed", "likely zip bomb"),
        "entities.docx": ("failed", "entity-expansion"),
        "empty.txt": ("failed", "empty file"),
        "junk.pdf": ("failed", "not a PDF"),
        "huge.txt": ("failed", "over the 2 MiB limit"),
        "link-out.md": ("skipped", "outside the ingested folder"),
        "notes.xyz": ("skipped", "unsupported file type .xyz"),
    }
    assert set(outcomes) == set(expected)
    for source, (status, reason) in expected.items():
        assert outcomes[source][0] == status, (source, outcomes[source])
        assert reason in outcomes[source][1], (source, outcomes[source])

    stored = {h.payload["source"]: h.payload["text"] for h in store.chunks("docs")}
    assert stored["latin1.txt"] == "Café crème à l'été, déjà vu."
    assert "Not in the ingested folder" not in " ".join(stored.values())
    assert {d.source for d in store.documents("docs")} == {
        "good.pdf",
        "latin1.txt",
        UNICODE_NAME,
        LONG_NAME,
    }
    # Bombs are refused before anything inflates them: the main process does not grow.
    assert psutil.Process().memory_info().rss - rss_before < 300 * 2**20


def test_bomb_past_the_ratio_check_is_stopped_by_the_memory_limit(make_pipeline, store, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    base = write_docx(tmp_path / "base.docx", [("h1", "Hello"), ("p", "world")])
    write_docx_bomb(folder / "bomb.docx", base, 1500)
    (folder / "fine.md").write_text("# Fine\n\nStill ingested.\n", encoding="utf-8")

    # Disable the cheap check: the isolated parser's limit is the backstop.
    report = make_pipeline(max_expansion_ratio=1e9, parse_memory_mb=1200).run([folder], "docs")

    outcomes = {f.source: (f.status, f.reason) for f in report.files}
    assert outcomes["fine.md"] == ("added", "")
    status, reason = outcomes["bomb.docx"]
    assert status == "failed"
    assert "memory limit" in reason  # the RSS watch, or the address-space backstop


def test_parser_that_runs_too_long_is_stopped_and_the_run_goes_on(make_pipeline, store, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    # A valid but enormous text file: far more than a second of parsing.
    (folder / "a-endless.txt").write_text("A sentence that goes on. " * 600_000, encoding="utf-8")
    (folder / "b-fine.md").write_text("# Fine\n\nStill ingested.\n", encoding="utf-8")

    # The time limit alone: on a loaded machine the parser's memory could reach the
    # default memory limit first, which stops it too, for another reason.
    pipeline = make_pipeline(parse_timeout_s=2.0, max_file_mb=100, parse_memory_mb=8000)
    report = pipeline.run([folder], "docs")

    outcomes = {f.source: (f.status, f.reason) for f in report.files}
    assert outcomes["a-endless.txt"] == ("failed", "parsing took longer than 2 s (time limit)")
    assert outcomes["b-fine.md"] == ("added", "")


def test_failed_update_keeps_the_previous_version(make_pipeline, store, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    doc = folder / "policy.pdf"
    write_pdf(doc, SECURITY_PAGES)
    pipeline = make_pipeline()
    pipeline.run([folder], "docs")
    chunks_before = store.count_chunks("docs")

    doc.write_bytes(doc.read_bytes()[:700])  # the file gets damaged
    report = pipeline.run([folder], "docs")

    [outcome] = report.files
    assert outcome.status == "failed"
    assert outcome.reason.endswith("the previously indexed version is kept")
    assert store.count_chunks("docs") == chunks_before


def _flag_member(path: Path, name: str, *, flags: int = 0, method: int | None = None) -> None:
    """Rewrite the flags (and compression method) one zip member declares, in its local
    header and the central directory: an encrypted member, or WinZip's AES method (99)."""
    import struct
    import zipfile

    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
        local, central = info.header_offset, archive.start_dir
    places = [(local, 6, 8)]
    while data[central : central + 4] == b"PK\x01\x02":
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", data, central + 28)
        if data[central + 46 : central + 46 + name_len] == name.encode():
            places.append((central, 8, 10))
        central += 46 + name_len + extra_len + comment_len
    for start, flags_at, method_at in places:
        struct.pack_into("<H", data, start + flags_at, data[start + flags_at] | flags)
        if method is not None:
            struct.pack_into("<H", data, start + method_at, method)
    path.write_bytes(bytes(data))


def _remove_deep(top: Path, bottom: Path) -> None:
    """Bottom up, level by level: shutil.rmtree (pytest's clean-up) recurses per folder."""
    (bottom / "leaf.md").unlink(missing_ok=True)
    while bottom != top.parent:
        bottom.rmdir()
        bottom = bottom.parent


def test_files_that_once_stopped_the_whole_run_cost_only_themselves(
    make_pipeline, store, tmp_path, request
):
    """Found by the hostile corpus of `make proof`: each of these ended the ingestion with a
    traceback (nothing ingested, not even the good file), or was never reported."""
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "good.md").write_text("# Good\n\nStill ingested.\n", encoding="utf-8")
    (folder / "self-loop.md").symlink_to("self-loop.md")  # resolve(): RuntimeError
    (folder / "zz-root").symlink_to(".")  # a link to the top: the tree walked twice
    os.mkfifo(folder / "pipe.txt")  # reading it would block forever
    deep = folder / "deep"  # the walk recursed once per folder
    for _ in range(1101):  # made level by level: mkdir(parents=True) recurses too
        deep.mkdir()
        deep = deep / "d"
    deep = deep.parent
    request.addfinalizer(lambda: _remove_deep(folder / "deep", deep))
    (deep / "leaf.md").write_text("# Leaf\n\nFound at the bottom.\n", encoding="utf-8")
    for name, change in (("flagged.docx", {"flags": 0x1}), ("aes.docx", {"method": 99})):
        write_docx(folder / name, [("h1", "Policy"), ("p", "A paragraph.")])
        _flag_member(folder / name, "word/document.xml", **change)
    # Bytes Windows-1252 leaves undefined: the text is read, not refused.
    (folder / "mixed.txt").write_bytes("Prix: 12 € ".encode("cp1252") + b"\x81\x90\x9d ok")
    # A name in Latin-1, not UTF-8 (an old file share): the parsers could not encode it.
    (folder / os.fsdecode(b"caf\xe9.md")).write_text("# Menu\n\nSoup of the day.\n")
    (folder / "blob.md").write_text("# Blob\n\n" + "A" * 100_000 + " end.\n", encoding="utf-8")

    report = make_pipeline().run([folder], "docs")

    outcomes = {f.source: (f.status, f.reason) for f in report.files}
    leaf = "deep/" + "d/" * 1100 + "leaf.md"
    assert outcomes["good.md"][0] == "added" and outcomes[leaf][0] == "added"
    assert outcomes["self-loop.md"] == ("skipped", "symbolic link loop")
    assert outcomes["pipe.txt"][0] == "skipped" and "not a regular file" in outcomes["pipe.txt"][1]
    for name in ("flagged.docx", "aes.docx"):
        assert outcomes[name][0] == "failed" and "encrypted or unreadable" in outcomes[name][1]
    assert outcomes["mixed.txt"][0] == "added"
    assert outcomes["caf\ufffd.md"] == ("added", "")
    assert not any(source.startswith("zz-root/") for source in outcomes)
    # A 100,000-character "word" is shortened, not cut into hundreds of chunks.
    blob = [h.payload["text"] for h in store.chunks("docs") if h.payload["source"] == "blob.md"]
    assert len(blob) == 1 and "A" * 200 + "…" in blob[0] and "end." in blob[0]
