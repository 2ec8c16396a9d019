"""The load promise: 50 simulated users for 5 minutes against `citadel serve` at its default
limits, the model stand-in streaming at a fixed token rate, and one real browser session
asking through the web UI all along. Every request must end in its answer or in a
documented 429; the figures are retrieval and time-to-first-token p95, and a plot of the
latencies over the run.

Each user is a member with their own API key, and behaves like a person: a pause to read
and think, then one action (a streamed question through the OpenAI API, a question through
the REST API, a search, an upload of a small note whose job is followed to its end, or a
look at the collection's documents), again until the time is up. /healthz is probed every
second to show that the other routes keep answering while answers wait in line."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.server import harness, workload
from rag.settings import ServerSettings, load_settings

USERS = 50
SECONDS = 300.0
THINK_S = (10.0, 50.0)  # reading an answer, typing the next question
# What a user does after each pause, with its weight.
ACTIONS = {"stream": 0.30, "ask": 0.10, "search": 0.35, "upload": 0.05, "browse": 0.20}
# The stand-in model: about what the 1.5B model here writes on 2 cores (23 tokens/s), after
# a model server's usual wait for the first token.
TOKENS = 80
TOKEN_MS = 50.0
FIRST_TOKEN_MS = 800.0
ANSWERED = ("answer", "refused")  # what a question must end in (refused: weak evidence)
COLLECTION = "handbook"
UPLOADS = "notes"
TEAM = "staff"
BROWSER_USER = "browser"
PASSWORD = "load-proof-password"  # noqa: S105 - throw-away accounts in a temporary folder
BROWSER_PAUSE_S = 10.0
BROWSER_QUESTION_WAIT_MS = 180_000
JOB_WAIT_S = 300.0
CHROMIUM = "/usr/bin/chromium"


@dataclass
class Event:
    """One request as a user saw it."""

    at_s: float  # when it started, from the start of the run
    user: str
    action: str
    ms: float
    outcome: str = ""
    error: str | None = None  # anything but a documented 429
    limited: bool = False  # a documented 429
    retrieval_ms: float | None = None  # what the server says retrieval took
    ttft_ms: float | None = None  # streams: first token


def run(
    corpus: Path, work: Path, users: int, seconds: float, log: Callable, seed: int = 7
) -> dict[str, Any]:
    data = work / "data"
    log(f"ingesting {corpus} into {COLLECTION}")
    prepared = harness.prepare_data(_Args(corpus), work)
    keys = _accounts(data, users)
    settings = ServerSettings()
    fake = harness.FakeModel(harness.answer_tokens(TOKENS), FIRST_TOKEN_MS / 1000, TOKEN_MS / 1000)
    with (
        fake,
        harness.ServerProcess(
            data,
            work / "server.log",
            fake.url,
            requests_per_minute=settings.requests_per_minute,
        ) as server,
    ):
        log(f"server up in {server.startup_s} s; {users} users for {seconds:g} s, one browser")
        started = time.monotonic()
        stop = threading.Event()
        browser: dict[str, Any] = {}
        walk = threading.Thread(
            target=_browser_session, args=(server.url, started, seconds, browser, stop)
        )
        walk.start()
        try:
            events, probes, memory = asyncio.run(_users(server, keys, started, seconds, log, seed))
        finally:
            stop.set()
            walk.join(BROWSER_QUESTION_WAIT_MS / 1000 + 60)
        alive = _alive(server.url)
        problems = server.log_problems()[:20]
    return _result(
        events, probes, memory, browser, alive, problems, prepared, settings, users, seconds
    )


@dataclass
class _Args:
    """What harness.prepare_data reads from the server bench's command line."""

    corpus: Path
    data: Path | None = None
    collection: str = COLLECTION


