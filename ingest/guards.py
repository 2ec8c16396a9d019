"""Checks made before a parser touches a file: the cheap refusals of hostile input.

The isolated parser process (time and memory limits) is the backstop; these checks turn
the known attacks into a clear reason instead of a timeout.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from ingest.formats import Format, check_magic

_HEAD_BYTES = 8192
_XML_PROLOG_BYTES = 65536


class Refused(ValueError):
    """The file is not parsed; the message says why, for the user."""


def check_file(path: Path, fmt: Format, max_expansion_ratio: float, max_bytes: int) -> None:
    size = path.stat().st_size
    if size == 0:
        raise Refused("empty file (0 bytes)")
    with path.open("rb") as fh:
        head = fh.read(_HEAD_BYTES)
    try:
        check_magic(fmt, head)
    except ValueError as exc:
        raise Refused(str(exc)) from exc
    if fmt.container == "zip":
        _check_zip(path, size, max_expansion_ratio, max_bytes)


def _check_zip(path: Path, size: int, max_ratio: float, max_bytes: int) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            expanded = sum(m.file_size for m in members)
            # An office file's XML compresses about 5-20x; a bomb declares far more.
            limit = max(max_bytes, int(size * max_ratio))
            if expanded > limit:
                raise Refused(
                    f"archive expands to {expanded / 2**20:,.0f} MiB from {size / 2**20:,.1f} MiB "
                    f"(more than {max_ratio:g}x): refused as a likely zip bomb"
                )
            for member in members:
                if member.filename.endswith((".xml", ".rels")) and member.file_size:
                    with archive.open(member) as fh:
                        prolog = fh.read(_XML_PROLOG_BYTES)
                    if b"<!ENTITY" in prolog or b"<!DOCTYPE" in prolog:
                        raise Refused(
                            f"{member.filename} declares XML entities (a DTD), which office files "
                            "never need: refused as a possible entity-expansion attack"
                        )
    except zipfile.BadZipFile as exc:
        raise Refused(f"corrupt or truncated archive: {exc}") from exc
    except (RuntimeError, NotImplementedError) as exc:
        # zipfile's words for an encrypted member or a compression method it lacks (AES).
        raise Refused(f"encrypted or unreadable archive member: {exc}") from exc
