"""Changing a collection's documents: uploads (staged, checked, moved in place, ingested in
the background), re-ingestion, deletion, and recording what every ingestion did.

The Workspace decides who may touch which collection and hands this class only names it
has checked; this class never looks at a caller's teams. The command line records its own
ingestions with `record_ingestion`, so the web UI and the audit log show them alike.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ingest.mirror import forget, mirror
from ingest.ocr import ocr_options
from ingest.pipeline import IngestPipeline
from ingest.progress import SilentProgress
from ingest.report import FileOutcome, IngestReport
from ingest.workers import ParserPool
from rag.errors import CitadelError
from rag.settings import Settings
from rag.text import escape_invisible
from rag.types import DocumentRecord
from rag.wiring import Services
from ui.metadata.audit import AuditLog
from ui.metadata.catalog import Catalog
from ui.metadata.failures import IngestFailures
from ui.service.errors import UploadRejected
from ui.service.jobs import Job, JobQueue
from ui.service.limits import RateLimiter
from ui.service.uploads import check_upload, safe_filename

COMMON_FORMATS = ("pdf", "docx", "md", "html", "txt")  # parsers loaded ahead of the first file
AUDITED_NAMES = 1000  # file names an audit entry lists at most (counts are always complete)


@dataclass(frozen=True)
class UploadResult:
    job: Job | None  # None when every file was rejected
    rejected: list[tuple[str, str]]  # (file name as given, made printable; reason)


def record_ingestion(
    failures: IngestFailures,
    audit: AuditLog,
    actor: str,
    collection: str,
    report: IngestReport,
    complete: bool,
) -> None:
    """What the web UI and the audit log show of an ingestion run outside the server (the
    command line): the files that could not go in, and who changed the collection."""
    counts = report.counts()
    failures.record(collection, report.files, complete)
    changed = {s: counts[s] for s in ("added", "updated", "removed") if counts[s]}
    if changed or counts["failed"]:
        removed = [f.source for f in report.files if f.status == "removed"]
        audit.record(actor, "ingest", collection, counts=counts, removed=removed[:AUDITED_NAMES])


class Ingestion:
    def __init__(
        self,
        settings: Settings,
        services: Services,
        catalog: Catalog,
        audit: AuditLog,
        failures: IngestFailures,
    ) -> None:
        self._settings = settings
        self._services = services
        self._catalog = catalog
        self._audit = audit
        self._failures = failures
        self._limit = RateLimiter(settings.server.uploads_per_minute)
        self.jobs = JobQueue(self._run_job)
        self._write_lock = threading.Lock()  # one writer at a time on the store
        self._parsers: ParserPool | None = None  # started by the first ingestion job
        # Uploads being received when the server last stopped will never be finished.
        shutil.rmtree(self.incoming, ignore_errors=True)

    @property
    def incoming(self) -> Path:
        """Where uploaded files wait, under a private name, until they are checked."""
        return self._settings.uploads_path / ".incoming"

    def close(self) -> None:
        self.jobs.close()
        if self._parsers is not None:
            self._parsers.__exit__(None, None, None)
            self._parsers = None

    # -- uploads -------------------------------------------------------------------------
    def admit(self, actor: str) -> None:
        """Whether `actor` may start an upload now, before its files are received."""
        self._limit.ensure_room(actor)

    def admit_sync(self, actor: str) -> None:
        """A sync asked for now counts as an upload: each one reads a whole share and holds
        the one ingestion queue (RateLimited past `server.uploads_per_minute`)."""
        self._limit.check(actor)

    def stage(self, files: Sequence[Path]) -> tuple[list[tuple[str, Path]], list[tuple[str, str]]]:
        """Private copies in the incoming folder of files another component received (the
        web UI's): (name, copy) for each, and (name, reason) for those that could not be
        read. The caller hands the copies to `upload`, which removes them."""
        self.incoming.mkdir(parents=True, exist_ok=True)
        staged: list[tuple[str, Path]] = []
        unreadable: list[tuple[str, str]] = []
        for path in files:
            with tempfile.NamedTemporaryFile(dir=self.incoming, delete=False) as out:
                copy = Path(out.name)
                try:
                    with path.open("rb") as source:
                        shutil.copyfileobj(source, out)
                except OSError:
                    unreadable.append((path.name, "the upload was interrupted"))
                    copy.unlink(missing_ok=True)
                    continue
            staged.append((path.name, copy))
        return staged, unreadable

    def upload(
        self,
        actor: str,
        collection: str,
        staged: Sequence[tuple[str, Path]],
        client: str | None = None,
    ) -> UploadResult:
        """Check each staged file (name, size, content), move the good ones into the
        collection's upload folder and queue their ingestion; bad ones are reported, never
        fatal. Every staged file is gone afterwards, moved or removed."""
        try:
            return self._upload(actor, collection, staged, client)
        finally:
            for _, temp in staged:
                temp.unlink(missing_ok=True)

    def _upload(
        self, actor: str, collection: str, staged: Sequence[tuple[str, Path]], client: str | None
    ) -> UploadResult:
        s = self._settings
        # The whole batch counts against the rate limit up front: a limit hit half-way
        # would leave files stored but never ingested.
        self._limit.check(actor, cost=max(1, len(staged)))
        self._catalog.register(collection)
        folder = s.uploads_path / collection
        folder.mkdir(parents=True, exist_ok=True)
        accepted: dict[str, Path] = {}
        rejected: list[tuple[str, str]] = []
        for given, temp in staged:
            try:
                stored_name = safe_filename(given)
                check_upload(
                    stored_name,
                    temp,
                    int(s.server.max_upload_mb * 2**20),
                    s.ingest.max_expansion_ratio,
                )
            except UploadRejected as exc:
                rejected.append((escape_invisible(given), str(exc)))
                continue
            target = folder / stored_name
            partial = target.with_name(f".{stored_name}.part")
            shutil.move(temp, partial)
            partial.replace(target)  # a reader never sees half a file under the real name
            accepted[stored_name] = target
        self._audit.record(
            actor,
            "upload",
            collection,
            client,
            files=sorted(accepted),
            rejected=[n for n, _ in rejected],  # already made printable
        )
        if not accepted:
            return UploadResult(None, rejected)
        return UploadResult(
            self.jobs.submit(actor, collection, "upload", list(accepted.values())), rejected
        )

    # -- documents -----------------------------------------------------------------------
    def original(self, record: DocumentRecord) -> Path | None:
        """The document's file on disk, or None when it is no longer there."""
        root = Path(record.root).resolve()
        path = (root / record.source).resolve()
        # A symlink or a renamed folder must not turn a document link into any file.
        if not path.is_relative_to(root) or not path.is_file():
            return None
        return path

    def reingest(
        self, actor: str, record: DocumentRecord, path: Path, client: str | None = None
    ) -> Job:
        self._audit.record(actor, "reingest", record.collection, client, source=record.source)
        return self.jobs.submit(actor, record.collection, "reingest", [path], Path(record.root))

    def kept_upload(self, collection: str, source: str) -> Path | None:
        """The uploaded original of a file of the collection, when Citadel keeps one (files
        of a synced folder stay where they are, and are not Citadel's to read again)."""
        folder = (self._settings.uploads_path / collection).resolve()
        path = (folder / source).resolve()
        if path.parent != folder or not path.is_file():
            return None
        return path

    def retry(self, actor: str, collection: str, path: Path, client: str | None = None) -> Job:
        """Ingest a kept upload that failed once more (its cause may have been fixed)."""
        self._audit.record(actor, "retry", collection, client, source=path.name)
        return self.jobs.submit(actor, collection, "retry", [path])

    def sync(
        self, actor: str, collection: str, folder: Path, on_finish: Callable[[Job], None]
    ) -> Job:
        """Queue a sync of the collection with the folder (ingest/mirror.py); `on_finish`
        is told when it ends, its report (None if it could not run) on the job."""
        return self.jobs.submit(actor, collection, "sync", [folder], folder, on_finish)

    def delete(self, actor: str, record: DocumentRecord, client: str | None = None) -> int:
        """Remove the document from the store (and an uploaded copy from disk); the number
        of chunks removed."""
        with self._write_lock:
            removed = self._services.store.delete_document(record.collection, record.id)
        uploaded = self._settings.uploads_path.resolve() / record.collection
        original = Path(record.root).resolve() / record.source
        if original.parent == uploaded and original.is_file():
            original.unlink()  # an uploaded copy belongs to Citadel; a synced folder does not
        self._audit.record(
            actor, "delete", record.collection, client, source=record.source, chunks=removed
        )
        return removed

    def forget_folder(self, collection: str, folder: Path) -> int:
        """Remove from the store the documents that came from `folder` (a detached one);
        their number. The files stay where they are: they are not Citadel's."""
        with self._write_lock:
            return forget(self._services.store, collection, folder)

    # -- the worker ----------------------------------------------------------------------
    def _run_job(self, job: Job, done: Callable[[FileOutcome], None]) -> None:
        services = self._services
        progress = _JobProgress(job, done, lambda o: self._failures.record(job.collection, [o]))
        with self._write_lock:
            pipeline = IngestPipeline(
                services.store,
                services.embedder,
                services.sparse,
                self._settings.ingest,
                progress,
                self._parser_pool(),
            )
            try:
                if job.cancelled:  # between the queue and this lock
                    raise CitadelError(job.cancelled)
                if job.kind == "sync" and job.root is not None:
                    report = mirror(pipeline, services.store, job.root, job.collection)
                else:
                    # Read again even when unchanged: the document is replaced, "updated".
                    force = job.kind == "reingest"
                    report = pipeline.run(job.paths, job.collection, root=job.root, force=force)
                job.report = report
            finally:
                services.embedder.use_threads(serving_threads())
        # Files decided without parsing (unchanged, same content as another, refused at
        # discovery) are in the report only: it is the final word on every file.
        for outcome in report.files:
            progress.file_done(outcome)

    def _parser_pool(self) -> ParserPool:
        """Parser processes kept for the server's life: starting them (and loading
        unstructured in each) would otherwise cost every upload several seconds."""
        if self._parsers is None:
            s = self._settings.ingest
            pool = ParserPool(
                s.parser_processes,
                s.parse_timeout_s,
                s.parse_memory_mb,
                COMMON_FORMATS,
                ocr_options(s),
            )
            self._parsers = pool.__enter__()
        return self._parsers


class _JobProgress(SilentProgress):
    """Forwards the pipeline's per-file stages to the job, and its outcomes to the job and
    to the failures table."""

    def __init__(self, job: Job, *sinks: Callable[[FileOutcome], None]) -> None:
        self._job = job
        self._sinks = sinks

    def file_stage(self, source: str, stage: str, done: int = 0, total: int = 0) -> None:
        self._job.file_stage(source, stage, done, total)

    def file_done(self, outcome: FileOutcome) -> None:
        for sink in self._sinks:
            sink(outcome)


def serving_threads() -> int:
    """Cores the embedder may use while the server answers questions."""
    return max(1, min(2, os.cpu_count() or 1))