def _accounts(data: Path, users: int) -> dict[str, str]:
    """A team owning the collections, `users` members with a key each, and the browser's
    account; {user: key}."""
    from ui.metadata import Metadata

    meta = Metadata.open(load_settings(overrides={"data_dir": data}))
    try:
        meta.accounts.add_team(TEAM)
        meta.catalog.assign(COLLECTION, TEAM)
        meta.catalog.assign(UPLOADS, TEAM)
        keys = {}
        for n in range(1, users + 1):
            name = f"user{n:02d}"
            meta.accounts.add_user(name, PASSWORD)
            meta.accounts.add_member(TEAM, name)
            keys[name] = meta.accounts.create_key(name, "load")
        meta.accounts.add_user(BROWSER_USER, PASSWORD)
        meta.accounts.add_member(TEAM, BROWSER_USER)
    finally:
        meta.close()
    return keys


# -- the simulated users -------------------------------------------------------------------
async def _users(
    server: harness.ServerProcess,
    keys: dict[str, str],
    started: float,
    seconds: float,
    log: Callable,
    seed: int,
) -> tuple[list[Event], list[tuple[float, float | None]], list[tuple[float, float]]]:
    events: list[Event] = []
    probes: list[tuple[float, float | None]] = []  # (at, ms), None when it failed
    memory: list[tuple[float, float]] = []
    deadline = started + seconds
    questions = _questions()
    assert server.process is not None
    process = server.process

    async def user(name: str, key: str, rng: random.Random) -> None:
        async with httpx.AsyncClient(
            base_url=server.url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(workload.REQUEST_TIMEOUT_S * 3, connect=10),
        ) as client:
            await asyncio.sleep(rng.uniform(0, THINK_S[1]))  # people do not start together
            while time.monotonic() < deadline:
                action = rng.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
                question = rng.choice(questions)
                at = time.monotonic() - started
                t = time.perf_counter()
                try:
                    event = await _act(client, name, action, question, rng)
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    event = Event(0, name, action, 0, error=f"{type(exc).__name__}: {exc}"[:300])
                event.at_s, event.user = round(at, 2), name
                event.ms = round((time.perf_counter() - t) * 1000, 1)
                events.append(event)
                await asyncio.sleep(rng.uniform(*THINK_S))

    async def probe() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            while time.monotonic() < deadline:
                at = round(time.monotonic() - started, 2)
                t = time.perf_counter()
                try:
                    ok = (await client.get("/healthz")).status_code == 200
                except httpx.HTTPError:
                    ok = False
                probes.append((at, round((time.perf_counter() - t) * 1000, 1) if ok else None))
                memory.append((at, harness.rss_mb(process)))
                await asyncio.sleep(1.0)

    async def progress() -> None:
        while time.monotonic() < deadline:
            await asyncio.sleep(30)
            errors = sum(e.error is not None for e in events)
            log(f"  {time.monotonic() - started:.0f} s: {len(events)} requests, {errors} errors")

    rngs = [random.Random(f"{name}-{seed}") for name in keys]
    await asyncio.gather(
        *(user(n, k, r) for (n, k), r in zip(keys.items(), rngs, strict=True)),
        probe(),
        progress(),
    )
    return events, probes, memory


def _questions() -> list[str]:
    """The handbook's evaluation questions (the corpus is the handbook)."""
    found, _ = workload.load_questions(workload.HANDBOOK_QA, COLLECTION)
    return found


async def _act(
    client: httpx.AsyncClient, name: str, action: str, question: str, rng: random.Random
) -> Event:
    if action in ("stream", "ask", "search"):
        sample = await workload.REQUESTS[action](client, question, COLLECTION)
        limited = sample.error is not None and sample.error.startswith("HTTP 429")
        if action != "search" and sample.error is None and sample.outcome not in ANSWERED:
            # The model stand-in always answers: search mode means the answer path failed.
            sample.error = f"no answer written: {sample.outcome or 'no outcome reported'}"
        return Event(
            0,
            name,
            action,
            sample.latency_ms,
            sample.outcome,
            None if limited else sample.error,
            limited,
            sample.server_ms,
            sample.ttft_ms,
        )
    if action == "upload":
        return await _upload(client, name, rng)
    for path in ("/api/me", "/api/collections", f"/api/collections/{COLLECTION}/documents"):
        response = await client.get(path)
        if response.status_code != 200:
            return _http_event(name, action, response)
    return Event(0, name, action, 0, "listed")


