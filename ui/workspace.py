"""What a caller may do, in one place: every front end (REST, OpenAI API, web UI, file
links) goes through these methods, so a permission is checked and audited once.

Isolation rule: a caller only ever names collections through `_readable`; anything else
(unknown or another team's) is `NotFound`, with the same message, so a probe cannot tell
"exists but not yours" from "does not exist".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import os
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.pipeline import IngestPipeline
from ingest.progress import SilentProgress
from ingest.report import FileOutcome
from ingest.workers import ParserPool
from rag.answering import Answer, Delta
from rag.errors import CitadelError, GeneratorError, StoreError
from rag.retrieval import Retrieval
from rag.settings import Settings
from rag.stores.base import validate_collection_name
from rag.types import DocumentRecord, Message, Passage, SearchFilter
from rag.wiring import Services
from ui.accounts import Caller, LoginLocked
from ui.feedback import SourceRef
from ui.jobs import Job, JobQueue
from ui.metadata import Metadata
from ui.sessions import Sessions
from ui.uploads import RateLimiter, UploadRejected, check_upload, printable, safe_filename

KEPT_ANSWERS = 5000
# What a front end accepts as a question at most; the retriever's own limit
# (retrieval.max_query_chars) is checked by the Workspace before anything else happens.
MAX_QUESTION_CHARS = 4000
COMMON_FORMATS = ("pdf", "docx", "md", "html", "txt")  # parsers loaded ahead of the first file
LOCAL_ADMIN = Caller("local", admin=True, teams=frozenset())  # authentication off (loopback)


class NotFound(CitadelError):
    """Unknown, or not the caller's: the two are never told apart."""


class Forbidden(CitadelError):
    """The caller's role does not allow the operation (not about any one object)."""


class NothingToSearch(CitadelError):
    """The caller's collections hold no documents yet."""


@dataclass(frozen=True)
class CollectionView:
    name: str
    team: str | None
    documents: int
    chunks: int
    starters: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "team": self.team,
            "documents": self.documents,
            "chunks": self.chunks,
            "starters": self.starters,
        }


@dataclass(frozen=True)
class Answered:
    """The final answer of `Workspace.ask`, with the id feedback refers to."""

    id: str
    answer: Answer
    collections: list[str]


@dataclass(frozen=True)
class _Kept:
    owner: str
    answered: Answered


@dataclass(frozen=True)
class UploadResult:
    job: Job | None  # None when every file was rejected
    rejected: list[tuple[str, str]]  # (file name as given, reason)


