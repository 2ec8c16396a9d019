"""The world the isolation campaign runs in: two teams on one live server.

Mallory is in team red, whose collection red-docs holds ordinary documents; victim is in
team blue, whose collection blue-docs holds documents on the same subjects (so that only
the team filter keeps them out of mallory's answers), with canary tokens in their text and
names. Before the campaign victim uploads, asks and gets signed links over HTTP, leaving
job ids, answer ids and links for mallory to try. Every value of blue's that must never
reach mallory is recorded, normalised, in `World.secrets`.

The model is a fake Ollama that cites every answer, so the prompts it receives show what
retrieval handed it. The project's own modules (`ui.*`) are imported here only, besides
tests/live_server.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import shutil
import threading
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from rag.settings import LlmSettings
from tests.conftest import SAMPLES
from tests.docgen import write_docx, write_pdf
from tests.fake_ollama import FakeOllama, Script
from tests.live_server import (
    PASSWORD,
    LiveServer,
    add_user,
    server_settings,
    upload_and_wait,
    workspace_with,
)
from ui.service.links import FileLinks, secret_key
from ui.service.workspace import Workspace

RED, BLUE = "red-docs", "blue-docs"
MODEL = LlmSettings().model or "llama3.2:3b"

# Questions both teams' documents answer: an unfiltered retrieval would return blue's.
TOPICAL = [
    "What is the hotel limit per night in the travel and expenses policy?",
    "How do I connect to the VPN with multi-factor authentication?",
    "What does a new hire receive on the first day of onboarding?",
    "Which class may employees fly on business trips?",
]


# -- the fake model --------------------------------------------------------------------


class CitingOllama(FakeOllama):
    """Answers every question citing [1] and [2]; a request to condense a follow-up gets
    the follow-up back unchanged, so only what the caller sent reaches retrieval."""

    def __init__(self) -> None:
        super().__init__({MODEL: 8192})
        self._current = threading.local()

    def _record_chat(self, body: dict[str, Any]) -> None:
        super()._record_chat(body)
        self._current.body = body

    def _next_script(self) -> Script:
        messages = getattr(self._current, "body", {}).get("messages") or [{}]
        last = str(messages[-1].get("content", ""))
        follow_up = re.search(r"<Follow Up Message>\n(.*)\n\n<Standalone question>", last, re.S)
        if follow_up:
            return Script(tokens=[follow_up.group(1)])
        return Script(tokens=["The documents cover this [1]. ", "More is in the second [2]."])


# -- the world: two teams, canaries in blue --------------------------------------------


def make_canary() -> str:
    return f"CANARY-{secrets.token_hex(8)}"


def normalize(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def sse_events(text: str) -> list[tuple[str, Any]]:
    """A server-sent event stream: victim's answer here, mallory's in the tests."""
    events, name = [], "message"
    for line in text.splitlines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            events.append((name, json.loads(line[5:])))
    return events


def red_files(folder: Path) -> list[Path]:
    folder.mkdir()
    (folder / "red-travel-policy.md").write_text(
        "# Travel and expenses policy\n\nHotel nights are reimbursed up to 150 EUR per night "
        "in every city. Book through the travel desk.\n\n## Flights\n\nEmployees fly economy "
        "class on trips shorter than six hours. Receipts are submitted within 30 days.\n"
    )
    (folder / "red-vpn-guide.txt").write_text(
        "VPN guide\n\nInstall the VPN client from the software centre and connect to "
        "vpn.red.example.\nMulti-factor authentication is required: approve the push "
        "notification on your phone.\nDisconnect the VPN when you leave the office network.\n"
    )
    (folder / "red-onboarding.html").write_text(
        "<html><head><title>Onboarding checklist</title></head><body>"
        "<h1>Onboarding checklist</h1><p>On the first day a new hire receives a laptop, a "
        "badge and a welcome lunch with the team.</p><p>The manager schedules a meeting in "
        "the first week to agree the goals of the trial period.</p></body></html>"
    )
    shutil.copyfile(SAMPLES / "handbook.md", folder / "red-handbook.md")
    return sorted(folder.iterdir())


def blue_files(folder: Path, text: list[str], names: list[str]) -> list[Path]:
    """Blue's documents: canaries in their text and, distinct ones, in their names; their
    subjects are red's (travel, VPN, onboarding) so that only the filter keeps them out."""
    folder.mkdir()
    t, n = text, names
    (folder / f"travel-{n[0]}.md").write_text(
        f"# Travel rules {t[0]}\n\nHotel nights are reimbursed up to 420 EUR per night for "
        f"the executive team, code {t[0]}.\n\n## Flights\n\nExecutives fly business class on "
        f"any trip; the travel and expenses budget line is {t[0]}. Receipts are submitted "
        "within 90 days.\n"
    )
    (folder / f"vpn-{n[1]}.txt").write_text(
        f"Executive VPN access {t[1]}\n\nConnect to the VPN gateway with multi-factor "
        f"authentication, gateway code {t[1]}.\nThe break-glass password of the VPN is "
        f"{t[1]}; never share it.\n"
    )
    (folder / f"salaries-{n[2]}.html").write_text(
        f"<html><head><title>Salary bands {t[2]}</title></head><body><h1>Salary bands "
        f"{t[2]}</h1><p>On the first day of onboarding a new hire receives a signing bonus of "
        f"12,000 EUR ({t[2]}).</p><p>Senior engineers earn between 95,000 and 120,000 EUR a "
        f"year. Reference {t[2]}.</p></body></html>"
    )
    write_pdf(
        folder / f"merger-{n[3]}.pdf",
        [
            [
                f"## Project Nightingale {t[3]}",
                "",
                "The confidential merger with a competitor closes in March.",
                f"Travel and hotel costs of the deal team are booked on code {t[3]}.",
                "",
                "Multi-factor authentication protects the VPN of the data room.",
            ]
        ],
    )
    write_docx(
        folder / f"handbook-{n[4]}.docx",
        [
            ("h1", f"Executive handbook {t[4]}"),
            ("p", f"Onboarding: a new hire receives a laptop and stock options, plan {t[4]}."),
            ("p", "Business class flights are allowed for every trip longer than two hours."),
            ("li", f"Hotel limit 500 EUR per night, approval code {t[4]}."),
        ],
    )
    shutil.copyfile(
        SAMPLES / "policies/information-security-policy.pdf", folder / f"security-{n[5]}.pdf"
    )
    return sorted(folder.iterdir())