def _http_event(name: str, action: str, response: httpx.Response) -> Event:
    limited = response.status_code == 429
    error = None if limited else f"{action}: HTTP {response.status_code}: {response.text[:200]}"
    return Event(0, name, action, 0, f"HTTP {response.status_code}", error, limited)


async def _upload(client: httpx.AsyncClient, name: str, rng: random.Random) -> Event:
    """A short note uploaded, its job followed to its end: the note must be stored."""
    stamp = f"{name}-{rng.randrange(10**9):09d}"
    note = (
        f"# Meeting note {stamp}\n\nThe team agreed to review the onboarding checklist "
        f"every quarter. Reference {stamp}; the owner of this note is {name}.\n"
    )
    response = await client.post(
        f"/api/collections/{UPLOADS}/documents",
        files={"files": (f"note-{stamp}.md", note.encode(), "text/markdown")},
    )
    if response.status_code != 202:
        return _http_event(name, "upload", response)
    body = response.json()
    if body["rejected"] or body["job"] is None:
        return Event(0, name, "upload", 0, error=f"upload rejected: {body['rejected']}")
    job_id = body["job"]["id"]
    waited = time.monotonic() + JOB_WAIT_S
    while time.monotonic() < waited:
        await asyncio.sleep(1.0)
        polled = await client.get(f"/api/jobs/{job_id}")
        if polled.status_code != 200:
            return _http_event(name, "upload", polled)
        job = polled.json()
        if job["state"] in ("done", "failed"):
            statuses = [f["status"] for f in job["files"]]
            if job["state"] == "done" and statuses == ["added"]:
                return Event(0, name, "upload", 0, "stored")
            return Event(0, name, "upload", 0, error=f"job {job['state']}: {job['files']}")
    return Event(0, name, "upload", 0, error=f"job not done after {JOB_WAIT_S:g} s")


# -- the browser ---------------------------------------------------------------------------
def _browser_session(
    base: str, started: float, seconds: float, out: dict[str, Any], stop: threading.Event
) -> None:
    """A person in Chromium: logs in, then asks a question every few seconds until the end;
    each answer must arrive, checked (its rating buttons) with a citation chip."""
    from playwright.sync_api import sync_playwright

    checks: list[dict[str, Any]] = []
    out["checks"] = checks
    questions = _questions()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                ],
            )
            page = browser.new_page()
            t = time.perf_counter()
            page.goto(base + "/", wait_until="domcontentloaded", timeout=120_000)
            page.get_by_label("Username").fill(BROWSER_USER)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.locator("#citadel-question textarea").wait_for(timeout=120_000)
            out["login_s"] = round(time.perf_counter() - t, 2)
            turn = 0
            while not stop.is_set() and time.monotonic() - started < seconds:
                question = questions[turn % len(questions)]
                turn += 1
                at = round(time.monotonic() - started, 2)
                t = time.perf_counter()
                check: dict[str, Any] = {"at_s": at, "question": question}
                try:
                    box = page.locator("#citadel-question textarea")
                    box.fill(question)
                    box.press("Enter")
                    answer = page.locator("#citadel-conversation .citadel-a").nth(turn - 1)
                    answer.locator(".citadel-rate, .citadel-banner").first.wait_for(
                        timeout=BROWSER_QUESTION_WAIT_MS
                    )
                    check["seconds"] = round(time.perf_counter() - t, 2)
                    check["cited"] = answer.locator("a.citadel-cite").count() > 0
                    check["refused"] = answer.locator(".citadel-banner-refused").count() > 0
                    failed = answer.locator(".citadel-banner-error, .citadel-banner-incomplete")
                    check["ok"] = failed.count() == 0 and (check["cited"] or check["refused"])
                    if not check["ok"]:
                        check["shown"] = answer.inner_text()[:300]
                except Exception as exc:  # any failure is the finding
                    check.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:300])
                checks.append(check)
                stop.wait(BROWSER_PAUSE_S)
            browser.close()
    except Exception as exc:  # reported, never hidden
        out["error"] = f"{type(exc).__name__}: {exc}"[:500]


