"""The verdicts on mallory's campaign (see the package's docstring).

Every route is probed; nothing of blue's is in a response or a prompt; a successful
response holds only red's objects; a foreign id is answered like an unknown one; nothing
fails with a server error; the web UI and the answers behave. Then, after the campaign:
blue keeps its documents and files, victim's links open for victim only, and the audit
log shows mallory was shown only her own documents.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from urllib.parse import urlsplit

import httpx
import pytest

from tests.isolation.clients import Campaign
from tests.isolation.detectors import (
    echoes,
    foreign_structure,
    json_documents,
    leaks,
    problems,
    retrieved_context,
    show,
    tool_refused,
    twin_view,
)
from tests.isolation.plans import Probe
from tests.isolation.world import BLUE, RED, TOPICAL, World, sse_events, uploaded

pytestmark = pytest.mark.slow

MIN_PROBES = 1000
_UNFILTERED = {"question", "collections", "stream", "top_k"}


def test_over_a_thousand_probes_cover_every_route(campaign: Campaign, world: World) -> None:
    by_family: dict[str, Counter[int]] = defaultdict(Counter)
    for probe in campaign.probes:
        by_family[probe.family][probe.status] += 1
    lines = [f"{len(campaign.probes)} probes in {campaign.seconds:.1f} s"]
    for family, statuses in sorted(by_family.items()):
        counts = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
        lines.append(f"  {sum(statuses.values()):5d}  {family}  ({counts})")
    echoed = Counter((p.status, what) for p in campaign.probes for what in set(echoes(p, world)))
    if echoed:
        lines.append("own input echoed back (not a leak):")
        lines += [f"  {n:5d}  {status}: {what}" for (status, what), n in sorted(echoed.items())]
    print("\n".join(lines))

    assert len(campaign.probes) >= MIN_PROBES
    schema = httpx.get(f"{world.server.url}/api/openapi.json").json()
    api_routes = {f"{m.upper()} {path}" for path, ops in schema["paths"].items() for m in ops}
    probed = {f"{p.method} {urlsplit(p.target).path}" for p in campaign.probes}
    unprobed = {
        route
        for route in api_routes
        if not any(re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", route), p) for p in probed)
    }
    assert not unprobed, sorted(unprobed)


def test_no_response_or_prompt_carries_anything_of_the_other_team(
    campaign: Campaign, world: World
) -> None:
    found = problems(campaign, lambda p: leaks(p, world))
    assert not found, show(found)


def test_successful_responses_hold_only_the_callers_own_objects(campaign: Campaign) -> None:
    def check(probe: Probe) -> list[str]:
        if not 200 <= probe.status < 300:
            return []
        return sorted({f for doc in json_documents(probe) for f in foreign_structure(doc)})

    found = problems(campaign, check)
    assert not found, show(found)


def test_a_foreign_id_is_answered_exactly_like_an_unknown_one(campaign: Campaign) -> None:
    pairs: dict[int, list[Probe]] = defaultdict(list)
    for probe in campaign.probes:
        if probe.pair is not None:
            pairs[probe.pair].append(probe)
    found = []
    for foreign, twin in (sorted(p, key=lambda x: not x.foreign) for p in pairs.values()):
        if twin_view(foreign) != twin_view(twin):
            found.append(
                f"{foreign.family}: {foreign.describe()} {foreign.response[:200]!r} but "
                f"{twin.describe()} {twin.response[:200]!r}"
            )
    assert len(pairs) >= 300
    assert not found, show(found)


def test_foreign_probes_never_succeed_and_nothing_fails_with_a_server_error(
    campaign: Campaign,
) -> None:
    def check(probe: Probe) -> list[str]:
        if probe.status >= 500:
            return [f"server error {probe.response[:200]!r}"]
        if probe.expect is not None and probe.status not in probe.expect:
            return [f"expected {sorted(probe.expect)}, body {probe.response[:300]!r}"]
        refused = probe.method == "GRADIO" or tool_refused(probe)  # refusals inside a 200
        if probe.foreign and 200 <= probe.status < 300 and not refused:
            return ["a request naming blue's object succeeded"]
        citadel_route = probe.target.startswith(("/api/", "/v1/", "/files/"))
        if (
            citadel_route
            and probe.foreign
            and probe.status == 403
            and b"admin" not in probe.response
        ):
            return ["403 for a foreign object: it must be 404, like an unknown one"]
        return []

    found = problems(campaign, check)
    assert not found, show(found)


def test_web_ui_events_about_foreign_objects_fail_like_unknown_ones(campaign: Campaign) -> None:
    web = [p for p in campaign.probes if p.method == "GRADIO"]
    assert len(web) >= 50
    assert all(p.status == 200 for p in web), [p.describe() for p in web if p.status != 200]
    # Foreign values stop at the dropdowns (their choices are per session: mallory's); a
    # question over her own collections is answered.
    answered = [p for p in web if p.family == "web UI, ask" and not p.foreign]
    assert any(b"citadel-a" in p.response and b"red-" in p.response for p in answered)


def test_answers_to_mallory_cite_her_documents(campaign: Campaign, world: World) -> None:
    """The campaign is not vacuous: questions over red are answered with citations, so
    the checks above saw real retrieval, generation and citation at work."""
    topical = cited = 0
    for probe in campaign.probes:
        if probe.family == "POST /api/ask" and probe.status == 200:
            events = sse_events(probe.response.decode()) or [("", json_documents(probe)[0])]
            body = json.loads(probe.body)
            if body.get("question") in TOPICAL and set(body) <= _UNFILTERED:
                # The other questions (a canary, SQL, a password) are refused: red's
                # documents do not answer them; nor do filters naming blue's files.
                topical += 1
                cited += any(isinstance(data, dict) and data.get("citations") for _, data in events)
    assert topical >= 10 and cited == topical, (cited, topical)
    sources = [retrieved_context(p) for probe in campaign.probes for p in probe.prompts]
    assert sum(bool(s) for s in sources) >= 40


def test_mcp_tools_answer_mallory_from_her_documents(campaign: Campaign) -> None:
    """The MCP probes are not vacuous either: her searches and passages come back (from red,
    as the checks above make sure), and her questions are answered."""
    mcp = [p for p in campaign.probes if p.family == "POST /mcp" and p.status == 200]
    found = [p for p in mcp if b'"passage_id"' in p.response and not tool_refused(p)]
    answered = [p for p in mcp if b'"answer_id"' in p.response]
    assert len(found) >= 10 and len(answered) >= 5, (len(found), len(answered))


def test_victim_keeps_every_document_and_file(campaign: Campaign, world: World) -> None:
    ws = world.workspace
    after = {r.id: r.chunks for r in ws.services.store.documents(BLUE)}
    assert after == world.blue_before
    now = uploaded(world)
    assert now[BLUE] == world.uploads_before[BLUE]
    assert set(now) <= {RED, BLUE}
    assert ws.catalog.owners()[BLUE] == "blue"
    mallory = ws.caller_named("mallory")
    assert mallory is not None and mallory.teams == frozenset({"red"}) and not mallory.admin
    assert {u.name for u in ws.accounts.users()} == {"mallory", "victim", "root"}
    with world.server.client(world.keys["victim"]) as victim:
        listed = victim.get(f"/api/collections/{BLUE}/documents")
        assert listed.status_code == 200
        assert {d["id"] for d in listed.json()} == set(world.blue_before)
        assert victim.get(f"/api/jobs/{world.victim_jobs[0]}").status_code == 200
        rated = victim.post(
            "/api/feedback", json={"answer_id": world.victim_answers[0], "rating": 1}
        )
        assert rated.status_code == 201, rated.text


def test_victims_signed_links_open_only_unaltered(campaign: Campaign, world: World) -> None:
    """A link is bound to one document, one user and a deadline: unaltered it opens
    victim's file for victim only (their key or session); held by anyone else, or altered
    in any way, it is a 404."""
    with (
        world.server.client(world.keys["victim"]) as victim,
        httpx.Client(base_url=world.server.url) as anyone,
    ):
        for link in world.victim_links:
            opened = victim.get(link.split("#")[0])
            assert opened.status_code == 200
            assert hashlib.sha256(opened.content).hexdigest() in world.blue_hashes
            assert opened.headers["cache-control"] == "private, no-store"
            assert anyone.get(link.split("#")[0]).status_code == 404
        assert victim.get(world.expired_link.split("#")[0]).status_code == 404


def test_what_mallory_was_shown_is_audited_and_only_hers(campaign: Campaign, world: World) -> None:
    entries = world.workspace.audit.entries(100_000, actor="mallory")
    shown = [s for e in entries for s in e.detail.get("shown", [])]
    assert shown, "mallory's searches are not audited"
    assert not {s["document_id"] for s in shown} & set(world.blue_ids)
    touched = {e.collection for e in entries if e.action in ("download", "delete", "upload")}
    assert touched == {RED}, touched  # her own uploads are on record, nothing else is