class Workspace:
    def __init__(self, settings: Settings, services: Services | None = None) -> None:
        self.settings = settings
        self.services = services or Services(settings)
        self.metadata = Metadata.open(settings)
        self.accounts = self.metadata.accounts
        self.catalog = self.metadata.catalog
        self.audit = self.metadata.audit
        self.feedback = self.metadata.feedback
        s = settings.server
        self.jobs = JobQueue(self._run_job)
        self._upload_limit = RateLimiter(s.uploads_per_minute)
        self._query_limit = RateLimiter(s.requests_per_minute, what="questions and searches")
        # Uploads being received when the server last stopped will never be finished.
        shutil.rmtree(settings.uploads_path / ".incoming", ignore_errors=True)
        self._link_key = _secret_key(settings.data_dir / "server.key")
        self.sessions = Sessions(
            self._link_key, s.session_ttl_s, self.accounts.session_fingerprint, self.accounts
        )
        self._write_lock = threading.Lock()  # one writer at a time on the store
        self._kept: OrderedDict[str, _Kept] = OrderedDict()  # recent answers, for feedback
        self._kept_lock = threading.Lock()
        self._parsers: ParserPool | None = None  # started by the first ingestion job

    def close(self) -> None:
        self.jobs.close()
        if self._parsers is not None:
            self._parsers.__exit__(None, None, None)
            self._parsers = None
        self.services.close()
        self.metadata.close()

    # -- who ---------------------------------------------------------------------------
    def login(self, name: str, password: str, client: str | None = None) -> Caller | None:
        try:
            caller = self.accounts.login(name, password)
        except LoginLocked:
            self.audit.record(name, "login_failed", client=client, locked=True)
            raise
        self.audit.record(name, "login" if caller else "login_failed", client=client)
        return caller

    # -- collections -------------------------------------------------------------------
    def _readable(self, caller: Caller) -> list[str]:
        stored = {c for c in self._stored_names()}
        if caller.admin:
            return sorted(stored | set(self.catalog.owners()))
        return sorted(self.catalog.readable_by(caller.teams))

    def _stored_names(self) -> set[str]:
        return {c.name for c in self.services.store.collections()}

    def resolve(self, caller: Caller, requested: Sequence[str] | None) -> list[str]:
        """The collections a request may touch: those asked for (each must be readable),
        or all the caller's when none are named."""
        readable = self._readable(caller)
        if not requested:
            return readable
        names = list(dict.fromkeys(requested))
        if any(n not in readable for n in names):
            raise NotFound("no such collection")
        return names

    def collections(self, caller: Caller) -> list[CollectionView]:
        infos = {c.name: c for c in self.services.store.collections()}
        owners = self.catalog.owners()
        views = []
        for name in self._readable(caller):
            info = infos.get(name)
            views.append(
                CollectionView(
                    name,
                    owners.get(name),
                    info.documents if info else 0,
                    info.chunks if info else 0,
                    self.catalog.starters(name),
                )
            )
        return views

    def create_collection(self, caller: Caller, name: str, team: str | None) -> None:
        self._require_admin(caller, "create collections")
        validate_collection_name(name)
        self.catalog.assign(name, team)
        self.audit.record(caller.name, "admin", name, op="assign_collection", team=team)

    def set_starters(self, caller: Caller, collection: str, questions: list[str]) -> list[str]:
        self._require_admin(caller, "set starter questions")
        self.resolve(caller, [collection])
        saved = self.catalog.set_starters(collection, questions)
        self.audit.record(caller.name, "admin", collection, op="starters", count=len(saved))
        return saved

    # -- reading -----------------------------------------------------------------------
    def _searchable(self, caller: Caller, requested: Sequence[str] | None) -> list[str]:
        names = self.resolve(caller, requested)
        stored = self._stored_names()
        present = [n for n in names if n in stored]
        if not present:
            raise NothingToSearch(
                "the collections you can search hold no documents yet: upload some first"
            )
        return present

    def search(
        self,
        caller: Caller,
        question: str,
        collections: Sequence[str] | None = None,
        search_filter: SearchFilter | None = None,
        top_k: int | None = None,
        client: str | None = None,
    ) -> Retrieval:
        self._query_limit.check(caller.name)
        names = self._searchable(caller, collections)
        result = self.services.retriever.retrieve(question, names, search_filter, top_k)
        self.audit.record(
            caller.name,
            "search",
            ",".join(names),
            client,
            question=question,
            shown=_shown(result.passages),
        )
        return result

    def ask(
        self,
        caller: Caller,
        question: str,
        collections: Sequence[str] | None = None,
        history: Sequence[Message] = (),
        search_filter: SearchFilter | None = None,
        client: str | None = None,
    ) -> Iterator[Delta | Answered]:
        """Deltas, then one Answered. The work up to the first event (checks, retrieval,
        the model's first token) happens here, so a refused or failing request raises now,
        not in the middle of a stream that has already answered 200."""
        self._query_limit.check(caller.name)
        self.services.retriever.check_question(question)  # before it is audited or condensed
        names = self._searchable(caller, collections)
        events = self._answer_events(caller, question, names, history, search_filter, client)
        first = next(events)
        return itertools.chain([first], events)

    def _answer_events(
        self,
        caller: Caller,
        question: str,
        names: list[str],
        history: Sequence[Message],
        search_filter: SearchFilter | None,
        client: str | None,
    ) -> Iterator[Delta | Answered]:
        answer: Answer | None = None
        try:
            for event in self.services.answers.ask(question, names, history, search_filter):
                if isinstance(event, Answer):
                    answer = event
                    answered = Answered(secrets.token_urlsafe(12), event, names)
                    with self._kept_lock:
                        self._kept[answered.id] = _Kept(caller.name, answered)
                        while len(self._kept) > KEPT_ANSWERS:
                            self._kept.popitem(last=False)
                    yield answered
                else:
                    yield event
        finally:
            # Recorded however the answer ends: a client that disconnects mid-stream still
            # asked, and may have read part of it.
            detail: dict[str, Any] = {"question": question, "completed": answer is not None}
            if answer is not None:
                detail |= {
                    "refused": answer.refused,
                    "search_mode": answer.search_mode,
                    "shown": _shown([c.passage for c in answer.citations] or answer.passages),
                }
            self.audit.record(caller.name, "ask", ",".join(names), client, **detail)

    def documents(self, caller: Caller, collection: str) -> list[DocumentRecord]:
        (name,) = self.resolve(caller, [collection])
        if name not in self._stored_names():
            return []
        return self.services.store.documents(name)

    def document(self, caller: Caller, document_id: str) -> DocumentRecord:
        """The document, searched only in the caller's collections."""
        stored = self._stored_names()
        for name in self._readable(caller):
            if name in stored:
                for record in self.services.store.documents(name):
                    if record.id == document_id:
                        return record
        raise NotFound("no such document")

    def failures(self, caller: Caller, collection: str) -> list[dict[str, str]]:
        (name,) = self.resolve(caller, [collection])
        return self.metadata.failures.of(name)

    def starters(self, caller: Caller, collection: str) -> list[str]:
        (name,) = self.resolve(caller, [collection])
        return self.catalog.starters(name)

    # -- files -------------------------------------------------------------------------
    def file_link(self, caller: Caller, passage: Passage) -> str:
        """A signed link that opens the cited file (at the page, for PDFs) for this caller
        only; the file route checks the caller's access again when it is opened."""
        expires = int(time.time() + self.settings.server.link_ttl_s)
        token = self._sign(f"{caller.name}\n{passage.document_id}\n{expires}")
        user = base64.urlsafe_b64encode(caller.name.encode()).decode().rstrip("=")
        anchor = f"#page={passage.pages[0]}" if passage.pages else ""
        return f"/files/{passage.document_id}?u={user}&e={expires}&s={token}{anchor}"

    def open_link(
        self,
        document_id: str,
        user: str,
        expires: str,
        signature: str,
        viewer: Caller | None,
        client: str | None,
    ) -> tuple[Path, DocumentRecord]:
        """The file of a signed link, for the user it was made for only: with
        authentication on, `viewer` (from the browser session or an API key) must be that
        user, so a forwarded or leaked link opens nothing; their access is checked again."""
        try:
            name = base64.urlsafe_b64decode(user + "=" * (-len(user) % 4)).decode()
            deadline = int(expires)
        except ValueError as exc:
            raise NotFound("no such file") from exc
        expected = self._sign(f"{name}\n{document_id}\n{deadline}")
        authentic = hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))
        if not authentic or deadline < time.time():
            raise NotFound("no such file")
        if self.settings.server.auth and (viewer is None or viewer.name != name):
            raise NotFound("no such file")
        caller = self.caller_named(name)
        if caller is None:
            raise NotFound("no such file")
        return self.file(caller, document_id, client)

    def file(
        self, caller: Caller, document_id: str, client: str | None = None
    ) -> tuple[Path, DocumentRecord]:
        """The original file, to be sent to the caller (audited as a download)."""
        path, record = self._original(caller, document_id)
        self.audit.record(caller.name, "download", record.collection, client, source=record.source)
        return path, record

    def _original(self, caller: Caller, document_id: str) -> tuple[Path, DocumentRecord]:
        record = self.document(caller, document_id)
        root = Path(record.root).resolve()
        path = (root / record.source).resolve()
        # A symlink or a renamed folder must not turn a document link into any file.
        if not path.is_relative_to(root) or not path.is_file():
            raise NotFound("the original file is no longer available")
        return path, record

    def caller_named(self, name: str) -> Caller | None:
        if not self.settings.server.auth and name == LOCAL_ADMIN.name:
            return LOCAL_ADMIN
        return self.accounts.caller(name)

    # -- writing -----------------------------------------------------------------------
    def admit_upload(self, caller: Caller, collection: str) -> None:
        """Whether an upload may start at all (the collection, the rate limit), before its
        files are received."""
        self.resolve(caller, [collection])
        self._upload_limit.ensure_room(caller.name)

    def upload(
        self,
        caller: Caller,
        collection: str,
        files: Sequence[tuple[str, Path]],
        client: str | None = None,
    ) -> UploadResult:
        """Check each file (name, size, content), move the good ones into the collection's
        upload folder and queue their ingestion; bad ones are reported, never fatal."""
        (name,) = self.resolve(caller, [collection])
        self.catalog.register(name)
        folder = self.settings.uploads_path / name
        folder.mkdir(parents=True, exist_ok=True)
        accepted: dict[str, Path] = {}
        rejected: list[tuple[str, str]] = []
        s = self.settings
        # The whole batch counts against the rate limit up front: a limit hit half-way
        # would leave files stored but never ingested.
        self._upload_limit.check(caller.name, cost=max(1, len(files)))
        for given, temp in files:
            try:
                stored_name = safe_filename(given)
                check_upload(
                    stored_name,
                    temp,
                    int(s.server.max_upload_mb * 2**20),
                    s.ingest.max_expansion_ratio,
                )
            except UploadRejected as exc:
                rejected.append((printable(given), str(exc)))
                continue
            target = folder / stored_name
            partial = target.with_name(f".{stored_name}.part")
            shutil.move(temp, partial)
            partial.replace(target)  # a reader never sees half a file under the real name
            accepted[stored_name] = target
        self.audit.record(
            caller.name,
            "upload",
            name,
            client,
            files=sorted(accepted),
            rejected=[n for n, _ in rejected],  # already made printable
        )
        if not accepted:
            return UploadResult(None, rejected)
        job = self.jobs.submit(caller.name, name, "upload", list(accepted.values()))
        return UploadResult(job, rejected)

    def job(self, caller: Caller, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None or (job.owner != caller.name and not caller.admin):
            raise NotFound("no such job")
        return job

    def delete_document(self, caller: Caller, document_id: str, client: str | None = None) -> int:
        record = self.document(caller, document_id)
        with self._write_lock:
            removed = self.services.store.delete_document(record.collection, record.id)
        uploaded = self.settings.uploads_path.resolve() / record.collection
        original = Path(record.root).resolve() / record.source
        if original.parent == uploaded and original.is_file():
            original.unlink()  # an uploaded copy belongs to Citadel; a synced folder does not
        self.audit.record(
            caller.name, "delete", record.collection, client, source=record.source, chunks=removed
        )
        return removed

    def reingest(self, caller: Caller, document_id: str, client: str | None = None) -> Job:
        path, record = self._original(caller, document_id)  # read here, not sent
        self.audit.record(caller.name, "reingest", record.collection, client, source=record.source)
        return self.jobs.submit(
            caller.name, record.collection, "reingest", [path], Path(record.root)
        )

    def _run_job(self, job: Job, done: Callable[[FileOutcome], None]) -> None:
        services = self.services
        failures = self.metadata.failures
        progress = _JobProgress(done, lambda o: failures.record(job.collection, [o]))
        with self._write_lock:
            if job.kind == "reingest":
                for path in job.paths:
                    record = _record_for(services, job.collection, path)
                    if record is not None:
                        services.store.delete_document(job.collection, record.id)
            pipeline = IngestPipeline(
                services.store,
                services.embedder,
                services.sparse,
                self.settings.ingest,
                progress,
                self._parser_pool(),
            )
            try:
                report = pipeline.run(job.paths, job.collection, root=job.root)
            finally:
                services.embedder.use_threads(_serving_threads())
        # Files decided without parsing (unchanged, same content as another, refused at
        # discovery) are in the report only: it is the final word on every file.
        for outcome in report.files:
            progress.file_done(outcome)

    def _parser_pool(self) -> ParserPool:
        """Parser processes kept for the server's life: starting them (and loading
        unstructured in each) would otherwise cost every upload several seconds."""
        if self._parsers is None:
            s = self.settings.ingest
            pool = ParserPool(
                s.parser_processes, s.parse_timeout_s, s.parse_memory_mb, COMMON_FORMATS
            )
            self._parsers = pool.__enter__()
        return self._parsers

    # -- feedback ----------------------------------------------------------------------
    def answered(self, caller: Caller, answer_id: str) -> Answered:
        with self._kept_lock:
            kept = self._kept.get(answer_id)
        if kept is None or kept.owner != caller.name:
            raise NotFound("no such answer (answers are kept for feedback for a while only)")
        return kept.answered

    def add_feedback(
        self,
        caller: Caller,
        answer_id: str,
        rating: int,
        comment: str = "",
        client: str | None = None,
    ) -> int:
        """Feedback on one of the caller's own recent answers: the server, not the client,
        says what the question, the answer and its sources were."""
        answered = self.answered(caller, answer_id)
        answer = answered.answer
        shown = [c.passage for c in answer.citations] or answer.passages
        refs = [
            SourceRef(n, p.collection, p.document_id, p.source, p.location, p.pages)
            for n, p in enumerate(shown, start=1)
        ]
        entry = self.feedback.add(
            caller.name,
            answered.collections,
            answer.question,
            answer.text,
            refs,
            rating,
            comment.strip(),
        )
        self.audit.record(
            caller.name, "feedback", ",".join(answered.collections), client, rating=rating
        )
        return entry

    def export_feedback(self, caller: Caller) -> list[dict[str, Any]]:
        self._require_admin(caller, "export feedback")
        self.audit.record(caller.name, "feedback_export")
        return self.feedback.export_questions()

    # -- health ------------------------------------------------------------------------
    def readiness(self) -> dict[str, dict[str, Any]]:
        """The store, the embedder and the model server, each on its own."""
        report: dict[str, dict[str, Any]] = {}
        try:
            self.services.store.collections()  # opens every shard: the store really works
            # No count: /readyz answers anyone, and the number of collections is not theirs.
            report["store"] = {"ok": True}
        except StoreError as exc:
            report["store"] = {"ok": False, "error": str(exc)}
        loaded = self.services.embedder_loaded
        report["embedder"] = {"ok": loaded, "model": self.settings.embedding.model}
        if not loaded:
            report["embedder"]["error"] = "still loading"
        generator = self.services.generator
        if generator is None:
            report["model_server"] = {"ok": False, "error": "no model configured: search mode"}
        else:
            try:
                generator.check()
                report["model_server"] = {"ok": True, "model": generator.model}
            except GeneratorError as exc:
                report["model_server"] = {
                    "ok": False,
                    "model": generator.model,
                    "error": f"{exc} (answers are given in search mode)",
                }
        return report

    def warm_up(self) -> None:
        """Load the embedder now rather than on the first question (about 10 s)."""
        self.services.embedder.embed_query("warm up")
        self.services.embedder.use_threads(_serving_threads())

    # -- helpers -----------------------------------------------------------------------
    def _require_admin(self, caller: Caller, what: str) -> None:
        if not caller.admin:
            raise Forbidden(f"only administrators may {what}")

    def _sign(self, message: str) -> str:
        digest = hmac.new(self._link_key, message.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class _JobProgress(SilentProgress):
    """Forwards the pipeline's per-file outcomes to the job and to the failures table."""

    def __init__(self, *sinks: Callable[[FileOutcome], None]) -> None:
        self._sinks = sinks

    def file_done(self, outcome: FileOutcome) -> None:
        for sink in self._sinks:
            sink(outcome)


def _record_for(services: Services, collection: str, path: Path) -> DocumentRecord | None:
    if collection not in {c.name for c in services.store.collections()}:
        return None
    for record in services.store.documents(collection):
        if (Path(record.root) / record.source).resolve() == path.resolve():
            return record
    return None


def _shown(passages: Sequence[Passage]) -> list[dict[str, Any]]:
    return [
        {"document_id": p.document_id, "source": p.source, "location": p.location} for p in passages
    ]


def _serving_threads() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def _secret_key(path: Path) -> bytes:
    """The key that signs file links: made once per data directory, owner-readable only."""
    if path.exists() and len(key := path.read_bytes()) >= 32:
        return key
    path.unlink(missing_ok=True)  # empty or cut short: a weak key is worse than a new one
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key
