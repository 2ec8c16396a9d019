"""Parsing in isolated processes, with a time limit and a memory limit per file.

A parser that hangs, blows up memory or crashes costs one file, never the run: the parent
kills the worker, reports the file as failed with the reason, and starts a fresh worker.
Workers are spawned (not forked) so they never inherit the embedder's threads.
"""

from __future__ import annotations

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

from ingest.parse import ParsedElement

_POLL_S = 0.1


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


def _worker_main(conn: Connection, memory_bytes: int, file_types: tuple[str, ...]) -> None:
    from rag.offline import enforce_offline

    enforce_offline()
    logging.disable(logging.WARNING)  # unstructured's notices would interleave with progress
    from ingest import parse

    parse.warm_up(file_types)
    # Backstop for the parent's RSS watch: address space beyond what the imports reserved.
    vm_now = psutil.Process().memory_info().vms
    resource.setrlimit(resource.RLIMIT_AS, (vm_now + memory_bytes, vm_now + memory_bytes))
    try:
        conn.send(("ready",))
        while (job := conn.recv()) is not None:
            conn.send(_parse_one(parse, job))
    except (EOFError, OSError):
        return  # the parent is gone (finished, or killed): nothing left to report to


def _parse_one(parse: Any, job: ParseJob) -> tuple[str, Any]:
    try:
        return ("ok", parse.parse_file(job.path, job.file_type))
    except MemoryError:
        return ("error", "exceeded the parser's memory limit")
    except parse.ParseError as exc:
        return ("error", str(exc))
    except Exception as exc:  # a parser bug must cost one file, not the run
        return ("error", f"parser failed ({type(exc).__name__}: {exc})"[:400])


class _Worker:
    def __init__(self, memory_bytes: int, file_types: tuple[str, ...]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_worker_main, args=(child, memory_bytes, file_types), daemon=True
        )
        self.process.start()
        child.close()
        self.ready = False
        self.job: ParseJob | None = None
        self.started = 0.0

    def send(self, job: ParseJob) -> None:
        self.job, self.started = job, time.monotonic()
        self.conn.send(job)

    def rss(self) -> int:
        try:
            return int(psutil.Process(self.process.pid).memory_info().rss)
        except psutil.Error:
            return 0

    def kill(self) -> None:
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
    (others load on first use). A pool can serve many runs, one at a time.
    """

    def __init__(
        self, processes: int, timeout_s: float, memory_mb: int, file_types: Iterable[str] = ()
    ) -> None:
        self._size = processes
        self._timeout = timeout_s
        self._memory = memory_mb * 2**20
        self._types = tuple(sorted(set(file_types)))
        self._workers: list[_Worker] = []

    def __enter__(self) -> ParserPool:
        self._workers = [self._spawn() for _ in range(self._size)]
        return self

    def _spawn(self) -> _Worker:
        return _Worker(self._memory, self._types)

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
