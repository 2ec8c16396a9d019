"""Parsing in isolated processes, with a time limit and a memory limit per file.

A parser that hangs, blows up memory or crashes costs one file, never the run: the parent
kills the worker, reports the file as failed with the reason, and starts a fresh worker.
Workers are spawned (not forked) so they never inherit the embedder's threads.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import resource
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import psutil

from ingest.ocr import OcrOptions
from ingest.parse import ParsedElement

_POLL_S = 0.1
# The worker stops its own OCR this long before the parent's time limit, so the file's
# error says what took the time rather than only that it ran out.
_OWN_DEADLINE_MARGIN_S = 1.0


@dataclass(frozen=True)
class ParseJob:
    key: int
    path: str
    file_type: str


@dataclass(frozen=True)
class ParseOutcome:
    job: ParseJob
    elements: list[ParsedElement] | None
    error: str | None
    seconds: float


@dataclass(frozen=True)
class _WorkerConfig:
    memory_bytes: int
    timeout_s: float
    file_types: tuple[str, ...]
    ocr: OcrOptions | None


def _worker_main(conn: Connection, config: _WorkerConfig) -> None:
    from rag.offline import enforce_offline

    enforce_offline()
    logging.disable(logging.WARNING)  # unstructured's notices would interleave with progress
    from ingest import parse

    parse.warm_up(config.file_types)
    # Backstop for the parent's RSS watch: address space beyond what the imports reserved.
    # (Tesseract inherits the limit; the parent's watch counts its memory with the worker's.)
    vm_now = psutil.Process().memory_info().vms
    limit = vm_now + config.memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        conn.send(("ready",))
        while (job := conn.recv()) is not None:
            own_limit = max(config.timeout_s - _OWN_DEADLINE_MARGIN_S, config.timeout_s / 2)
            conn.send(_parse_one(parse, job, config.ocr, time.monotonic() + own_limit))
    except (EOFError, OSError):
        return  # the parent is gone (finished, or killed): nothing left to report to


def _parse_one(
    parse: Any, job: ParseJob, ocr: OcrOptions | None, deadline: float
) -> tuple[str, Any]:
    try:
        return ("ok", parse.parse_file(job.path, job.file_type, ocr, deadline))
    except MemoryError:
        return ("error", "exceeded the parser's memory limit")
    except parse.ParseError as exc:
        return ("error", str(exc))
    except Exception as exc:  # a parser bug must cost one file, not the run
        return ("error", f"parser failed ({type(exc).__name__}: {exc})"[:400])


class _Worker:
    def __init__(self, config: _WorkerConfig) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, config), daemon=True)
        self.process.start()
        child.close()
        self.ready = False
        self.job: ParseJob | None = None
        self.started = 0.0

    def send(self, job: ParseJob) -> None:
        self.job, self.started = job, time.monotonic()
        self.conn.send(job)

    def rss(self) -> int:
        """The worker's memory with its children's (Tesseract reading a page)."""
        try:
            worker = psutil.Process(self.process.pid)
            processes = [worker, *worker.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for process in processes:
            with contextlib.suppress(psutil.Error):  # ended between listing and reading
                total += int(process.memory_info().rss)
        return total

    def kill(self) -> None:
        # Its children first: a Tesseract orphaned mid-page would run on unwatched.
        try:
            for child in psutil.Process(self.process.pid).children(recursive=True):
                child.kill()
        except psutil.Error:
            pass
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
            self.process.join(5)
        except (OSError, ValueError):
            pass
        self.kill()


class ParserPool:
    """Parses jobs in `processes` workers; results come back in completion order.

    `file_types` are the formats whose parsers the workers load ahead of the first file
    (others load on first use); `ocr`: how pages without text are read (None: they are not).
    A pool can serve many runs, one at a time.
    """

    def __init__(
        self,
        processes: int,
        timeout_s: float,
        memory_mb: int,
        file_types: Iterable[str] = (),
        ocr: OcrOptions | None = None,
    ) -> None:
        self._size = processes
        self._timeout = timeout_s
        self._memory = memory_mb * 2**20
        self._config = _WorkerConfig(self._memory, timeout_s, tuple(sorted(set(file_types))), ocr)
        self._workers: list[_Worker] = []

    def __enter__(self) -> ParserPool:
        self._workers = [self._spawn() for _ in range(self._size)]
        return self

    def _spawn(self) -> _Worker:
        return _Worker(self._config)

    def __exit__(self, *exc: object) -> None:
        for worker in self._workers:
            worker.stop()
        self._workers = []

    def parse_all(
        self, jobs: Iterable[ParseJob], started: Callable[[ParseJob], None] | None = None
    ) -> Iterator[ParseOutcome]:
        """`started`: told of each job as a worker takes it."""
        pending = deque(jobs)
        try:
            while pending or any(w.job for w in self._workers):
                for worker in self._workers:
                    if worker.ready and worker.job is None and pending:
                        job = pending.popleft()
                        worker.send(job)
                        if started is not None:
                            started(job)
                ready = wait([w.conn for w in self._workers], timeout=_POLL_S)
                for worker in list(self._workers):
                    outcome = None
                    if worker.conn in ready:
                        outcome = self._receive(worker)
                    elif worker.job is not None:
                        outcome = self._police(worker)
                    if outcome is not None:
                        yield outcome
        finally:
            # Abandoned mid-run: a busy worker's late answer must not reach the next run.
            for worker in list(self._workers):
                if worker.job is not None:
                    worker.kill()
                    self._workers[self._workers.index(worker)] = self._spawn()

    def _receive(self, worker: _Worker) -> ParseOutcome | None:
        try:
            message: Any = worker.conn.recv()
        except (EOFError, OSError):
            code = worker.process.exitcode
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            return self._replace(worker, f"the parser process died ({how})")
        if message[0] == "ready":
            worker.ready = True
            return None
        job = worker.job
        assert job is not None
        worker.job = None
        seconds = time.monotonic() - worker.started
        if message[0] == "ok":
            return ParseOutcome(job, message[1], None, seconds)
        return ParseOutcome(job, None, message[1], seconds)

    def _police(self, worker: _Worker) -> ParseOutcome | None:
        elapsed = time.monotonic() - worker.started
        if elapsed > self._timeout:
            return self._replace(
                worker, f"parsing took longer than {self._timeout:g} s (time limit)"
            )
        rss = worker.rss()
        if rss > self._memory:
            return self._replace(
                worker, f"parsing used more than {self._memory // 2**20} MiB (memory limit)"
            )
        return None

    def _replace(self, worker: _Worker, reason: str) -> ParseOutcome:
        job = worker.job
        seconds = time.monotonic() - worker.started
        worker.kill()
        self._workers[self._workers.index(worker)] = self._spawn()
        if job is None:  # died while starting: nothing to report against a file
            raise RuntimeError(f"the parser process could not start: {reason}")
        return ParseOutcome(job, None, reason, seconds)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))