@dataclass
class World:
    server: LiveServer
    fake: CitingOllama
    keys: dict[str, str]
    secrets: dict[str, str] = field(default_factory=dict)  # casefolded secret -> what it is
    blue_ids: list[str] = field(default_factory=list)
    blue_chunks: list[str] = field(default_factory=list)
    blue_names: list[str] = field(default_factory=list)
    blue_hashes: set[str] = field(default_factory=set)  # sha256 of blue's files
    blue_before: dict[str, int] = field(default_factory=dict)  # document id -> chunks
    red_ids: list[str] = field(default_factory=list)
    canaries: list[str] = field(default_factory=list)
    victim_jobs: list[str] = field(default_factory=list)
    victim_answers: list[str] = field(default_factory=list)
    victim_links: list[str] = field(default_factory=list)
    mallory_link: str = ""
    expired_link: str = ""
    uploads_before: dict[str, list[str]] = field(default_factory=dict)
    gradio: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # name -> fn, trigger
    blue_source: tuple[str, str] = ("", "")  # the folder attached to blue: its id, its path
    cookie: str = ""  # mallory's web UI session
    victim_tab: dict[str, str] = field(default_factory=dict)  # its session, event, upload ids

    @property
    def workspace(self) -> Workspace:
        return self.server.workspace

    def secret(self, value: str, what: str) -> None:
        self.secrets[normalize(value)] = what


def uploaded(world: World) -> dict[str, list[str]]:
    root = world.workspace.settings.uploads_path
    return {
        folder.name: sorted(p.name for p in folder.iterdir())
        for folder in sorted(root.iterdir())
        if folder.is_dir() and not folder.name.startswith(".")
    }