# -- the result ----------------------------------------------------------------------------
def _alive(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def _p(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def _result(
    events: list[Event],
    probes: list[tuple[float, float | None]],
    memory: list[tuple[float, float]],
    browser: dict[str, Any],
    alive: bool,
    problems: list[str],
    prepared: dict[str, Any],
    settings: ServerSettings,
    users: int,
    seconds: float,
) -> dict[str, Any]:
    by_action: dict[str, dict[str, Any]] = {}
    for action in ACTIONS:
        mine = [e for e in events if e.action == action]
        done = [e.ms for e in mine if e.error is None and not e.limited]
        by_action[action] = {
            "requests": len(mine),
            "outcomes": dict(Counter(e.outcome or "-" for e in mine)),
            "errors": sum(e.error is not None for e in mine),
            "limited_429": sum(e.limited for e in mine),
            "p50_ms": _p(done, 0.5),
            "p95_ms": _p(done, 0.95),
        }
    retrieval = [e.retrieval_ms for e in events if e.retrieval_ms is not None]
    ttft = [e.ttft_ms for e in events if e.ttft_ms is not None]
    healthy = [ms for _, ms in probes if ms is not None]
    checks = browser.get("checks", [])
    errors = [asdict(e) for e in events if e.error is not None]
    held = (
        not errors
        and not problems
        and alive
        and bool(checks)
        and all(c["ok"] for c in checks)
        and "error" not in browser
        and all(ms is not None for _, ms in probes)
    )
    s = settings
    return {
        "held": held,
        "users": users,
        "seconds": seconds,
        "think_s": list(THINK_S),
        "mix": ACTIONS,
        "model": {"tokens": TOKENS, "token_ms": TOKEN_MS, "first_token_ms": FIRST_TOKEN_MS},
        "limits": {
            "max_concurrent_answers": s.max_concurrent_answers,
            "answers_per_user": s.answers_per_user,
            "answers_waiting": s.answers_waiting,
            "requests_per_minute": s.requests_per_minute,
            "uploads_per_minute": s.uploads_per_minute,
            "max_connections": s.max_connections,
            "connections_per_address": s.connections_per_address,
        },
        "data": prepared,
        "requests": len(events),
        "errors": errors[:50],
        "error_count": len(errors),
        "limited_429": sum(e.limited for e in events),
        "actions": by_action,
        "retrieval_p95_ms": _p(retrieval, 0.95),
        "retrieval_p50_ms": _p(retrieval, 0.5),
        "ttft_p95_ms": _p(ttft, 0.95),
        "ttft_p50_ms": _p(ttft, 0.5),
        "healthz": {
            "probes": len(probes),
            "failed": sum(ms is None for _, ms in probes),
            "p95_ms": _p(healthy, 0.95),
            "max_ms": max(healthy, default=None),
        },
        "browser": {
            "login_s": browser.get("login_s"),
            "error": browser.get("error"),
            "checks": checks,
            "answered": sum(bool(c.get("ok")) for c in checks),
            "p95_s": _p([c["seconds"] for c in checks if "seconds" in c], 0.95),
        },
        "server_alive": alive,
        "server_rss_mb_peak": max((mb for _, mb in memory), default=None),
        "log_problems": problems,
        "series": {
            "stream_ttft": [(e.at_s, e.ttft_ms) for e in events if e.ttft_ms is not None],
            "retrieval": [(e.at_s, e.retrieval_ms) for e in events if e.retrieval_ms],
            "healthz": [p for p in probes if p[1] is not None],
            "browser": [(c["at_s"], c["seconds"] * 1000) for c in checks if "seconds" in c],
            "memory": memory,
        },
    }
