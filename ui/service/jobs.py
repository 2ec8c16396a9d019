"""Ingestion jobs of the server: uploads, re-ingestions and folder syncs run one at a time
in a worker thread (the store has one writer), each with per-file progress a client can
poll."""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.report import FileOutcome, IngestReport
from rag.errors import CitadelError

log = logging.getLogger(__name__)

JOB_HISTORY = 200  # finished jobs kept for polling
GROWING = ("sync",)  # jobs whose files are found as they run (a folder's), not given


STAGES = ("waiting", "reading", "indexing", "done")
ESTIMATE_AFTER_S = 1.0  # no time left is estimated from less than this of work


@dataclass
class FileProgress:
    """One file of a job. `status`: queued, processing, then an ingest status (added,
    updated, unchanged, failed...). `stage`: waiting (its turn not come), reading (being
    parsed), indexing (`chunks_done` of `chunks_total` embedded and stored), done."""

    name: str
    status: str = "queued"
    chunks: int = 0
    reason: str = ""
    stage: str = "waiting"
    chunks_done: int = 0
    chunks_total: int = 0
    size: int = 0  # bytes: what the time left of a file not yet read is guessed from

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "chunks": self.chunks,
            "reason": self.reason,
            "stage": self.stage,
            "chunks_done": self.chunks_done,
            "chunks_total": self.chunks_total,
        }

    def finish(self, status: str, chunks: int, reason: str = "") -> None:
        self.status, self.chunks, self.reason = status, chunks, reason
        self.stage = "done"
        if self.chunks_total == 0 or status in ("added", "updated", "unchanged"):
            self.chunks_done = self.chunks_total = chunks


@dataclass
class Job:
    id: str
    owner: str
    collection: str
    kind: str  # upload, reingest, retry or sync
    files: list[FileProgress]
    state: str = "queued"  # queued, running, done, failed
    message: str = ""
    created: float = field(default_factory=time.time)
    finished: float | None = None
    paths: list[Path] = field(default_factory=list)
    root: Path | None = None  # what the files' sources are relative to (re-ingestion)
    started: float | None = None  # when the worker took it (time.time())
    report: IngestReport | None = None  # what the pipeline did, once it has run
    on_finish: Callable[[Job], None] | None = None  # told when the job ends, however
    cancelled: str = ""  # why it must not run after all (a detached folder's sync)
    # A growing job's files by name: a share of thousands is not searched file by file.
    _found: dict[str, FileProgress] = field(default_factory=dict, repr=False)

    @property
    def finished_ok(self) -> bool:
        return self.state == "done"

    def file(self, source: str) -> FileProgress | None:
        if self.kind in GROWING:  # a folder's files: named by their path in it
            entry = self._found.get(source)
            if entry is None:
                entry = self._found[source] = FileProgress(source, status="processing")
                self.files.append(entry)
            return entry
        name = Path(source).name
        return next((f for f in self.files if f.name == name), None)

    def file_stage(self, source: str, stage: str, done: int = 0, total: int = 0) -> None:
        """The pipeline's news of one file (ingest.progress.ProgressSink.file_stage)."""
        entry = self.file(source)
        if entry is None or entry.stage == "done":
            return
        if stage in STAGES:
            entry.stage = stage
            if stage == "indexing":
                entry.chunks_done, entry.chunks_total = done, total
        else:  # decided without work: unchanged, skipped, failed at discovery
            entry.finish(stage, done)

    def rate(self, now: float | None = None) -> float | None:
        """Chunks indexed a second since the job started, once there is a basis."""
        if self.started is None:
            return None
        elapsed = (now or time.time()) - self.started
        indexed = sum(f.chunks_done for f in self.files if f.status != "unchanged")
        if elapsed < ESTIMATE_AFTER_S or indexed == 0:
            return None
        return indexed / elapsed

    def seconds_left(self, now: float | None = None) -> float | None:
        """The time left, from the rate so far: the chunks still to index of files being
        indexed, and for files not read yet as many chunks a byte as those read so far.
        None: no basis yet (nothing indexed), 0 once finished."""
        if self.state not in ("queued", "running"):
            return 0.0
        rate = self.rate(now)
        if rate is None:
            return None
        counted = [f for f in self.files if f.chunks_total and f.size]
        per_byte = sum(f.chunks_total for f in counted) / max(1, sum(f.size for f in counted))
        left = 0.0
        for f in self.files:
            if f.stage == "indexing":
                left += f.chunks_total - f.chunks_done
            elif f.stage in ("waiting", "reading"):
                if not counted:
                    return None
                left += f.size * per_byte
        return left / rate

    def to_json(self) -> dict[str, Any]:
        left = self.seconds_left()
        rate = self.rate()
        return {
            "id": self.id,
            "collection": self.collection,
            "kind": self.kind,
            "state": self.state,
            "message": self.message,
            "files": [f.to_json() for f in self.files],
            "chunks_per_second": None if rate is None else round(rate, 2),
            "seconds_left": None if left is None else round(left, 1),
        }


# Runs one job: given the job, returns the per-file outcomes as they complete.
Runner = Callable[[Job, Callable[[FileOutcome], None]], None]


class JobQueue:
    def __init__(self, runner: Runner) -> None:
        self._runner = runner
        self._jobs: dict[str, Job] = {}
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(
        self,
        owner: str,
        collection: str,
        kind: str,
        paths: list[Path],
        root: Path | None = None,
        on_finish: Callable[[Job], None] | None = None,
    ) -> Job:
        listed = kind not in GROWING
        job = Job(
            id=secrets.token_urlsafe(12),
            owner=owner,
            collection=collection,
            kind=kind,
            files=[FileProgress(p.name, size=_size(p)) for p in paths] if listed else [],
            paths=paths,
            root=root,
            on_finish=on_finish,
        )
        with self._lock:
            self._jobs[job.id] = job
            self._trim()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="citadel-ingest", daemon=True
                )
                self._thread.start()
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def wait(self, job: Job, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while job.state in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.05)
        return job.state not in ("queued", "running")

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def _trim(self) -> None:
        done = [j for j in self._jobs.values() if j.finished is not None]
        for job in sorted(done, key=lambda j: j.finished or 0)[: max(0, len(done) - JOB_HISTORY)]:
            del self._jobs[job.id]

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            if job.cancelled:  # never started: nothing of it was written
                job.message, job.finished, job.state = job.cancelled, time.time(), "failed"
                continue
            job.started = time.time()
            job.state = "running"
            for f in job.files:
                f.status = "processing"

            def done(outcome: FileOutcome, job: Job = job) -> None:
                entry = job.file(outcome.source)
                if entry is not None:
                    entry.finish(outcome.status, outcome.chunks, outcome.reason)

            state = "done"
            try:
                self._runner(job, done)
            except CitadelError as exc:
                state, job.message = "failed", str(exc)
            except Exception as exc:  # a worker thread must survive any one bad job
                state, job.message = "failed", f"internal error: {type(exc).__name__}"
            for f in job.files:
                if f.status == "processing":
                    f.finish("failed", 0, f.reason or job.message or "not processed")
            if job.on_finish is not None:
                # Before the job shows as ended: whoever waits for it then reads its record.
                try:
                    job.on_finish(job)
                except Exception:  # what it records is lost, the worker is not
                    log.exception("recording the end of job %s failed", job.id)
            job.finished = time.time()
            job.state = state


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
