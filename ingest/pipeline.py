"""One ingestion run: discover -> decide -> parse (isolated) -> chunk -> embed -> store.

Crash safety comes from the order of writes per document: its chunks (deterministic IDs,
so a re-run overwrites instead of duplicating), then removal of other versions' chunks,
then the document record last. A file whose record is missing or has another hash is
processed again, so a run killed at any moment converges on the next one.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from ingest.chunk import CHUNKING_VERSION, ChunkDraft, Chunker, document_title
from ingest.discover import Candidate, Discovery, discover, sha256_of
from ingest.formats import PAGE_TYPES
from ingest.guards import Refused, check_file
from ingest.ocr import ocr_options
from ingest.parse import ParsedElement
from ingest.progress import ProgressSink, SilentProgress
from ingest.report import FileOutcome, IngestReport
from ingest.workers import ParseJob, ParseOutcome, ParserPool, cpu_count
from rag.calibration import recalibrate_if_needed
from rag.errors import CitadelError, EmbeddingModelMismatch, StoreUnavailable
from rag.ids import document_id
from rag.ports import Embedder, SparseEncoder, VectorStore
from rag.settings import IngestSettings
from rag.sparse import SPARSE_VERSION
from rag.types import CollectionSpec, DocumentRecord, SparseVector

_PARSE_AHEAD_DOCUMENTS = 512  # parsed documents waiting for the embedder, at most
_EMBED_SLICE = 64  # chunks per embedding call within a batch: a progress tick every few s


@dataclass(frozen=True)
class _Work:
    candidate: Candidate
    sha256: str
    previous: DocumentRecord | None


@dataclass(frozen=True)
class _Prepared:
    """A parsed and chunked document, waiting for its vectors."""

    item: _Work
    title: str
    drafts: list[ChunkDraft]
    pages: int


def _batches(
    prepared: Iterator[_Prepared | FileOutcome], chunks_per_batch: int
) -> Iterator[list[_Prepared | FileOutcome]]:
    batch: list[_Prepared | FileOutcome] = []
    size = 0
    for item in prepared:
        batch.append(item)
        size += len(item.drafts) if isinstance(item, _Prepared) else 0
        if size >= chunks_per_batch:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def chunker_for(embedder: Embedder, settings: IngestSettings) -> Chunker:
    """Chunks within the embedder's window and the settings' chunk size, counted by the
    embedder's own tokenizer (its document prompt included)."""
    return Chunker(embedder.count_tokens, min(embedder.max_tokens, settings.max_chunk_tokens))


