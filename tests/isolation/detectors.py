"""The leak detectors: what the responses to the campaign may not hold.

A probe leaks when its response (body, headers, the strings inside its JSON or SSE
documents) or a prompt the model received carries one of blue's secrets that the probe
did not send itself (`leaks`; an echo of the caller's own input is counted apart by
`echoes`), or the bytes of one of blue's files. A successful response may hold no object
of another team (`foreign_structure`). A foreign probe and its twin must look the same
once the value that differs is masked (`twin_view`). `problems` runs a check over every
probe of the campaign.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

from tests.isolation.clients import Campaign
from tests.isolation.plans import Probe
from tests.isolation.world import RED, World, normalize

OWN_MODELS = {"citadel", f"citadel:{RED}"}


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def json_documents(probe: Probe) -> list[Any]:
    text = probe.response.decode("utf-8", "replace")
    try:
        return [json.loads(text)]
    except ValueError:
        pass
    documents = []
    for line in text.splitlines():
        if line.startswith("data:"):
            with contextlib.suppress(ValueError):
                documents.append(json.loads(line[5:]))
    return documents


def response_text(probe: Probe) -> str:
    parts = [probe.response.decode("utf-8", "replace")]
    parts += [f"{k}: {v}" for k, v in probe.response_headers]
    for document in json_documents(probe):
        parts.extend(_strings(document))
    return normalize("\n".join(parts))


def sent_text(probe: Probe) -> str:
    body = probe.body.decode("utf-8", "replace")
    parts = [probe.target, unquote(probe.target), unquote(unquote(probe.target)), body]
    parts += list(probe.headers.values())
    with contextlib.suppress(ValueError):
        parts.extend(_strings(json.loads(body)))
    return normalize("\n".join(parts))


def retrieved_context(prompt: dict[str, Any]) -> str:
    """What a prompt carries besides the caller's own words: the <source> blocks."""
    messages = prompt.get("messages") or []
    last = str(messages[-1].get("content", "")) if messages else ""
    if not last.startswith("<source "):
        return ""
    return last.rsplit("<question>", 1)[0]


def leaks(probe: Probe, world: World) -> list[str]:
    """Blue secrets in the response or the model's prompt that the probe did not send."""
    seen, sent = response_text(probe), sent_text(probe)
    context = normalize("\n".join(retrieved_context(p) for p in probe.prompts))
    prompts = normalize("\n".join(json.dumps(p.get("messages")) for p in probe.prompts))
    found = []
    for token, what in world.secrets.items():
        if token in context:
            found.append(f"{what} in the sources given to the model")
        if token in sent:
            continue  # an echo of the caller's own input (counted apart)
        if token in seen:
            found.append(f"{what} in the response")
        if token in prompts:
            found.append(f"{what} in the model's prompt")
    if hashlib.sha256(probe.response).hexdigest() in world.blue_hashes:
        found.append("the bytes of a blue file")
    return found


def echoes(probe: Probe, world: World) -> list[str]:
    seen, sent = response_text(probe), sent_text(probe)
    return [what for token, what in world.secrets.items() if token in sent and token in seen]


def foreign_structure(value: Any) -> Iterator[str]:
    """Objects of another team in a successful response, whatever words they carry."""
    if isinstance(value, list):
        for v in value:
            yield from foreign_structure(v)
        return
    if not isinstance(value, dict):
        return
    if "openapi" in value and "paths" in value:
        return  # the API's own description, the same for everyone: shapes, not data
    if "inputSchema" in value:
        return  # an MCP tool's description, the same for everyone: shapes, not data
    if "collection" in value and value["collection"] not in (None, RED):
        yield f"an object of collection {value['collection']!r}"
    listed = value.get("collections")
    named = {c for c in listed if isinstance(c, str)} if isinstance(listed, list) else set()
    if named - {RED}:  # names (a list of objects is looked at below, each on its own)
        yield f"collections {listed!r}"
    if isinstance(value.get("team"), str) and value["team"] != "red":
        yield f"team {value['team']!r}"
    if isinstance(value.get("teams"), list) and set(value["teams"]) - {"red"}:
        yield f"teams {value['teams']!r}"
    if value.get("object") == "model" and value.get("id") not in OWN_MODELS:
        yield f"model {value.get('id')!r}"
    if {"name", "documents", "chunks"} <= value.keys() and value["name"] != RED:
        yield f"collection {value['name']!r} with its counts"
    for v in value.values():
        yield from foreign_structure(v)


def tool_refused(probe: Probe) -> bool:
    """An MCP tool call answered with the tool's error result: MCP refuses a call inside a
    200 response, so that the calling model reads why."""
    return any(
        isinstance(d, dict) and isinstance(d.get("result"), dict) and d["result"].get("isError")
        for d in json_documents(probe)
    )


def gradio_outcome(probe: Probe) -> str:
    """A web UI event's results and errors, without its timings and event ids."""
    kept = []
    for message in json_documents(probe):
        if isinstance(message, dict) and message.get("msg") in (
            "process_completed",
            "process_generating",
        ):
            output = message.get("output") or {}
            kept.append([message.get("success"), output.get("data"), output.get("error")])
    return json.dumps(kept, ensure_ascii=False)


def twin_view(probe: Probe) -> tuple[int, str, str]:
    body = probe.response.decode("utf-8", "replace")
    if probe.method == "GRADIO":
        body = gradio_outcome(probe)
    location = dict((k.lower(), v) for k, v in probe.response_headers).get("location", "")
    for form in probe.stand_in:
        body, location = body.replace(form, "<value>"), location.replace(form, "<value>")
    return probe.status, body, location


def problems(campaign: Campaign, check: Callable[[Probe], list[str]]) -> list[str]:
    found = []
    for probe in campaign.probes:
        found += [f"{probe.family}: {probe.describe()}: {p}" for p in check(probe)]
    return found


def show(found: list[str], limit: int = 40) -> str:
    return f"{len(found)} problem(s):\n" + "\n".join(found[:limit])