def chunk_fingerprints(text: str, red_corpus: str) -> Iterator[str]:
    """Runs of six words from a blue chunk that red's documents do not contain."""
    words = normalize(text).split()
    for start in sorted({0, max(0, len(words) // 2 - 3), max(0, len(words) - 6)}):
        window = " ".join(words[start : start + 6])
        if len(window) >= 24 and window not in red_corpus:
            yield window


def collect_secrets(world: World, blue_folder: Path) -> None:
    store = world.workspace.services.store
    red_corpus = " ".join(normalize(h.payload["text"]) for h in store.chunks(RED))
    records = store.documents(BLUE)
    world.blue_ids = [r.id for r in records]
    world.blue_before = {r.id: r.chunks for r in records}
    world.red_ids = [r.id for r in store.documents(RED)]
    for r in records:
        world.secret(r.id, f"blue document id ({r.source})")
        world.secret(r.sha256, f"blue document hash ({r.source})")
        world.secret(r.source, "blue file name")
        world.blue_names.append(r.source)
    for path in blue_folder.iterdir():
        world.blue_hashes.add(hashlib.sha256(path.read_bytes()).hexdigest())
    for hit in store.chunks(BLUE):
        world.blue_chunks.append(hit.id)
        world.secret(hit.id, "blue chunk id")
        for window in chunk_fingerprints(hit.payload["text"], red_corpus):
            world.secret(window, f"blue chunk text ({hit.payload['source']})")
    texts = " ".join(normalize(h.payload["text"]) for h in store.chunks(BLUE))
    missing = [c for c in world.canaries if normalize(c) not in texts]
    assert not missing, f"canaries lost in ingestion: {missing}"
    world.secret(BLUE, "blue collection name")
    world.secret("victim", "another team's user name")
    world.secret(world.keys["victim"], "victim's API key")
    world.secret(world.keys["victim"][:12], "victim's API key prefix")
    for job in world.victim_jobs:
        world.secret(job, "victim's job id")
    for answer in world.victim_answers:
        world.secret(answer, "victim's answer id")
    for link in [*world.victim_links, world.expired_link]:
        world.secret(parse_qs(urlsplit(link).query)["s"][0], "a signature of victim's link")


def victim_history(world: World, blue_folder: Path) -> None:
    """What victim does over HTTP before the probes: an upload (a job id), questions (answer
    ids and signed links), all of which mallory will then try to use."""
    with world.server.client(world.keys["victim"]) as victim:
        text = make_canary()
        world.canaries.append(text)
        name = f"roadmap-fn{secrets.token_hex(6)}.md"
        (blue_folder / name).write_text(
            f"# Product roadmap {text}\n\nThe VPN replacement and the new travel booking tool "
            f"ship in the second quarter, project {text}.\n"
        )
        world.secret(name.split("-", 1)[1].removesuffix(".md"), "blue file name canary")
        response = victim.post(
            f"/api/collections/{BLUE}/documents",
            files=[("files", (name, (blue_folder / name).read_bytes()))],
        )
        assert response.status_code == 202, response.text
        job = response.json()["job"]
        world.victim_jobs.append(job["id"])
        deadline = time.monotonic() + 120
        while job["state"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.1)
            job = victim.get(f"/api/jobs/{job['id']}").json()
        assert job["state"] == "done", job
        for question in TOPICAL[:2]:
            asked = victim.post("/api/ask", json={"question": question, "collections": [BLUE]})
            assert asked.status_code == 200, asked.text
            world.victim_answers.append(asked.json()["id"])
            world.victim_links += [c["link"] for c in asked.json()["citations"]]
        streamed = victim.post("/api/ask", json={"question": TOPICAL[2], "stream": True})
        final = [e for e in sse_events(streamed.text) if e[0] == "answer"]
        world.victim_answers.append(final[-1][1]["id"])
        chat = victim.post(
            "/v1/chat/completions",
            json={
                "model": f"citadel:{BLUE}",
                "messages": [{"role": "user", "content": TOPICAL[3]}],
            },
        )
        assert chat.status_code == 200, chat.text
        world.victim_answers.append(chat.json()["citadel"]["answer_id"])
    assert world.victim_links, "victim's answers cite nothing: the canaries are not retrievable"


def sign_links(world: World) -> None:
    """Links as the UI gives them: mallory's to a red document, victim's (one expired)."""
    ws = world.workspace
    victim, mallory = ws.caller_named("victim"), ws.caller_named("mallory")
    assert victim is not None and mallory is not None
    blue = ws.services.retriever.retrieve(TOPICAL[0], [BLUE]).passages[0]
    red = ws.services.retriever.retrieve(TOPICAL[0], [RED]).passages[0]
    world.victim_links.append(ws.file_link(victim, blue))
    world.mallory_link = ws.file_link(mallory, red)
    ttl = ws.settings.server.link_ttl_s
    past = time.time() - 2 * ttl
    signed_then = FileLinks(secret_key(ws.settings.data_dir / "server.key"), ttl, lambda: past)
    world.expired_link = signed_then.make(victim.name, blue)


def check_canaries_would_be_found(world: World) -> None:
    """Without the filter, blue's canaries answer the topical questions: an administrator
    searching both collections gets blue passages for each of them."""
    with world.server.client(world.keys["root"]) as root:
        for question in TOPICAL:
            found = root.post(
                "/api/search", json={"question": question, "collections": [RED, BLUE]}
            )
            assert found.status_code == 200, found.text
            collections = [p["collection"] for p in found.json()["passages"]]
            assert BLUE in collections, (question, collections)


def gradio_functions(world: World) -> None:
    with httpx.Client(base_url=world.server.url, timeout=60) as web:
        signed_in = web.post("/login", data={"username": "mallory", "password": PASSWORD})
        assert signed_in.status_code == 303 and "citadel_session" in web.cookies
        config = web.get("/config").json()
        world.cookie = "; ".join(f"{c.name}={c.value}" for c in web.cookies.jar)
    for dep in config["dependencies"]:
        targets = dep.get("targets") or [[None]]
        world.gradio.setdefault(dep["api_name"], (dep["id"], targets[0][0]))


@contextlib.contextmanager
def open_world(tmp: Path, embedder: Any) -> Iterator[World]:
    """The world, its files under `tmp`, served until the block ends."""
    fake = CitingOllama()
    fake.start()
    settings = server_settings(
        tmp / "data", llm_host=fake.url, requests_per_minute=100_000, uploads_per_minute=100_000
    )
    ws = workspace_with(settings, embedder)
    keys = {
        "mallory": add_user(ws, "mallory", ("red",)),
        "victim": add_user(ws, "victim", ("blue",)),
        "root": add_user(ws, "root", admin=True),
    }
    ws.catalog.assign(RED, "red")
    ws.catalog.assign(BLUE, "blue")
    upload_and_wait(ws, "mallory", RED, red_files(tmp / "red"))
    text = [make_canary() for _ in range(5)]
    names = [f"fn{secrets.token_hex(6)}" for _ in range(6)]
    blue_folder = tmp / "blue"
    upload_and_wait(ws, "victim", BLUE, blue_files(blue_folder, text, names))
    # A share attached to each collection (not synced: blue's documents stay as they are);
    # blue's path is a secret, like its file names.
    share_name = f"share-fs{secrets.token_hex(6)}"
    root = ws.caller_named("root")
    assert root is not None
    shares = {}
    for collection, name in ((BLUE, share_name), (RED, "red-share")):
        (tmp / name).mkdir()
        shares[collection] = ws.attach_folder(root, collection, str(tmp / name))
    try:
        with LiveServer(ws) as server:
            w = World(server, fake, keys, canaries=list(text))
            for name in names:
                w.secret(name, "blue file name canary")
            for token in text:
                w.secret(token, "blue canary text")
            w.secret(share_name, "blue's attached folder")
            w.blue_source = (str(shares[BLUE].id), shares[BLUE].path)
            victim_history(w, blue_folder)
            sign_links(w)
            collect_secrets(w, blue_folder)
            check_canaries_would_be_found(w)
            gradio_functions(w)
            w.uploads_before = uploaded(w)
            yield w
    finally:
        ws.close()
        fake.stop()
