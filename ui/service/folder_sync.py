"""Folders attached to collections (typically mounted SMB or NFS shares), kept in sync by
the server: on demand and every `sources.sync_interval_min` minutes.

A sync is an ingestion job like an upload (same queue, same progress, one writer): the
pipeline with prune, limited to the folder's own documents (ingest/mirror.py). A folder
has at most one sync queued or running: asking again gives that job. What each sync did
is kept in ui/metadata/folders.py for the UI and the CLI.

The Workspace decides who may do what and hands this class only sources it has checked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ingest.mirror import shows_entries
from ingest.report import IngestReport
from rag.errors import CitadelError
from rag.settings import Settings
from ui.metadata.audit import AuditLog
from ui.metadata.folders import FolderSource, FolderSources
from ui.service.errors import NotFound
from ui.service.ingestion import Ingestion
from ui.service.jobs import Job

log = logging.getLogger(__name__)

SCHEDULER = "schedule"  # the audit log's actor of the syncs nobody asked for
MAX_PATH_CHARS = 4096  # PATH_MAX on Linux


class FolderRejected(CitadelError):
    """A folder that cannot be attached; the message says why."""


def summary(report: IngestReport, listed: int) -> tuple[dict[str, int], list[dict[str, str]]]:
    """A sync's counts, and at most `listed` of its files that could not go in."""
    failures = [
        {"source": f.source, "status": f.status, "reason": f.reason}
        for f in report.files
        if f.status in ("failed", "skipped")
    ]
    return report.counts(), failures[:listed]


def named(sources: list[FolderSource], ref: str) -> FolderSource:
    """The source among `sources` that `ref` names: its id, its path, or a path reaching
    the same folder (through a link or another mount point)."""
    text = ref.strip()
    try:
        folder = str(Path(text).resolve()) if Path(text).is_absolute() else None
    except (OSError, ValueError):  # a NUL, a link loop: no folder of ours
        folder = None
    matches = [s for s in sources if text in (str(s.id), s.path) or folder == s.path]
    if len(matches) > 1:
        ids = ", ".join(str(s.id) for s in matches)
        raise CitadelError(f"{text} is attached to several collections: name it by id ({ids})")
    if not matches:
        raise NotFound("no such folder source")
    return matches[0]


def checked_folder(text: str, data_dir: Path, allowed_roots: Sequence[Path] = ()) -> Path:
    """The folder `text` names, resolved, or FolderRejected saying what is wrong with it."""
    text = text.strip()
    if not text:
        raise FolderRejected("give the folder's path")
    if len(text) > MAX_PATH_CHARS or "\0" in text:
        raise FolderRejected("that is not a usable path (too long, or a NUL character)")
    path = Path(text)
    if not path.is_absolute():
        raise FolderRejected(f"give the folder's absolute path ({text} is relative)")
    if not path.exists():
        raise FolderRejected(f"no such folder on the server: {text} (is the share mounted?)")
    if not path.is_dir():
        raise FolderRejected(f"{text} is not a folder")
    try:
        shows_entries(path)
    except TimeoutError as exc:
        raise FolderRejected(f"the server cannot read the folder {text}: {exc}") from exc
    except OSError as exc:
        raise FolderRejected(f"the server cannot read the folder {text}: {exc.strerror}") from exc
    folder = path.resolve()
    roots = [root.resolve() for root in allowed_roots]
    if roots and not any(folder.is_relative_to(root) for root in roots):
        listed = ", ".join(str(root) for root in roots)
        raise FolderRejected(
            f"{text} is outside the folders documents may come from ({listed}: "
            "sources.allowed_roots)"
        )
    data = data_dir.resolve()
    if folder.is_relative_to(data) or data.is_relative_to(folder):
        raise FolderRejected(
            f"{text} is, holds or lies inside Citadel's own data directory: attach a folder "
            "of documents instead"
        )
    return folder


def attach(
    settings: Settings,
    sources: FolderSources,
    audit: AuditLog,
    actor: str,
    collection: str,
    path: str,
    client: str | None = None,
) -> FolderSource:
    """Attach the folder `path` names to `collection`, once checked (see checked_folder)
    and found apart from the collection's other folders."""
    folder = checked_folder(path, settings.data_dir, settings.sources.allowed_roots)
    for other in sources.all():
        there = Path(other.path)
        if other.collection != collection:
            continue
        if there == folder:
            raise FolderRejected(f"{folder} is already attached to {collection!r}")
        if folder.is_relative_to(there) or there.is_relative_to(folder):
            raise FolderRejected(
                f"{folder} overlaps {there}, attached to {collection!r} already: a file "
                "would belong to both"
            )
    source = sources.add(collection, str(folder), actor)
    audit.record(
        actor, "admin", collection, client, op="folder_attach", path=source.path, id=source.id
    )
    return source


