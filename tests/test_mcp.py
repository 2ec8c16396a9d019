"""The MCP server (/mcp) as MCP clients use it: the official SDK's own client talks
streamable HTTP to the running server (uvicorn, `create_app`), with Bearer API keys, as two
users of different teams. Answers come from a real OllamaGenerator talking to a fake
Ollama; passages from the bundled samples, really ingested."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import httpx2
import mcp_types as types
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from rag.adapters.embedder import SentenceTransformerEmbedder
from tests.fake_ollama import FakeOllama, Script
from tests.live_server import LiveServer, add_user, server_settings, upload_and_wait, workspace_with
from ui.service.workspace import Workspace

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
LEAVE_QUESTION = "How many days of paid annual leave do full-time employees get?"
ANSWER_TOKENS = ["Full-time employees receive ", "25 days of paid annual leave", " [1]."]
SECRET = "The 2027 sales target for the northern region is 40 million."
TOOLS = {"list_collections", "search", "ask", "get_passage"}

T = TypeVar("T")


@dataclass
class Served:
    url: str
    workspace: Workspace
    keys: dict[str, str]  # user -> API key


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOllama]:
    with FakeOllama() as server:
        yield server


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
    fake: FakeOllama,
    embedder: SentenceTransformerEmbedder,
) -> Iterator[Served]:
    """alice (team eng) reads `larkspur`, the samples; bob (team sales) reads `secret`."""
    base = tmp_path_factory.mktemp("mcp")
    (base / "secret").mkdir()
    (base / "secret" / "plans.md").write_text(f"# Sales plans\n\n{SECRET}\n")
    workspace = workspace_with(server_settings(base / "data", llm_host=fake.url), embedder)
    keys = {
        "alice": add_user(workspace, "alice", ("eng",)),
        "bob": add_user(workspace, "bob", ("sales",)),
    }
    workspace.catalog.assign("larkspur", "eng")
    workspace.catalog.assign("secret", "sales")
    upload_and_wait(workspace, "alice", "larkspur", sorted(SAMPLES.glob("*.md")))
    upload_and_wait(workspace, "bob", "secret", [base / "secret" / "plans.md"])
    with LiveServer(workspace) as server:
        yield Served(server.url, workspace, keys)
    workspace.close()


def with_mcp(url: str, key: str, use: Callable[[ClientSession], Awaitable[T]]) -> T:
    """`use` run with an initialised SDK client session on `url`/mcp, as the key's owner."""

    async def run() -> T:
        headers = {"Authorization": f"Bearer {key}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=60) as http,
            streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await use(session)

    return anyio.run(run)


def call(served: Served, user: str, tool: str, **arguments: Any) -> types.CallToolResult:
    async def use(session: ClientSession) -> types.CallToolResult:
        return await session.call_tool(tool, arguments)

    return with_mcp(served.url, served.keys[user], use)


def leaves(group: BaseException) -> list[BaseException]:
    if isinstance(group, BaseExceptionGroup):
        return [leaf for e in group.exceptions for leaf in leaves(e)]
    return [group]


def text_of(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


def test_the_four_tools_are_listed_with_their_arguments(served: Served) -> None:
    async def use(session: ClientSession) -> types.ListToolsResult:
        return await session.list_tools()

    tools = {t.name: t for t in with_mcp(served.url, served.keys["alice"], use).tools}

    assert set(tools) == TOOLS
    assert tools["search"].input_schema["required"] == ["question"]
    assert set(tools["get_passage"].input_schema["required"]) == {"collection", "passage_id"}
    assert all(t.description for t in tools.values())


def test_each_user_lists_only_their_teams_collections(served: Served) -> None:
    listed = {
        user: [
            c["name"]
            for c in call(served, user, "list_collections").structured_content["collections"]
        ]
        for user in ("alice", "bob")
    }

    assert listed == {"alice": ["larkspur"], "bob": ["secret"]}


def test_search_gives_cited_passages_from_the_callers_collections_only(served: Served) -> None:
    alice = call(served, "alice", "search", question=LEAVE_QUESTION)
    bob = call(served, "bob", "search", question=LEAVE_QUESTION)

    assert not alice.is_error
    passages = alice.structured_content["passages"]
    assert passages[0]["document"] == "handbook.md"
    assert {p["collection"] for p in passages} == {"larkspur"}
    assert "25 days of paid annual leave" in text_of(alice)
    # framed as Citadel's own prompt frames sources: a document cannot close its block
    assert text_of(alice).startswith('<source id="1" document="handbook.md"')
    assert f"(source 1: collection larkspur, passage_id {passages[0]['passage_id']})" in text_of(
        alice
    )
    assert passages[0]["link"].startswith(f"{served.url}/files/")
    # bob searches his own collection: none of alice's documents, whatever he asks.
    assert {p["collection"] for p in bob.structured_content["passages"]} == {"secret"}
    assert "annual leave" not in text_of(bob)


def test_another_teams_collection_is_indistinguishable_from_a_missing_one(served: Served) -> None:
    theirs = call(served, "bob", "search", question=LEAVE_QUESTION, collections=["larkspur"])
    missing = call(served, "bob", "search", question=LEAVE_QUESTION, collections=["nosuch"])

    assert theirs.is_error and missing.is_error
    assert text_of(theirs) == text_of(missing) == "no such collection"


def test_ask_gives_a_cited_answer_with_its_sources(served: Served, fake: FakeOllama) -> None:
    fake.enqueue(Script(tokens=ANSWER_TOKENS))

    result = call(served, "alice", "ask", question=LEAVE_QUESTION)

    assert not result.is_error, text_of(result)
    text = text_of(result)
    assert text.startswith("Full-time employees receive 25 days of paid annual leave [1].")
    assert "\n\nSources:\n[1] handbook.md" in text
    answer = result.structured_content
    assert answer["refused"] is False and answer["collections"] == ["larkspur"]
    (source,) = answer["sources"]
    assert source["source"] == "handbook.md"
    assert source["link"].startswith(f"{served.url}/files/")


def test_bob_cannot_ask_alices_collection(served: Served, fake: FakeOllama) -> None:
    asked = len(fake.requests)

    result = call(served, "bob", "ask", question=LEAVE_QUESTION, collections=["larkspur"])

    assert result.is_error and text_of(result) == "no such collection"
    assert len(fake.requests) == asked  # refused before any model call


def test_get_passage_reads_around_a_passage_of_ones_own_collections(served: Served) -> None:
    found = call(served, "alice", "search", question=LEAVE_QUESTION).structured_content
    first = found["passages"][0]

    passage = call(
        served,
        "alice",
        "get_passage",
        collection="larkspur",
        passage_id=first["passage_id"],
        neighbours=1,
    )
    as_bob = call(
        served, "bob", "get_passage", collection="larkspur", passage_id=first["passage_id"]
    )
    in_bobs = call(
        served, "bob", "get_passage", collection="secret", passage_id=first["passage_id"]
    )

    assert not passage.is_error, text_of(passage)
    got = passage.structured_content
    assert got["passage_id"] == first["passage_id"] and got["document"] == "handbook.md"
    assert got["before"] or got["after"]  # the chunks around it, from the same document
    assert first["text"][:40] in text_of(passage)
    assert as_bob.is_error and text_of(as_bob) == "no such collection"
    assert in_bobs.is_error and text_of(in_bobs) == "no such passage in that collection"


def test_bad_arguments_and_unknown_tools_are_explained(served: Served) -> None:
    no_question = call(served, "alice", "search")
    too_many = call(served, "alice", "search", question="leave", top_k=500)
    unknown = call(served, "alice", "delete_everything")

    assert no_question.is_error and "question: Field required" in text_of(no_question)
    assert too_many.is_error and "top_k" in text_of(too_many)
    assert unknown.is_error and text_of(unknown).startswith('no tool named "delete_everything"')


def test_mcp_needs_a_valid_api_key(served: Served) -> None:
    ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream"}

    anonymous = httpx.post(f"{served.url}/mcp", json=ping, headers=headers)
    wrong = httpx.post(
        f"{served.url}/mcp", json=ping, headers=headers | {"Authorization": "Bearer nope"}
    )

    for response in (anonymous, wrong):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    # The SDK's client gets no tool list either: its session fails to open.
    with pytest.raises(BaseExceptionGroup) as refused:
        with_mcp(served.url, "citadel_wrong", lambda s: s.list_tools())
    assert "error response" in " ".join(str(e) for e in leaves(refused.value))


def test_every_tool_call_is_audited(served: Served) -> None:
    before = len(served.workspace.audit.entries(action="mcp", limit=1000))

    call(served, "bob", "list_collections")
    call(served, "bob", "search", question=LEAVE_QUESTION, collections=["larkspur"])

    latest = served.workspace.audit.entries(action="mcp", limit=1000)
    assert len(latest) == before + 2
    newest = [e.to_json() for e in latest[:2]]
    assert {(e["actor"], e["detail"]["tool"], e["detail"]["ok"]) for e in newest} == {
        ("bob", "list_collections", True),
        ("bob", "search", False),
    }
    refused = next(e for e in newest if not e["detail"]["ok"])
    assert refused["detail"]["error"] == "no such collection"


def test_the_sdks_host_check_lists_the_configured_names(
    tmp_path: Path, embedder: SentenceTransformerEmbedder
) -> None:
    """The SDK alone accepts only loopback Host headers; a server named in its settings is
    reached by that name."""
    settings = server_settings(tmp_path / "data", allowed_hosts=["citadel.example"])
    workspace = workspace_with(settings, embedder)
    key = add_user(workspace, "alice", ("eng",))
    ping = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream", "Authorization": f"Bearer {key}"}
    try:
        with LiveServer(workspace) as server:
            named = httpx.post(
                f"{server.url}/mcp",
                json=ping,
                headers=headers | {"Host": f"citadel.example:{server.port}"},
            )
            other = httpx.post(
                f"{server.url}/mcp", json=ping, headers=headers | {"Host": "elsewhere.example"}
            )
    finally:
        workspace.close()

    assert named.status_code == 200, named.text
    assert "list_collections" in named.text
    assert other.status_code in (400, 421)  # turned away before any tool runs
    shutil.rmtree(tmp_path / "data", ignore_errors=True)
