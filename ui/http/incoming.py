"""Receiving uploaded files from a multipart/form-data body, as the bytes arrive.

FastAPI's `UploadFile` parameters have the whole body parsed, and every file spooled to
disk whatever its size, before the route (and its authentication) runs. The REST upload
route reads its body with this instead, after the caller is known: each file goes straight
to the incoming folder and stops being written the moment it passes the per-file limit, so
a 2 GB file under a 50 MB limit costs 50 MB of disk, not 2 GB.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from anyio import to_thread
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from ui.service.errors import UploadRejected

FILES_FIELD = "files"


@dataclass
class Received:
    """One file of the body: on disk at `path`, or refused while receiving (`reason`)."""

    name: str  # as the client gave it
    path: Path | None
    reason: str = ""


@dataclass
class _Part:
    disposition: bytes = b""
    header_name: bytes = b""
    header_value: bytes = b""
    received: Received | None = None  # None: not a file of FILES_FIELD (ignored)
    out: IO[bytes] | None = None
    size: int = 0


@dataclass
class _Receiver:
    folder: Path
    max_file_bytes: int
    max_files: int
    files: list[Received] = field(default_factory=list)
    # Disk work found by the parser's callbacks, done off the event loop after each chunk:
    # (file, bytes to write) or (file, None) to close it.
    pending: list[tuple[IO[bytes], bytes | None]] = field(default_factory=list)
    part: _Part = field(default_factory=_Part)

    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.part.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.part.header_value += data[start:end]

    def on_header_end(self) -> None:
        if self.part.header_name.lower() == b"content-disposition":
            self.part.disposition = self.part.header_value
        self.part.header_name = self.part.header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.part.disposition)
        if options.get(b"name") != FILES_FIELD.encode() or b"filename" not in options:
            return
        name = options[b"filename"].decode("utf-8", "replace")
        received = Received(name, None)
        self.files.append(received)
        self.part.received = received
        if len(self.files) > self.max_files:
            received.reason = f"at most {self.max_files} files per upload"
            return
        out = tempfile.NamedTemporaryFile(dir=self.folder, delete=False)  # noqa: SIM115
        received.path = Path(out.name)
        self.part.out = out

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self.part
        if part.out is None:
            return
        part.size += end - start
        if part.size > self.max_file_bytes:
            assert part.received is not None
            self.pending.append((part.out, None))
            self.discard(part.received)
            mb = self.max_file_bytes / 2**20
            part.received.reason = f"file too large: the limit is {mb:g} MB"
            part.out = None
            return
        self.pending.append((part.out, data[start:end]))

    def on_part_end(self) -> None:
        if self.part.out is not None:
            self.pending.append((self.part.out, None))
            self.part.out = None

    def discard(self, received: Received) -> None:
        if received.path is not None:
            received.path.unlink(missing_ok=True)
            received.path = None

    def flush(self) -> None:
        for out, data in self.pending:
            if data is None:
                out.close()
            else:
                out.write(data)
        self.pending.clear()


async def receive_files(
    content_type: str,
    body: AsyncIterator[bytes],
    folder: Path,
    max_file_bytes: int,
    max_files: int,
) -> list[Received]:
    """The files of the body's `files` field, each in its own file under `folder`. On any
    error, nothing received is left behind."""
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UploadRejected(f"send the files as multipart/form-data, in the field {FILES_FIELD!r}")
    folder.mkdir(parents=True, exist_ok=True)
    receiver = _Receiver(folder, max_file_bytes, max_files)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": receiver.on_part_begin,
            "on_header_field": receiver.on_header_field,
            "on_header_value": receiver.on_header_value,
            "on_header_end": receiver.on_header_end,
            "on_headers_finished": receiver.on_headers_finished,
            "on_part_data": receiver.on_part_data,
            "on_part_end": receiver.on_part_end,
        },
    )
    try:
        async for chunk in body:
            parser.write(chunk)
            if receiver.pending:
                await to_thread.run_sync(receiver.flush)
        parser.finalize()
        await to_thread.run_sync(receiver.flush)
    except BaseException as exc:
        for out, _ in receiver.pending:
            out.close()
        if receiver.part.out is not None:
            receiver.part.out.close()
        for received in receiver.files:
            receiver.discard(received)
        if isinstance(exc, FormParserError):
            raise UploadRejected("the upload is not a valid multipart/form-data body") from exc
        raise
    if not receiver.files:
        raise UploadRejected(f"no files in the upload (multipart field {FILES_FIELD!r})")
    return receiver.files