def detach(
    sources: FolderSources,
    audit: AuditLog,
    actor: str,
    source: FolderSource,
    forget: Callable[[str, Path], int] | None,
    client: str | None = None,
) -> int:
    """Detach the folder; `forget` (None: keep them) removes its documents from the
    collection. The number of documents removed."""
    sources.remove(source.id)
    removed = forget(source.collection, Path(source.path)) if forget is not None else 0
    audit.record(
        actor,
        "admin",
        source.collection,
        client,
        op="folder_detach",
        path=source.path,
        id=source.id,
        documents_removed=removed,
    )
    return removed


def record_sync(
    settings: Settings,
    sources: FolderSources,
    audit: AuditLog,
    source: FolderSource,
    report: IngestReport | None,
    error: str,
    seconds: float,
    actor: str,
    client: str | None = None,
) -> None:
    """What a sync did (`report`), or why it could not run (`error`), as the UI and the
    CLI show it; audited when it changed something or something failed."""
    counts: dict[str, int] = {}
    failures: list[dict[str, str]] = []
    if report is not None:
        counts, failures = summary(report, settings.sources.max_listed_failures)
    sources.record_sync(source.id, seconds, counts, failures, error)
    changed = any(counts.get(s) for s in ("added", "updated", "removed", "failed"))
    if changed or error:  # a schedule's syncs that found nothing new leave no trace
        audit.record(
            actor,
            "folder_sync",
            source.collection,
            client,
            path=source.path,
            counts=counts,
            error=error,
        )


class FolderSync:
    """The server's side: syncs as jobs, one at a time per folder, and the schedule."""

    def __init__(
        self,
        settings: Settings,
        ingestion: Ingestion,
        sources: FolderSources,
        audit: AuditLog,
    ) -> None:
        self._settings = settings
        self._ingestion = ingestion
        self._sources = sources
        self._audit = audit
        self._active: dict[int, Job] = {}  # each source's sync queued or running
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def all(self) -> list[FolderSource]:
        return self._sources.all()

    def add(
        self, actor: str, collection: str, path: str, client: str | None = None
    ) -> FolderSource:
        return attach(self._settings, self._sources, self._audit, actor, collection, path, client)

    def remove(
        self, actor: str, source: FolderSource, keep_documents: bool, client: str | None = None
    ) -> int:
        """Detach the folder; its documents leave the collection unless `keep_documents`.
        The number of documents removed."""
        with self._lock:
            pending = self._active.pop(source.id, None)
            if pending is not None:  # checked again under the store's writer lock
                pending.cancelled = "cancelled: the folder was detached"
        # A sync running now holds the store's writer lock: its documents go after it.
        forget = None if keep_documents else self._ingestion.forget_folder
        return detach(self._sources, self._audit, actor, source, forget, client)

    def sync(self, actor: str, source: FolderSource, client: str | None = None) -> Job:
        """The folder's sync job: the one queued or running, or a new one."""
        with self._lock:
            running = self._active.get(source.id)
            if running is not None and running.state in ("queued", "running"):
                return running

            def finished(job: Job) -> None:
                self._finished(source.id, job, actor, client)

            job = self._ingestion.sync(actor, source.collection, Path(source.path), finished)
            self._active[source.id] = job
            return job

    def _finished(self, source_id: int, job: Job, actor: str, client: str | None) -> None:
        source = self._sources.get(source_id)
        if source is not None:  # else detached while it ran
            seconds = time.time() - (job.started or job.created)
            s = self._settings
            record_sync(
                s,
                self._sources,
                self._audit,
                source,
                job.report,
                job.message,
                seconds,
                actor,
                client,
            )

    # -- the schedule --------------------------------------------------------------------
    def start(self) -> None:
        """Sync every folder every `sources.sync_interval_min` minutes (0: never unasked),
        until `stop`."""
        minutes = self._settings.sources.sync_interval_min
        if minutes <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._every, args=(minutes * 60,), name="citadel-folder-sync", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _every(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            for source in self._sources.all():
                try:
                    self.sync(SCHEDULER, source)
                except CitadelError as exc:  # the metadata database locked, say
                    log.warning("the scheduled sync of %s did not start: %s", source.path, exc)
