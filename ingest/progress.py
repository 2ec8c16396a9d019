"""Progress of a long ingestion: a live display on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ingest.report import FileOutcome
from rag.text import printable


class ProgressSink(Protocol):
    def start(self, files: int) -> None: ...

    def chunks_embedded(self, chunks: int) -> None: ...

    def file_done(self, outcome: FileOutcome) -> None: ...

    def file_stage(self, source: str, stage: str, done: int = 0, total: int = 0) -> None:
        """Where one file is: `reading` (parsing), `indexing` (`done` of `total` chunks
        embedded), or the status of an outcome decided without work (unchanged, skipped,
        failed, whose `file_done` comes only in the report)."""
        ...

    def finish(self) -> None: ...

    def step(self, text: str) -> None:
        """A stage after the files, with no count to show (building the search index)."""
        ...


class SilentProgress:
    def start(self, files: int) -> None:
        pass

    def step(self, text: str) -> None:
        pass

    def chunks_embedded(self, chunks: int) -> None:
        pass

    def file_done(self, outcome: FileOutcome) -> None:
        pass

    def file_stage(self, source: str, stage: str, done: int = 0, total: int = 0) -> None:
        pass

    def finish(self) -> None:
        pass


class LineProgress:
    """One line per file that needed work, for logs and pipes (not a terminal)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._total = 0
        self._done = 0
        self._chunks = 0
        self._started = time.monotonic()

    def start(self, files: int) -> None:
        self._total, self._started = files, time.monotonic()
        print(f"ingesting {files} file(s) that are new or changed", file=self._stream, flush=True)

    def chunks_embedded(self, chunks: int) -> None:
        pass  # a line per file is enough for a log

    def file_done(self, outcome: FileOutcome) -> None:
        self._done += 1
        self._chunks += outcome.chunks
        elapsed = max(time.monotonic() - self._started, 1e-6)
        detail = f"{outcome.chunks} chunks" if not outcome.reason else outcome.reason
        print(
            f"[{self._done}/{self._total}] {outcome.status} {printable(outcome.source)} "
            f"({printable(detail)}); "
            f"{self._chunks / elapsed:.1f} chunks/s",
            file=self._stream,
            flush=True,
        )

    def file_stage(self, source: str, stage: str, done: int = 0, total: int = 0) -> None:
        pass  # a line per file is enough for a log

    def finish(self) -> None:
        pass

    def step(self, text: str) -> None:
        print(text, file=self._stream, flush=True)


class RichProgress:
    """Files done, chunks embedded, rate and time left, on the terminal's stderr."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("[bold]ingesting"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files · {task.fields[chunks]} chunks · {task.fields[rate]} chunks/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task: TaskID | None = None
        self._chunks = 0
        self._started = time.monotonic()

    def start(self, files: int) -> None:
        self._started = time.monotonic()
        self._progress.start()
        self._task = self._progress.add_task("ingest", total=files, chunks=0, rate="0.0")

    def chunks_embedded(self, chunks: int) -> None:
        self._chunks += chunks
        self._refresh(advance=0)

    def file_done(self, outcome: FileOutcome) -> None:
        if outcome.status == "failed":
            # File names and reasons are untrusted text: escape them, never read them as markup.
            self._progress.console.print(
                f"[red]failed[/] {escape(printable(outcome.source))}: "
                f"{escape(printable(outcome.reason))}",
                highlight=False,
            )
        self._refresh(advance=1)

    def _refresh(self, advance: int) -> None:
        rate = self._chunks / max(time.monotonic() - self._started, 1e-6)
        if self._task is not None:
            self._progress.update(
                self._task, advance=advance, chunks=self._chunks, rate=f"{rate:.1f}"
            )

    def file_stage(self, source: str, stage: str, done: int = 0, total: int = 0) -> None:
        pass  # the bar counts files and chunks for the whole run

    def finish(self) -> None:
        self._progress.stop()

    def step(self, text: str) -> None:
        self._progress.console.print(f"[dim]{escape(text)}[/]", highlight=False)


def progress_for(stream: TextIO, quiet: bool = False) -> ProgressSink:
    if quiet:
        return SilentProgress()
    return RichProgress() if stream.isatty() else LineProgress(stream)
