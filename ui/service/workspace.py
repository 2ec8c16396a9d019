"""What a caller may do, in one place: every front end (REST, the OpenAI API, the web UI,
file links, the command line through a server) goes through these methods, so a permission
is checked and audited once.

Isolation rule (ui/service/access.py): a caller only ever names collections through
`resolve`; anything else (unknown or another team's) is `NotFound`, with the same message.
The store is asked for its collection list once per request.
"""

from __future__ import annotations

import functools
import logging
import math
import secrets
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import CitadelError
from rag.ids import validate_collection_name
from rag.retrieval import Retrieval
from rag.settings import GroupRules, Settings
from rag.types import (
    Answer,
    AnswerOptions,
    CollectionInfo,
    Delta,
    DocumentRecord,
    Message,
    Passage,
    Question,
    SearchFilter,
    Thinking,
)
from rag.wiring import Services
from ui.metadata import Metadata
from ui.metadata.accounts import Caller, UserInfo
from ui.metadata.administration import Administration
from ui.metadata.audit import AuditEntry
from ui.metadata.conversations import ConversationInfo
from ui.metadata.errors import AccountError, LoginLocked
from ui.metadata.feedback import FeedbackEntry, SourceRef
from ui.metadata.folders import FolderSource
from ui.service import access, health
from ui.service.access import LOCAL_ADMIN, require_admin
from ui.service.answer_slots import AnswerSlots, Ticket
from ui.service.errors import NotFound, NothingToSearch
from ui.service.folder_sync import FolderSync, named
from ui.service.ingestion import Ingestion, UploadResult, serving_threads
from ui.service.jobs import Job
from ui.service.ldap_login import Directory
from ui.service.library import PAGE_SIZE, LibraryPage, SortField, library, page_of
from ui.service.limits import RateLimiter
from ui.service.links import FileLinks, secret_key
from ui.service.oidc import OidcLogin
from ui.service.sessions import Sessions
from ui.service.sources import drawn_on
from ui.service.sso import Identity, ProviderUnavailable, SsoRefused, grant

log = logging.getLogger(__name__)

KEPT_ANSWERS = 5000  # recent answers kept for feedback, per server
MAX_NEIGHBOURS = 3  # chunks on each side of a passage fetched by id
LOCAL_OFF = "password login of local accounts is turned off (sso.local_accounts)"
UNKNOWN = "(unknown)"  # the audit log's actor of a failed sign-in that named nobody


@dataclass(frozen=True)
class CollectionView:
    name: str
    team: str | None
    documents: int
    chunks: int
    starters: list[str]


