"""Ingestion jobs of the server: uploads and re-ingestions run one at a time in a worker
thread (the store has one writer), each with per-file progress a client can poll."""

from __future__ import annotations

import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.report import FileOutcome
from rag.errors import CitadelError

JOB_HISTORY = 200  # finished jobs kept for polling


@dataclass
class FileProgress:
    name: str
    status: str = "queued"  # queued, processing, then an ingest status (added, failed...)
    chunks: int = 0
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "chunks": self.chunks,
            "reason": self.reason,
        }


@dataclass
class Job:
    id: str
    owner: str
    collection: str
    kind: str  # upload or reingest
    files: list[FileProgress]
    state: str = "queued"  # queued, running, done, failed
    message: str = ""
    created: float = field(default_factory=time.time)
    finished: float | None = None
    paths: list[Path] = field(default_factory=list)
    root: Path | None = None  # what the files' sources are relative to (re-ingestion)

    @property
    def finished_ok(self) -> bool:
        return self.state == "done"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "collection": self.collection,
            "kind": self.kind,
            "state": self.state,
            "message": self.message,
            "files": [f.to_json() for f in self.files],
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
        self, owner: str, collection: str, kind: str, paths: list[Path], root: Path | None = None
    ) -> Job:
        job = Job(
            id=secrets.token_urlsafe(12),
            owner=owner,
            collection=collection,
            kind=kind,
            files=[FileProgress(p.name) for p in paths],
            paths=paths,
            root=root,
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
            job.state = "running"
            for f in job.files:
                f.status = "processing"
            by_name = {f.name: f for f in job.files}

            def done(outcome: FileOutcome, by_name: dict[str, FileProgress] = by_name) -> None:
                entry = by_name.get(Path(outcome.source).name)
                if entry is not None:
                    entry.status, entry.chunks, entry.reason = (
                        outcome.status,
                        outcome.chunks,
                        outcome.reason,
                    )

            try:
                self._runner(job, done)
                job.state = "done"
            except CitadelError as exc:
                job.state, job.message = "failed", str(exc)
            except Exception as exc:  # a worker thread must survive any one bad job
                job.state, job.message = "failed", f"internal error: {type(exc).__name__}"
            for f in job.files:
                if f.status == "processing":
                    f.status, f.reason = "failed", f.reason or job.message or "not processed"
            job.finished = time.time()
