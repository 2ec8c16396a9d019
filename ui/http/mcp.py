"""The MCP server (/mcp): Citadel's collections as tools for any Model Context Protocol
client (n8n's MCP Client Tool, Open WebUI, Claude Desktop, IDEs, agent frameworks).

Built on the official SDK's low-level server and its streamable HTTP transport, stateless
(each POST carries one JSON-RPC message; no session to keep between requests, so the
server can restart or sit behind a load balancer). The SDK's high-level `MCPServer` is not
used: its constructor configures the root logger, which belongs to `citadel serve`.

Every request is authenticated before the SDK sees it, with the same Bearer API keys as
/v1 (the local administrator when authentication is off), and every tool goes through the
Workspace like the other routes: each sees only the caller's collections, and each call
is audited (`mcp`, with the tool and its outcome) besides the search or answer it made.

Tools:
    list_collections  the collections the caller may read, with their sizes
    search            ranked passages, each with its citation and passage id
    ask               a cited answer (the model's text with [n] markers, then its sources)
    get_passage       one passage by id, with the chunks around it in its document
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import aclosing, asynccontextmanager
from typing import Any, Literal

import anyio.to_thread
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from rag.answering import refusal_notice
from rag.errors import CitadelError
from rag.prompting import render_source
from rag.types import Message, Passage
from ui.http.answer_threads import AnswerThreads
from ui.http.deps import bearer_caller, client_of
from ui.http.openai import answer_body, answer_tail, citadel_json
from ui.metadata.accounts import Caller
from ui.service.workspace import MAX_NEIGHBOURS, Answered, Workspace

log = logging.getLogger(__name__)

PATH = "/mcp"
SERVER_NAME = "citadel"
_CALLER = "citadel_caller"  # where the authenticated caller waits in the request's state
MAX_TEXT_CHARS = 4000  # a passage's text in a tool's result
MAX_HISTORY = 20


# -- the tools' arguments ------------------------------------------------------------------


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListCollectionsArguments(_Arguments):
    pass


class SearchArguments(_Arguments):
    question: str = Field(min_length=1, max_length=10_000, description="What to look for.")
    collections: list[str] | None = Field(
        None,
        max_length=100,
        description="Collections to search (names from list_collections); all you may "
        "read when left out.",
    )
    top_k: int | None = Field(None, ge=1, le=20, description="How many passages (default 6).")


class Turn(_Arguments):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=20_000)


class AskArguments(SearchArguments):
    history: list[Turn] = Field(
        default_factory=list,
        max_length=MAX_HISTORY,
        description="Earlier turns of the conversation, oldest first: a follow-up question "
        "is rewritten as a standalone one from them.",
    )


class GetPassageArguments(_Arguments):
    collection: str = Field(min_length=1, max_length=200, description="The passage's collection.")
    passage_id: str = Field(
        min_length=1, max_length=100, description="A passage id from search or ask."
    )
    neighbours: int = Field(
        1,
        ge=0,
        le=MAX_NEIGHBOURS,
        description="Chunks of the document to add before and after the passage.",
    )


# -- results -------------------------------------------------------------------------------


def _passage_json(passage: Passage, link: str, n: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"n": n} if n is not None else {}
    return out | {
        "passage_id": passage.chunk_id,
        "collection": passage.collection,
        "document": passage.source,
        "document_id": passage.document_id,
        "page": passage.page,
        "location": passage.location,
        "section": " / ".join(passage.headings),
        "citation": passage.where,
        "link": link,
        "text": passage.text[:MAX_TEXT_CHARS],
    }


def _framed(n: int, passage: Passage, with_context: bool = False) -> str:
    """A passage as the calling model reads it: in the framed block Citadel's own prompt
    uses (a document cannot close it or forge another), its ids after the block."""
    ids = f"(source {n}: collection {passage.collection}, passage_id {passage.chunk_id})"
    return f"{render_source(n, passage, with_context)}\n{ids}"


def _result(text: str, structured: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)], structured_content=structured
    )


def _failed(message: str) -> types.CallToolResult:
    # A tool's failure goes in its result, so the calling model reads why and can correct.
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)], is_error=True
    )


class _Call:
    """One tool call: who makes it, from where, and how links back to this server look."""

    def __init__(self, workspace: Workspace, request: Request) -> None:
        self.workspace = workspace
        self.caller: Caller = request.scope["state"][_CALLER]
        self.client = client_of(request)
        self._base = str(request.base_url).rstrip("/")

    def link(self, passage: Passage) -> str:
        return self._base + self.workspace.file_link(self.caller, passage)

    def absolute(self, link: str) -> str:
        return self._base + link if link.startswith("/") else link


# -- the tools -----------------------------------------------------------------------------

Tool = Callable[[_Call, Any, AnswerThreads], Awaitable[types.CallToolResult]]


async def _list_collections(
    call: _Call, _: ListCollectionsArguments, __: AnswerThreads
) -> types.CallToolResult:
    views = await anyio.to_thread.run_sync(call.workspace.collections, call.caller)
    listed = [
        {"name": v.name, "team": v.team, "documents": v.documents, "chunks": v.chunks}
        for v in views
    ]
    lines = [f"- {c['name']}: {c['documents']} documents" for c in listed]
    text = "\n".join(lines) if lines else "You may read no collection yet."
    return _result(text, {"collections": listed})


async def _search(call: _Call, args: SearchArguments, _: AnswerThreads) -> types.CallToolResult:
    result = await anyio.to_thread.run_sync(
        lambda: call.workspace.search(
            call.caller, args.question, args.collections, None, args.top_k, call.client
        )
    )
    ranked = list(enumerate(result.passages, start=1))
    passages = [_passage_json(p, call.link(p), n) for n, p in ranked]
    absent = result.evidence.absent_names
    weak = (
        f"{refusal_notice(absent)}\n\n"
        if absent
        else "The documents barely match this question: these passages may not answer it.\n\n"
        if result.weak_evidence
        else ""
    )
    text = weak + "\n\n".join(_framed(n, p) for n, p in ranked) if ranked else "No passage."
    return _result(
        text,
        {
            "question": result.question,
            "weak_evidence": result.weak_evidence,
            "absent_names": list(absent),
            "passages": passages,
        },
    )


async def _ask(call: _Call, args: AskArguments, threads: AnswerThreads) -> types.CallToolResult:
    history = [Message(t.role, t.content) for t in args.history]
    events = await threads.run(
        lambda: call.workspace.ask(
            call.caller, args.question, args.collections, history, None, call.client
        )
    )
    # Drawn event by event: a client that hangs up stops the model and frees the answer
    # slot (iterate closes the events), rather than waiting for the whole answer.
    answered = None
    async with aclosing(threads.iterate(events)) as written:
        async for event in written:
            if isinstance(event, Answered):
                answered = event
    if answered is None:
        raise RuntimeError("the answer's events ended without an answer")
    structured = citadel_json(call.workspace, call.caller, answered)
    for source in structured["sources"]:
        if source.get("link"):
            source["link"] = call.absolute(source["link"])
    answer = answered.answer
    return _result(answer_body(answer) + answer_tail(answer), structured)


async def _get_passage(
    call: _Call, args: GetPassageArguments, _: AnswerThreads
) -> types.CallToolResult:
    passage = await anyio.to_thread.run_sync(
        lambda: call.workspace.passage(
            call.caller, args.collection, args.passage_id, args.neighbours, call.client
        )
    )
    found = _passage_json(passage, call.link(passage))
    found |= {"before": passage.before, "after": passage.after}
    return _result(_framed(1, passage, with_context=True), found)


_TOOLS: dict[str, tuple[type[_Arguments], Tool, str, bool]] = {
    "list_collections": (
        ListCollectionsArguments,
        _list_collections,
        "The document collections you may search, with how many documents each holds.",
        True,
    ),
    "search": (
        SearchArguments,
        _search,
        "Search the company's documents: the best passages for a question, best first, "
        "each with its citation (document, page), a link to the file and a passage_id for "
        "get_passage. Faster than ask; no model writes anything.",
        True,
    ),
    "ask": (
        AskArguments,
        _ask,
        "Answer a question from the company's documents: the answer with [n] markers, "
        "then its sources. When the documents do not cover the question, says so instead "
        "of guessing. Takes seconds to a minute.",
        True,
    ),
    "get_passage": (
        GetPassageArguments,
        _get_passage,
        "One passage by its passage_id (from search or ask), with the text before and "
        "after it in its document.",
        True,
    ),
}


def tool_list() -> list[types.Tool]:
    return [
        types.Tool(
            name=name,
            description=description,
            input_schema=arguments.model_json_schema(),
            annotations=types.ToolAnnotations(read_only_hint=read_only, open_world_hint=False),
        )
        for name, (arguments, _, description, read_only) in _TOOLS.items()
    ]


def _validation_message(tool: str, exc: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(x) for x in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()
    ]
    return f"invalid arguments for {tool}: " + "; ".join(problems[:5])


def mcp_server(workspace: Workspace, threads: AnswerThreads) -> Server[Any]:
    """The MCP server: its tools, each run for the request's authenticated caller."""

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=tool_list())

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        if not isinstance(ctx.request, Request):
            raise RuntimeError("an MCP tool called outside an HTTP request")
        call = _Call(workspace, ctx.request)
        name = params.name
        error: str | None = None
        try:
            if name not in _TOOLS:
                error = f"no tool named {json.dumps(name)[:100]}; the tools are " + ", ".join(
                    _TOOLS
                )
                return _failed(error)
            arguments, run, _, _ = _TOOLS[name]
            try:
                parsed = arguments.model_validate(params.arguments or {})
            except ValidationError as exc:
                error = _validation_message(name, exc)
                return _failed(error)
            try:
                return await run(call, parsed, threads)
            except CitadelError as exc:
                error = str(exc)
                return _failed(error)
            except Exception:
                log.exception("MCP tool %s failed", name)
                error = "internal error (the server's log has the details)"
                return _failed(error)
        finally:
            # Recorded even when the client hung up (the call is being cancelled).
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(
                    workspace.record_tool_call, call.caller, name[:100], call.client, error
                )

    return Server(
        SERVER_NAME,
        version="0.1.0",
        title="Citadel",
        instructions="Citadel answers from the company's own documents, with citations. "
        "Call list_collections to see what you may search, search for passages, ask for a "
        "cited answer, get_passage to read around a passage.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def transport_security(hosts: Iterable[str]) -> TransportSecuritySettings:
    """The SDK's Host (and Origin) check, listing the names the server answers to. No names
    (authentication on, any Host): the check is off, as on the other routes; the API key is
    what a rebinding page cannot send."""
    names = sorted(f"[{h}]" if ":" in h else h for h in hosts)
    if not names:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[form for h in names for form in (h, f"{h}:*")],
        allowed_origins=[
            form
            for h in names
            for scheme in ("http", "https")
            for form in (f"{scheme}://{h}", f"{scheme}://{h}:*")
        ],
    )


class McpEndpoint:
    """The ASGI app at /mcp: the caller is authenticated first (a 401 through the app's
    error table otherwise), then the SDK's transport handles the request."""

    def __init__(self, workspace: Workspace, threads: AnswerThreads, hosts: Iterable[str]):
        self._workspace = workspace
        self.manager = StreamableHTTPSessionManager(
            app=mcp_server(workspace, threads),
            stateless=True,
            security_settings=transport_security(hosts),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        caller = await anyio.to_thread.run_sync(bearer_caller, self._workspace, request)
        scope.setdefault("state", {})[_CALLER] = caller
        await self.manager.handle_request(scope, receive, send)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """For the host app's lifespan: the SDK's task group lives as long as the server."""
        async with self.manager.run():
            yield