@dataclass(frozen=True)
class Scope:
    """What one request may read: the caller's readable collections, and those the store
    holds (listed once per request: the store opens each collection to list it)."""

    readable: list[str]
    stored: set[str]


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
        self.ingestion = Ingestion(
            settings, self.services, self.catalog, self.audit, self.metadata.failures
        )
        self.jobs = self.ingestion.jobs
        self.folder_sync = FolderSync(settings, self.ingestion, self.metadata.folders, self.audit)
        self._query_limit = RateLimiter(s.requests_per_minute, what="questions and searches")
        self.answer_slots = AnswerSlots(
            s.max_concurrent_answers, s.answers_per_user, s.answers_waiting
        )
        self._received_limit = RateLimiter(s.uploads_per_minute)  # bytes, in largest files
        key = secret_key(settings.data_dir / "server.key")
        self.links = FileLinks(key, s.link_ttl_s)
        self.sessions = Sessions(
            key, s.session_ttl_s, self.accounts.session_fingerprint, self.accounts
        )
        self._kept: OrderedDict[str, _Kept] = OrderedDict()  # recent answers, for feedback
        self._kept_lock = threading.Lock()
        # Single sign-on: nothing is contacted until someone signs in.
        sso = settings.sso
        self.oidc = OidcLogin(sso.oidc) if sso.oidc.issuer else None
        self.directory = Directory(sso.ldap) if sso.ldap.url else None

    def close(self) -> None:
        self.folder_sync.stop()
        self.ingestion.close()
        self.services.close()
        self.metadata.close()

    # -- who ---------------------------------------------------------------------------
    def login(self, name: str, password: str, client: str | None = None) -> Caller | None:
        """The caller when the password is right. A local account checks it here (unless
        `sso.local_accounts` is off); any other name is tried in the directory when there
        is one (`sso.ldap`), whose refusal or absence (SsoRefused, ProviderUnavailable)
        is raised with a message for the person. The audit log records the account's own
        name when there is one, else the name as typed."""
        if self.directory is not None and self.accounts.source(name) in (None, "ldap"):
            return self._directory_login(self.directory, name, password, client)
        # "ALICE" logs in as alice: recorded as alice, or `citadel audit --user alice`
        # would miss it.
        recorded = self.accounts.account_name(name) or name
        if not self.settings.sso.local_accounts:
            self.audit.record(
                recorded, "login_failed", client=client, method="password", reason=LOCAL_OFF
            )
            return None
        try:
            caller = self.accounts.login(name, password)
        except LoginLocked:
            self.audit.record(recorded, "login_failed", client=client, locked=True)
            raise
        self.audit.record(
            recorded, "login" if caller else "login_failed", client=client, method="password"
        )
        return caller

    def _directory_login(
        self, directory: Directory, name: str, password: str, client: str | None
    ) -> Caller | None:
        # A name is locked after failures here as a local account is: a client guessing
        # passwords through Citadel is slowed whatever the directory's own policy.
        failed = functools.partial(self.audit.record, name, "login_failed", client=client)
        try:
            self.accounts.check_locked(name)
            identity = directory.authenticate(name, password)
        except LoginLocked:
            failed(method="ldap", locked=True)
            raise
        except ProviderUnavailable as exc:
            failed(method="ldap", reason=str(exc))
            raise
        if identity is None:
            self.accounts.record_failure(name)
            failed(method="ldap", reason="wrong username or password")
            return None
        self.accounts.clear_failures(name)
        return self._sso_login(identity, self.settings.sso.ldap, client)

    def oidc_start(self, redirect_url: str, client: str | None = None) -> tuple[str, str]:
        """Where to send a browser to sign in at the OpenID Connect provider, and the state
        its cookie must keep (NotFound when single sign-on is not set up)."""
        if self.oidc is None:
            raise NotFound("single sign-on is not set up (sso.oidc.issuer)")
        try:
            return self.oidc.begin(redirect_url)
        except ProviderUnavailable as exc:
            self.audit.record(
                UNKNOWN, "login_failed", client=client, method="oidc", reason=str(exc)
            )
            raise

    def oidc_login(
        self, cookie_state: str | None, params: dict[str, str], client: str | None = None
    ) -> Caller:
        """The caller the provider's callback signs in (SsoRefused, ProviderUnavailable
        with a message for the person otherwise)."""
        if self.oidc is None:
            raise NotFound("single sign-on is not set up (sso.oidc.issuer)")
        try:
            identity = self.oidc.finish(cookie_state, params)
        except (SsoRefused, ProviderUnavailable) as exc:
            self.audit.record(
                UNKNOWN, "login_failed", client=client, method="oidc", reason=str(exc)
            )
            raise
        return self._sso_login(identity, self.settings.sso.oidc, client)

    def _sso_login(self, identity: Identity, rules: GroupRules, client: str | None) -> Caller:
        """The account of a user their provider signed in, with the teams and role their
        groups give now (created at their first login), audited either way."""
        recorded = self.accounts.account_name(identity.name) or identity.name
        detail: dict[str, Any] = {"method": identity.source, "groups": sorted(identity.groups)}
        try:
            given = grant(identity, rules.teams, rules.admin_group)
            caller = self.accounts.sync_external(
                identity.source, identity.subject, identity.name, given.admin, given.teams
            )
            if caller is None:
                raise SsoRefused("your Citadel account is disabled: ask an administrator")
        except (SsoRefused, AccountError) as exc:
            self.audit.record(recorded, "login_failed", client=client, reason=str(exc), **detail)
            raise SsoRefused(str(exc)) from exc
        self.audit.record(
            caller.name,
            "login",
            client=client,
            teams=sorted(caller.teams),
            admin=caller.admin,
            **detail,
        )
        return caller

    def caller_named(self, name: str) -> Caller | None:
        if not self.settings.server.auth and name == LOCAL_ADMIN.name:
            return LOCAL_ADMIN
        return self.accounts.caller(name)

    # -- collections -------------------------------------------------------------------
    def _stored(self) -> dict[str, CollectionInfo]:
        """The store's collections: read once per request (it opens each and counts)."""
        return {c.name: c for c in self.services.store.collections()}

    def scope(self, caller: Caller) -> Scope:
        stored = set(self._stored())
        return Scope(access.readable(caller, self.catalog, stored), stored)

    def readable(self, caller: Caller) -> list[str]:
        return self.scope(caller).readable

    def resolve(self, caller: Caller, requested: Sequence[str] | None) -> list[str]:
        """The collections a request may touch (see access.resolve)."""
        return access.resolve(self.readable(caller), requested)

    def _searchable(
        self, caller: Caller, requested: Sequence[str] | None, scope: Scope | None = None
    ) -> list[str]:
        scope = scope or self.scope(caller)
        names = access.resolve(scope.readable, requested)
        present = [n for n in names if n in scope.stored]
        if not present:
            raise NothingToSearch(
                "the collections you can search hold no documents yet: upload some first"
            )
        return present

    def collections(self, caller: Caller) -> list[CollectionView]:
        stored = self._stored()
        owners = self.catalog.owners()
        views = []
        for name in access.readable(caller, self.catalog, stored):
            info = stored.get(name)
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

    def create_collection(
        self, caller: Caller, name: str, team: str | None, client: str | None = None
    ) -> None:
        require_admin(caller, "create collections")
        validate_collection_name(name)
        self.catalog.assign(name, team)
        self.audit.record(caller.name, "admin", name, client, op="assign_collection", team=team)

    def set_collection_owner(
        self, caller: Caller, collection: str, team: str | None, client: str | None = None
    ) -> None:
        """Give an existing collection to another team (None: administrators only)."""
        require_admin(caller, "change who owns a collection")
        (name,) = self.resolve(caller, [collection])
        self.catalog.assign(name, team)
        self.audit.record(caller.name, "admin", name, client, op="assign_collection", team=team)

    def set_starters(self, caller: Caller, collection: str, questions: list[str]) -> list[str]:
        require_admin(caller, "set starter questions")
        self.resolve(caller, [collection])
        saved = self.catalog.set_starters(collection, questions)
        self.audit.record(caller.name, "admin", collection, op="starters", count=len(saved))
        return saved

    def starters(self, caller: Caller, collection: str) -> list[str]:
        (name,) = self.resolve(caller, [collection])
        return self.catalog.starters(name)

    # -- reading -----------------------------------------------------------------------
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
        checked, names = self.check_ask(caller, question, collections)
        result = self.services.retriever.retrieve(checked, names, search_filter, top_k)
        self.audit.record(
            caller.name,
            "search",
            ",".join(names),
            client,
            question=checked.text,
            shown=_audited(result.passages),
        )
        return result

    def passage(
        self,
        caller: Caller,
        collection: str,
        passage_id: str,
        neighbours: int = 1,
        client: str | None = None,
    ) -> Passage:
        """A passage of a collection the caller may read, with up to `neighbours` chunks of
        its document on each side (audited as shown). Another team's collection and an
        unknown passage give the same NotFound."""
        self._query_limit.check(caller.name)
        scope = self.scope(caller)
        (name,) = access.resolve(scope.readable, [collection])
        found = None
        if name in scope.stored and _is_passage_id(passage_id):
            reach = min(max(neighbours, 0), MAX_NEIGHBOURS)
            found = self.services.retriever.passage(name, passage_id, reach)
        if found is None:
            raise NotFound("no such passage in that collection")
        self.audit.record(caller.name, "passage", name, client, shown=_audited([found]))
        return found

    def record_tool_call(
        self, caller: Caller, tool: str, client: str | None, error: str | None = None
    ) -> None:
        """One entry per call of an integration's tool (MCP), failed or not: what a broken
        integration did is in the audit log. The searches and answers the tools make are
        audited by themselves, with their questions and passages."""
        detail: dict[str, Any] = {"tool": tool, "ok": error is None}
        if error is not None:
            detail["error"] = error[:300]
        self.audit.record(caller.name, "mcp", None, client, **detail)

    def ask(
        self,
        caller: Caller,
        question: str,
        collections: Sequence[str] | None = None,
        history: Sequence[Message] = (),
        search_filter: SearchFilter | None = None,
        client: str | None = None,
        scope: Scope | None = None,
        ticket: Ticket | None = None,
        options: AnswerOptions | None = None,
    ) -> Iterator[Delta | Thinking | Answered]:
        """Deltas (and a reasoning model's Thinking, apart), then one Answered. The work up
        to the first event (checks, the wait for an answer slot, retrieval, the model's
        first token) happens here, so a refused or failing request raises now, not in the
        middle of a stream that has already answered 200. `scope`: the request's own, when
        its front end needed it already. `ticket`: the place `admit_answer` gave, when the
        front end showed the wait itself; the slot is freed when the events end or are
        closed. `options`: the asker's choices about the answer's form and length."""
        if ticket is None:
            self._query_limit.check(caller.name)
        try:
            checked, names = self.check_ask(caller, question, collections, scope)
            ticket = ticket or self.answer_slots.admit(caller.name)
            ticket.wait()
            events = self._answer_events(
                caller, checked, names, history, search_filter, client, options
            )
            first = next(events)
        except BaseException:
            if ticket is not None:
                ticket.release()
            raise
        return _releasing(first, events, ticket)

    def check_ask(
        self,
        caller: Caller,
        question: str,
        collections: Sequence[str] | None = None,
        scope: Scope | None = None,
    ) -> tuple[Question, list[str]]:
        """The checked question and the collections it will search, or the error a front
        end must give before it starts searching or answering (a stream that waits in line
        first)."""
        # The one check of the question: before it is audited, condensed or searched.
        checked = self.services.retriever.check_question(question)
        return checked, self._searchable(caller, collections, scope)

    def admit_answer(self, caller: Caller) -> Ticket:
        """A place in line for one of `caller`'s answers (RateLimited when there is none),
        for a front end that shows the wait (`answer_slots.places_in_line`) before `ask`."""
        self._query_limit.check(caller.name)
        return self.answer_slots.admit(caller.name)

    def _answer_events(
        self,
        caller: Caller,
        question: Question,
        names: list[str],
        history: Sequence[Message],
        search_filter: SearchFilter | None,
        client: str | None,
        options: AnswerOptions | None = None,
    ) -> Iterator[Delta | Thinking | Answered]:
        answer: Answer | None = None
        try:
            for event in self.services.answers.ask(
                question, names, history, search_filter, options
            ):
                if isinstance(event, Answer):
                    answer = event
                    answered = Answered(secrets.token_urlsafe(12), event, names)
                    self._keep(caller, answered)
                    yield answered
                else:
                    yield event
        finally:
            # Recorded however the answer ends: a client that disconnects mid-stream still
            # asked, and may have read part of it.
            detail: dict[str, Any] = {"question": question.text, "completed": answer is not None}
            if answer is not None:
                detail |= {
                    "refused": answer.refused,
                    "search_mode": answer.search_mode,
                    "shown": _audited(drawn_on(answer)),
                }
            self.audit.record(caller.name, "ask", ",".join(names), client, **detail)

    def documents(self, caller: Caller, collection: str) -> list[DocumentRecord]:
        scope = self.scope(caller)
        (name,) = access.resolve(scope.readable, [collection])
        return self.services.store.documents(name) if name in scope.stored else []

    def library(
        self,
        caller: Caller,
        collection: str,
        text: str | None = None,
        sort: SortField = "source",
        descending: bool = False,
    ) -> list[DocumentRecord]:
        """The collection's documents as the library shows them (filtered, sorted)."""
        return library(self.documents(caller, collection), text, sort, descending)

    def library_page(
        self,
        caller: Caller,
        collection: str,
        text: str | None = None,
        sort: SortField = "source",
        descending: bool = False,
        offset: int = 0,
        limit: int = PAGE_SIZE,
    ) -> LibraryPage:
        """One page of the library (`limit` documents from `offset`), with the total."""
        return page_of(self.library(caller, collection, text, sort, descending), offset, limit)

    def document(self, caller: Caller, document_id: str) -> DocumentRecord:
        """The document, searched only in the caller's collections."""
        scope = self.scope(caller)
        for name in scope.readable:
            if name in scope.stored:
                for record in self.services.store.documents(name):
                    if record.id == document_id:
                        return record
        raise NotFound("no such document")

    def failures(self, caller: Caller, collection: str) -> list[dict[str, str]]:
        (name,) = self.resolve(caller, [collection])
        return self.metadata.failures.of(name)

    def attention(self, caller: Caller, collection: str) -> list[dict[str, Any]]:
        """The collection's files that could not be ingested (see `failures`), each with
        `retry`: whether Citadel keeps the uploaded original, so `retry` can read it again."""
        (name,) = self.resolve(caller, [collection])
        listed: list[dict[str, Any]] = []
        for failure in self.metadata.failures.of(name):
            skipped = failure["reason"].startswith("same content as")
            kept = not skipped and self.ingestion.kept_upload(name, failure["source"]) is not None
            listed.append({**failure, "status": "skipped" if skipped else "failed", "retry": kept})
        return listed

    # -- files -------------------------------------------------------------------------
    # -- saved conversations (the web UI's history) ---------------------------------------
    def conversations(self, caller: Caller) -> list[ConversationInfo]:
        return self.metadata.conversations.owned_by(caller.name)

    def conversation(self, caller: Caller, conversation_id: str) -> list[dict[str, Any]]:
        """The turns of one of the caller's conversations (NotFound for anyone else's)."""
        turns = self.metadata.conversations.turns(caller.name, conversation_id)
        if turns is None:
            raise NotFound("no such conversation")
        return turns

    def save_conversation(
        self, caller: Caller, conversation_id: str, title: str, turns: list[dict[str, Any]]
    ) -> None:
        if not self.metadata.conversations.save(caller.name, conversation_id, title, turns):
            raise NotFound("no such conversation")

    def rename_conversation(self, caller: Caller, conversation_id: str, title: str) -> None:
        if not self.metadata.conversations.rename(caller.name, conversation_id, title):
            raise NotFound("no such conversation")

    def delete_conversation(self, caller: Caller, conversation_id: str) -> None:
        if not self.metadata.conversations.delete(caller.name, conversation_id):
            raise NotFound("no such conversation")

    def document_link(self, caller: Caller, document_id: str) -> str:
        """A fresh signed link to a document's file for the caller (a saved answer's links
        have expired); the file route checks the caller's access when it is opened."""
        return self.links.for_document(caller.name, document_id)

    def file_link(self, caller: Caller, passage: Passage) -> str:
        """A signed link that opens the cited file (at the page, for PDFs) for this caller
        only; the file route checks the caller's access again when it is opened."""
        return self.links.make(caller.name, passage)

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
        name = self.links.user_of(document_id, user, expires, signature)
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
        path = self.ingestion.original(record)
        if path is None:
            raise NotFound("the original file is no longer available")
        return path, record

    # -- writing -----------------------------------------------------------------------
    def admit_upload(self, caller: Caller, collection: str) -> None:
        """Whether an upload may start at all (the collection, the rate limit), before its
        files are received."""
        self.resolve(caller, [collection])
        self.ingestion.admit(caller.name)

    def admit_received_files(self, caller: Caller, size: int) -> None:
        """Whether `size` bytes of files may be received for `caller` now, before anyone
        knows their collection (the web UI receives files first, then asks to ingest them,
        which `upload` checks). They count as files of the largest accepted size, so a
        user sends no more bytes a minute this way than `uploads_per_minute` such files."""
        self.ingestion.admit(caller.name)
        largest = self.settings.server.max_upload_mb * 2**20
        self._received_limit.check(caller.name, cost=max(1, math.ceil(size / largest)))

    def upload(
        self,
        caller: Caller,
        collection: str,
        staged: Sequence[tuple[str, Path]],
        client: str | None = None,
    ) -> UploadResult:
        """Ingest files received into temporary files (name as given, path): checked, moved
        into the collection, queued. The temporary files are gone afterwards."""
        try:
            (name,) = self.resolve(caller, [collection])
        except NotFound:
            for _, temp in staged:
                temp.unlink(missing_ok=True)
            raise
        return self.ingestion.upload(caller.name, name, staged, client)

    def job(self, caller: Caller, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        # A folder's sync is the team's (Sync now may hand a member the sync the schedule or
        # a colleague started): whoever reads its collection may follow it.
        shared = job is not None and job.kind == "sync" and job.collection in self.readable(caller)
        if job is None or (job.owner != caller.name and not caller.admin and not shared):
            raise NotFound("no such job")
        return job

    def delete_document(self, caller: Caller, document_id: str, client: str | None = None) -> int:
        return self.ingestion.delete(caller.name, self.document(caller, document_id), client)

    def reingest(self, caller: Caller, document_id: str, client: str | None = None) -> Job:
        path, record = self._original(caller, document_id)  # read here, not sent
        return self.ingestion.reingest(caller.name, record, path, client)

    def writable(self, caller: Caller) -> list[str]:
        """The collections the caller may add documents to (those they may read)."""
        return self.readable(caller)

    def retry(self, caller: Caller, collection: str, source: str, client: str | None = None) -> Job:
        """Ingest again an uploaded file that failed (listed by `failures`), from the
        original Citadel kept: for when its cause was fixed, or was passing."""
        (name,) = self.resolve(caller, [collection])
        if source not in {f["source"] for f in self.metadata.failures.of(name)}:
            raise NotFound("no such file needs attention")
        path = self.ingestion.kept_upload(name, source)
        if path is None:
            raise NotFound(
                "Citadel keeps no copy of this file (it was not uploaded here, or was "
                "removed): upload it again"
            )
        self.ingestion.admit(caller.name)
        return self.ingestion.retry(caller.name, name, path, client)

    # -- folders kept in sync ----------------------------------------------------------
    def folder_sources(self, caller: Caller, collection: str | None = None) -> list[FolderSource]:
        """The folders attached to the collections the caller may read (to `collection`
        only, when named), each with its last sync and the files that failed in it."""
        names = set(self.resolve(caller, [collection] if collection else None))
        return [s for s in self.folder_sync.all() if s.collection in names]

    def attach_folder(
        self, caller: Caller, collection: str, path: str, client: str | None = None
    ) -> FolderSource:
        """Keep `collection` in sync with a folder of the server's (a new collection is
        registered, for administrators only until it is given to a team). Administrators
        only: the folder is read with the server's rights, whoever reads the collection."""
        require_admin(caller, "attach folders to collections")
        validate_collection_name(collection)
        self.catalog.register(collection)
        return self.folder_sync.add(caller.name, collection, path, client)

    def detach_folder(
        self, caller: Caller, ref: str, keep_documents: bool = False, client: str | None = None
    ) -> int:
        """Stop syncing a folder (named by its id or path); its documents leave the
        collection unless `keep_documents`. The number of documents removed."""
        require_admin(caller, "detach folders from collections")
        source = self._folder(caller, ref)
        return self.folder_sync.remove(caller.name, source, keep_documents, client)

    def sync_folders(
        self,
        caller: Caller,
        collection: str | None = None,
        ref: str | None = None,
        client: str | None = None,
    ) -> list[Job]:
        """Sync now one folder (`ref`: its id or path), or every folder of `collection`,
        or every folder the caller can see: their jobs (one a folder, never two at once)."""
        chosen = [self._folder(caller, ref)] if ref else self.folder_sources(caller, collection)
        if chosen:
            self.ingestion.admit_sync(caller.name)
        return [self.folder_sync.sync(caller.name, source, client) for source in chosen]

    def _folder(self, caller: Caller, ref: str) -> FolderSource:
        """The folder source `ref` names (its id, or its path) among the caller's."""
        return named(self.folder_sources(caller), ref)

    # -- feedback ----------------------------------------------------------------------
    def _keep(self, caller: Caller, answered: Answered) -> None:
        with self._kept_lock:
            self._kept[answered.id] = _Kept(caller.name, answered)
            while len(self._kept) > KEPT_ANSWERS:
                self._kept.popitem(last=False)

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
        refs = [
            SourceRef(n, p.collection, p.document_id, p.source, p.location, p.pages)
            for n, p in enumerate(drawn_on(answer), start=1)
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

    def feedback_entries(self, caller: Caller) -> list[FeedbackEntry]:
        require_admin(caller, "read feedback")
        return self.feedback.entries()

    def export_feedback(self, caller: Caller) -> list[dict[str, Any]]:
        require_admin(caller, "export feedback")
        self.audit.record(caller.name, "feedback_export")
        return self.feedback.export_questions()

    def record_failure(
        self,
        caller: Caller,
        method: str,
        path: str,
        status: int,
        reason: str,
        client: str | None = None,
    ) -> None:
        """A program's request that failed (ui/http/failures.py), for the administrator who
        looks for a broken integration: refused accesses (401, 403, 404) as `denied`, like
        every other route's, the rest as `failed`."""
        action = "denied" if status in (401, 403, 404) else "failed"
        self.audit.record(
            caller.name, action, client=client, method=method, path=path, status=status,
            reason=reason,
        )  # fmt: skip

    # -- administration ----------------------------------------------------------------
    def administration(
        self, caller: Caller, what: str, client: str | None = None
    ) -> Administration:
        """Account changes, audited as `caller`, who must be an administrator."""
        require_admin(caller, what)
        return Administration(self.accounts, self.audit, caller.name, client)

    def own_keys(self, caller: Caller) -> list[dict[str, object]]:
        return self.accounts.keys(caller.name)

    def create_own_key(self, caller: Caller, label: str, client: str | None = None) -> str:
        """A new API key for the caller (no role needed), audited; shown once."""
        return Administration(self.accounts, self.audit, caller.name, client).create_key(
            caller.name, label
        )

    def revoke_own_key(self, caller: Caller, prefix: str, client: str | None = None) -> None:
        Administration(self.accounts, self.audit, caller.name, client).revoke_key(
            caller.name, prefix
        )

    def keys(self, caller: Caller) -> list[dict[str, object]]:
        """Every user's API keys (prefixes, never secrets), newest first."""
        require_admin(caller, "list API keys")
        return self.accounts.all_keys()

    def users(self, caller: Caller) -> list[UserInfo]:
        require_admin(caller, "list users")
        return self.accounts.users()

    def teams(self, caller: Caller) -> dict[str, list[str]]:
        require_admin(caller, "list teams")
        return self.accounts.teams()

    def audit_entries(
        self,
        caller: Caller,
        limit: int = 100,
        actor: str | None = None,
        action: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> list[AuditEntry]:
        require_admin(caller, "read the audit log")
        return self.audit.entries(limit, actor, action, since, until)

    def audit_count(
        self,
        caller: Caller,
        actor: str | None = None,
        action: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> int:
        require_admin(caller, "read the audit log")
        return self.audit.count(actor, action, since, until)

    def model_status(self, caller: Caller) -> dict[str, Any]:
        """The model server as an administrator needs it: who serves which model, with
        what context, and whether it answers (with the error when it does not)."""
        require_admin(caller, "see the model's status")
        llm = self.settings.llm
        ready = self.readiness()
        served = ready["model_server"]
        generator = self.services.generator
        context, measured = llm.max_context_tokens, False
        if generator is not None and served["ok"]:
            try:
                context, measured = generator.context_limit(), True
            except CitadelError as exc:
                log.warning("the model's context length is unknown: %s", exc)
        return {
            "provider": generator.provider if generator is not None else llm.provider,
            "model": served.get("model") or llm.model or "",
            "host": str(llm.model_path or "") if llm.provider == "llamacpp" else llm.host,
            "context_tokens": context,
            "context_measured": measured,  # False: the settings' cap, the model's own unknown
            "reachable": bool(served["ok"]),
            "error": served.get("error", ""),
            "embedder": ready["embedder"],
            "store": ready["store"],
        }

    # -- health ------------------------------------------------------------------------
    def readiness(self) -> dict[str, dict[str, Any]]:
        """The store, the embedder and the model server, each on its own."""
        return health.readiness(self.services)

    def warm_up(self) -> None:
        """Load the embedder and fit its question centre now rather than on the first
        question (about 12 s), and get the model server ready meanwhile (the embedded one
        loads its model)."""
        model = threading.Thread(target=self._warm_model, name="model-warm-up", daemon=True)
        model.start()
        self.services.retriever.warm_up()
        self.services.embedder.use_threads(serving_threads())

    def _warm_model(self) -> None:
        generator = self.services.generator
        if generator is not None:
            try:
                generator.check()
            except CitadelError as exc:  # answers will say it, in search mode
                log.warning("the model server is not ready: %s", exc)


def _is_passage_id(text: str) -> bool:
    """Passage ids are the UUIDs the store gives chunks (`rag.ids.chunk_id`)."""
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def _audited(passages: Sequence[Passage]) -> list[dict[str, Any]]:
    return [
        {"document_id": p.document_id, "source": p.source, "location": p.location} for p in passages
    ]


def _releasing(
    first: Delta | Thinking | Answered,
    events: Iterator[Delta | Thinking | Answered],
    ticket: Ticket,
) -> Iterator[Delta | Thinking | Answered]:
    """The answer's events; its slot is freed when they end or the reader closes them."""
    try:
        yield first
        yield from events
    finally:
        ticket.release()