class IngestPipeline:
    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        sparse: SparseEncoder,
        settings: IngestSettings,
        progress: ProgressSink | None = None,
        parsers: ParserPool | None = None,
    ) -> None:
        """`parsers`: a running pool to reuse across runs; by default each run starts its own."""
        self._parsers = parsers
        self._vector_store = store
        self._embedder = embedder
        self._sparse = sparse
        self._settings = settings
        self._progress = progress or SilentProgress()
        self._chunker: Chunker | None = None  # built on first use: it needs the model loaded

    def run(
        self,
        paths: list[Path],
        collection: str,
        prune: bool = False,
        root: Path | None = None,
        force: bool = False,
        owned: Callable[[DocumentRecord], bool] | None = None,
    ) -> IngestReport:
        """Ingest `paths` into `collection`; `root`: what single files' sources are
        relative to (default: their own folder). `force`: read the files again even when
        they are unchanged (a re-ingestion asked for): they are reported as updated.
        `owned`: the collection's documents this run answers for (a synced folder's), the
        only ones it may replace or prune; None: all of them."""
        missing = [str(p) for p in paths if not p.exists() and not p.is_symlink()]
        if missing:
            raise CitadelError(f"no such file or folder: {', '.join(missing)}")
        started = time.monotonic()
        report = IngestReport(collection)
        existing = self._vector_store.collection_spec(collection)
        if existing is not None and existing.embedding_model != self._embedder.model_name:
            raise EmbeddingModelMismatch.between(
                collection, existing.embedding_model, self._embedder.model_name
            )
        found = discover(paths, int(self._settings.max_file_mb * 2**20), root)
        for rejected in found.rejected:
            report.add(
                FileOutcome(
                    rejected.source, rejected.status, rejected.file_type, reason=rejected.reason
                )
            )
        stored = {d.source: d for d in self._vector_store.documents(collection)} if existing else {}
        if owned is not None:
            stored = _apart_from_others(found, stored, owned, report)
        work = self._decide(found, stored, report, force)
        for decided in report.files:  # no work to do on these: they are done already
            self._progress.file_stage(
                decided.source, decided.status, decided.chunks, decided.chunks
            )
        if prune:
            self._prune(found, stored, report)
        report.times.discover = time.monotonic() - started

        def reading(job: ParseJob) -> None:
            self._progress.file_stage(work[job.key].candidate.source, "reading")

        with _ParseAhead(work, self._parsers, self._settings, reading) as parsed:
            # The parser processes warm up while the embedding model loads (when it must).
            if existing is None:
                spec = CollectionSpec(
                    self._embedder.model_name, self._embedder.dimension, self._embedder.backend
                )
                self._vector_store.ensure_collection(collection, spec)
            self._progress.start(len(work))
            try:

                def busy() -> int:
                    return 0 if parsed.done.is_set() else self._settings.parser_processes

                prepared = (
                    self._prepare(work[o.job.key], o, report) for o in parsed.outcomes(report)
                )
                # Full, length-sorted batches across documents embed faster than one call
                # per document (less padding).
                for batch in _batches(prepared, self._settings.embed_batch_chunks):
                    for outcome in self._embed_and_store(batch, collection, busy, report):
                        report.add(outcome)
                        self._progress.file_done(outcome)
            finally:
                self._progress.finish()
        counts = report.counts()
        if counts["added"] + counts["updated"] + counts["removed"]:
            # Qdrant Edge searches exhaustively until its optimizer builds the HNSW index
            # (and merges segments); without it, search time grows linearly with the chunks.
            self._progress.step("building the search index...")
            t0 = time.monotonic()
            try:
                self._vector_store.optimize(collection)
            except StoreUnavailable as exc:
                # The documents are stored and searchable (exhaustively, so more slowly):
                # no room to rebuild the index is a warning, not a failed ingestion.
                self._progress.step(f"the search index was not rebuilt: {exc}")
            report.times.optimize = time.monotonic() - t0
        # Last: the evidence gate of a new or much changed collection is fitted to it.
        self._progress.step("calibrating the evidence gate...")
        t0 = time.monotonic()
        recalibrate_if_needed(
            self._vector_store, self._embedder, self._sparse, collection, self._settings
        )
        report.times.calibrate = time.monotonic() - t0
        report.seconds = time.monotonic() - started
        return report

    # -- stages ---------------------------------------------------------------------------
    def _chunks_for(self, elements: list[ParsedElement], fmt: str, title: str) -> list[ChunkDraft]:
        if self._chunker is None:
            self._chunker = chunker_for(self._embedder, self._settings)
        return self._chunker.chunk(elements, fmt, title)

    def _decide(
        self,
        found: Discovery,
        stored: dict[str, DocumentRecord],
        report: IngestReport,
        force: bool = False,
    ) -> list[_Work]:
        """Unchanged files are skipped without parsing (unless `force`); identical copies
        are stored once."""
        work: list[_Work] = []
        by_hash: dict[str, str] = {}
        hashed = [(c, sha256_of(c.path)) for c in found.candidates]

        # A copy already indexed keeps its place; other copies point to it.
        def current(previous: DocumentRecord | None, digest: str) -> bool:
            return (
                previous is not None
                and previous.sha256 == digest
                and previous.chunking == CHUNKING_VERSION
                and previous.sparse == SPARSE_VERSION
            )

        for candidate, digest in hashed:
            if current(stored.get(candidate.source), digest):
                by_hash.setdefault(digest, candidate.source)
        for candidate, digest in hashed:
            previous = stored.get(candidate.source)
            fmt = candidate.format.name
            if previous is not None and current(previous, digest) and not force:
                if previous.root != str(candidate.root):  # the folder moved: follow it
                    self._vector_store.put_document(_with_root(previous, candidate.root))
                report.add(
                    FileOutcome(candidate.source, "unchanged", fmt, previous.chunks, previous.pages)
                )
                continue
            original = by_hash.setdefault(digest, candidate.source)
            if original != candidate.source and not (force and previous is not None):
                report.add(
                    FileOutcome(
                        candidate.source, "skipped", fmt, reason=f"same content as {original}"
                    )
                )
                continue
            try:
                check_file(
                    candidate.path,
                    candidate.format,
                    self._settings.max_expansion_ratio,
                    int(self._settings.max_file_mb * 2**20),
                )
            except (Refused, OSError) as exc:
                report.add(self._failure(candidate.source, fmt, str(exc), previous))
                continue
            except Exception as exc:
                # A file the checks did not foresee costs that file, never the run (the
                # parser process has its own guard).
                why = f"cannot check this file ({type(exc).__name__}: {str(exc)[:200]})"
                report.add(self._failure(candidate.source, fmt, why, previous))
                continue
            work.append(_Work(candidate, digest, previous))
        return work

    def _prune(
        self, found: Discovery, stored: dict[str, DocumentRecord], report: IngestReport
    ) -> None:
        """The collection mirrors the given paths: what is not found under them goes.

        A file still present but failing or refused now is not "gone": it is kept.
        """
        present = {c.source for c in found.candidates} | {r.source for r in found.rejected}
        for source, record in stored.items():
            if source not in present:
                self._vector_store.delete_document(record.collection, record.id)
                report.add(FileOutcome(source, "removed", record.file_type, record.chunks))

    def _prepare(
        self, item: _Work, parsed: ParseOutcome, report: IngestReport
    ) -> _Prepared | FileOutcome:
        c, fmt = item.candidate, item.candidate.format.name
        if parsed.error is not None:
            return self._failure(c.source, fmt, parsed.error, item.previous)
        elements = parsed.elements or []
        t0 = time.monotonic()
        title = document_title(elements, fmt, Path(c.source).stem.replace("_", " "))
        drafts = self._chunks_for(elements, fmt, title)
        report.times.chunk += time.monotonic() - t0
        if not drafts:
            return self._failure(c.source, fmt, "no text found", item.previous)
        self._progress.file_stage(c.source, "indexing", 0, len(drafts))
        report.truncated_chunks += sum(
            1
            for d in drafts
            if self._embedder.count_tokens(d.embed_text) > self._embedder.max_tokens
        )
        return _Prepared(item, title, drafts, _page_count(elements, fmt))

    def _embed_and_store(
        self,
        batch: list[_Prepared | FileOutcome],
        collection: str,
        busy_parsers: Callable[[], int],
        report: IngestReport,
    ) -> Iterator[FileOutcome]:
        """The batch's chunks embedded together, then each document stored in order:
        chunks, stale chunks removed, record last. `busy_parsers`: parser processes at work
        now (asked before each slice: the parsers often finish within a batch)."""
        docs = [p for p in batch if isinstance(p, _Prepared)]
        t1 = time.monotonic()
        texts = [d.embed_text for p in docs for d in p.drafts]
        owners = [p.item.candidate.source for p in docs for _ in p.drafts]
        dense = iter(self._embed(texts, owners, busy_parsers))
        report.times.embed += time.monotonic() - t1
        for prepared in batch:
            if isinstance(prepared, FileOutcome):
                yield prepared
                continue
            vectors = [next(dense) for _ in prepared.drafts]
            t2 = time.monotonic()
            sparse = [self._sparse.encode_document(d.embed_text) for d in prepared.drafts]
            report.times.embed += time.monotonic() - t2
            yield self._write(prepared, vectors, sparse, collection, report)

    def _embed(
        self, texts: list[str], owners: list[str], busy_parsers: Callable[[], int] = lambda: 0
    ) -> list[list[float]]:
        """Sorted by length once for the whole batch (little padding), embedded in slices so
        the progress display moves every few seconds. `owners`: each text's document
        (its source), whose own count of chunks embedded is reported after each slice."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors: list[list[float]] = [[] for _ in texts]
        total = Counter(owners)
        done: Counter[str] = Counter()
        for start in range(0, len(order), _EMBED_SLICE):
            part = order[start : start + _EMBED_SLICE]
            # Parser processes still at work own a core each: the embedder takes the rest,
            # so the two never fight over the same core; all of them once parsing is over.
            self._embedder.use_threads(max(1, cpu_count() - busy_parsers()))
            for i, vector in zip(
                part, self._embedder.embed_documents([texts[i] for i in part]), strict=True
            ):
                vectors[i] = vector
            self._progress.chunks_embedded(len(part))
            moved = Counter(owners[i] for i in part)
            done.update(moved)
            for source in moved:
                self._progress.file_stage(source, "indexing", done[source], total[source])
        return vectors

    def _write(
        self,
        prepared: _Prepared,
        dense: list[list[float]],
        sparse: list[SparseVector],
        collection: str,
        report: IngestReport,
    ) -> FileOutcome:
        t0 = time.monotonic()
        item, c = prepared.item, prepared.item.candidate
        fmt = c.format.name
        record = DocumentRecord(
            id=document_id(collection, c.source),
            collection=collection,
            source=c.source,
            file_type=fmt,
            title=prepared.title,
            pages=prepared.pages,
            chunks=len(prepared.drafts),
            sha256=item.sha256,
            size=c.size,
            ingested_at=datetime.now(UTC).isoformat(timespec="seconds"),
            root=str(c.root),
            chunking=CHUNKING_VERSION,
            sparse=SPARSE_VERSION,
        )
        chunks = [
            record.chunk(
                n, d.text, d.embed_text, d.headings, d.pages, d.slide, d.sheet, d.page_starts, d.ocr
            )
            for n, d in enumerate(prepared.drafts)
        ]
        if item.previous is not None and item.previous.sha256 == item.sha256:
            # Same file, new chunking rules: the old chunks share its hash, so they go first
            # (record first: a crash here leaves the file absent, and the next run adds it).
            self._vector_store.delete_document(collection, record.id)
        self._vector_store.upsert_chunks(collection, chunks, dense, sparse)
        self._vector_store.delete_stale_chunks(collection, record.id, item.sha256)
        self._vector_store.put_document(record)  # last: its presence means "complete"
        report.times.store += time.monotonic() - t0
        status = "updated" if item.previous is not None else "added"
        return FileOutcome(c.source, status, fmt, len(chunks), prepared.pages)

    @staticmethod
    def _failure(
        source: str, fmt: str, reason: str, previous: DocumentRecord | None
    ) -> FileOutcome:
        if previous is not None:
            reason += "; the previously indexed version is kept"
        return FileOutcome(source, "failed", fmt, reason=reason)


def _page_count(elements: list[ParsedElement], fmt: str) -> int:
    if fmt in PAGE_TYPES or fmt == "pptx":
        return max((e.page or 0 for e in elements), default=0)
    if fmt == "xlsx":
        return len({e.sheet for e in elements if e.sheet})
    return 0


def _apart_from_others(
    found: Discovery,
    stored: dict[str, DocumentRecord],
    owned: Callable[[DocumentRecord], bool],
    report: IngestReport,
) -> dict[str, DocumentRecord]:
    """The stored documents the run owns. A file whose name another document of the
    collection holds (an upload, another folder's file) would take its identity: it is
    reported as failed and left out, and the other document is kept."""
    others = {source for source, record in stored.items() if not owned(record)}
    kept = []
    for candidate in found.candidates:
        if candidate.source in others:
            why = (
                "another document of the collection (uploaded, or from another folder) has "
                "this name; it is kept and this file is not ingested"
            )
            report.add(FileOutcome(candidate.source, "failed", candidate.format.name, reason=why))
        else:
            kept.append(candidate)
    found.candidates = kept
    return {source: record for source, record in stored.items() if owned(record)}


def _with_root(record: DocumentRecord, root: Path) -> DocumentRecord:
    return replace(record, root=str(root))


class _ParseAhead:
    """Parsing in isolated processes, drained by a thread so it runs ahead of embedding.

    Entering starts the parser processes (they warm up while the caller loads the model);
    leaving stops them, whatever happened in between.
    """

    def __init__(
        self,
        work: list[_Work],
        pool: ParserPool | None,
        settings: IngestSettings,
        started: Callable[[ParseJob], None] | None = None,
    ) -> None:
        self._jobs = [
            ParseJob(i, str(w.candidate.path), w.candidate.format.name) for i, w in enumerate(work)
        ]
        self._pool = pool
        self._settings = settings
        self._started = started
        # Parsers run far ahead (parsed text is small): they finish early and hand their core
        # back to the embedder, instead of crawling along beside it for the whole run.
        self._queue: queue.Queue[ParseOutcome | BaseException | None] = queue.Queue(
            maxsize=_PARSE_AHEAD_DOCUMENTS
        )
        self._stop = threading.Event()
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="citadel-parsers", daemon=True)

    def __enter__(self) -> _ParseAhead:
        if self._jobs:
            self._thread.start()
        else:
            self.done.set()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        while self._thread.is_alive():  # unblock a drain thread waiting on a full queue
            try:
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(0.1)

    def outcomes(self, report: IngestReport) -> Iterator[ParseOutcome]:
        if not self._jobs:
            return
        while True:
            waited = time.monotonic()
            item = self._queue.get()
            report.times.parse_wait += time.monotonic() - waited
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            report.times.parse_cpu += item.seconds
            yield item

    def _drain(self) -> None:
        s = self._settings
        try:
            with contextlib.ExitStack() as stack:
                pool = self._pool or stack.enter_context(
                    ParserPool(
                        min(s.parser_processes, len(self._jobs)),
                        s.parse_timeout_s,
                        s.parse_memory_mb,
                        {job.file_type for job in self._jobs},
                        ocr_options(s),
                    )
                )
                for outcome in pool.parse_all(self._jobs, self._started):
                    if self._stop.is_set():
                        return
                    self._queue.put(outcome)
            self.done.set()
            self._queue.put(None)
        except BaseException as exc:  # surfaced in the consuming thread
            self._queue.put(exc)
