"""The load the server bench sends, and how it is timed: the questions, one coroutine per
endpoint (search, ask, stream), closed-loop clients at one concurrency level with a /healthz
probe alongside, and the CPU meters read around each level. Nothing is aggregated here: a
level's raw samples go to `report`."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.server.harness import ServerProcess, cpu_s, rss_mb

HANDBOOK_QA = Path("../shared/eval/handbook-qa.jsonl")
PROBE_INTERVAL_S = 0.2
REQUEST_TIMEOUT_S = 120.0

SAMPLE_QUESTIONS = (
    "How many days of paid annual leave do employees get?",
    "How many unused leave days can be carried over, and when do they expire?",
    "What are the core working hours?",
    "How many days a week may I work remotely?",
    "Where do I submit expense claims, and within how many days?",
    "Which expense claims need the manager's approval before the purchase?",
    "How do I reset my password?",
    "Where do I pick up a new laptop?",
    "Can I install my own software on my laptop?",
    "Which VPN does the company use?",
    "How long must passwords be?",
    "How quickly must a lost or stolen laptop be reported?",
    "How do I report a security incident?",
    "What is the hotel cap per night in London?",
    "Which class of travel applies to a seven-hour flight?",
    "How far in advance must business trips be booked?",
    "When are the offices closed over the holidays?",
    "What is the laptop budget for a data engineer?",
    "How much is the allowance for a home office chair, and who approves it?",
    "Who is the site lead of the Berlin office?",
    "What happens on day 2 of the first week?",
    "Who reviews the information security policy?",
)


def load_questions(path: Path | None, collection: str) -> tuple[list[str], str]:
    if path is None and collection == "handbook" and HANDBOOK_QA.is_file():
        path = HANDBOOK_QA
    if path is None:
        return list(SAMPLE_QUESTIONS), "built-in questions about samples/"
    text = path.read_text(encoding="utf-8")
    found = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            found.append(str(json.loads(line)["question"]))
        else:
            found.append(line)
    if not found:
        raise SystemExit(f"{path}: no questions")
    return found, str(path)


# -- requests ----------------------------------------------------------------------------------
@dataclass
class Sample:
    latency_ms: float
    error: str | None = None
    outcome: str = ""
    server_ms: float | None = None  # what the server says retrieval took
    ttfb_ms: float | None = None  # streams: first byte of the body
    ttft_ms: float | None = None  # streams: first non-empty content delta
    tokens: int = 0  # streams: non-empty content deltas before the final chunk
    tail_ms: float | None = None  # streams: from the last content delta to the end


Request = Callable[[httpx.AsyncClient, str, str], Awaitable[Sample]]


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


def _http_error(response: httpx.Response) -> str:
    return f"HTTP {response.status_code}: {response.text[:200]}"


async def _post_question(
    client: httpx.AsyncClient,
    path: str,
    question: str,
    collection: str,
    read: Callable[[dict[str, Any]], tuple[str, float]],
) -> Sample:
    """One JSON question to `path`; `read` turns the body into (outcome, server-side ms)."""
    t = time.perf_counter()
    response = await client.post(path, json={"question": question, "collections": [collection]})
    latency = _ms(t)
    if response.status_code != 200:
        return Sample(latency, _http_error(response))
    outcome, server_ms = read(response.json())
    return Sample(latency, outcome=outcome, server_ms=server_ms)


async def request_search(client: httpx.AsyncClient, question: str, collection: str) -> Sample:
    return await _post_question(
        client,
        "/api/search",
        question,
        collection,
        lambda b: ("weak evidence" if b["weak_evidence"] else "passages", b["latency_ms"]),
    )


async def request_ask(client: httpx.AsyncClient, question: str, collection: str) -> Sample:
    def read(body: dict[str, Any]) -> tuple[str, float]:
        refused, search_mode = body["refused"], body["search_mode"]
        outcome = "refused" if refused else "search mode" if search_mode else "answer"
        return outcome, body["retrieval_ms"]

    return await _post_question(client, "/api/ask", question, collection, read)


async def request_stream(client: httpx.AsyncClient, question: str, collection: str) -> Sample:
    body = {
        "model": f"citadel:{collection}",
        "messages": [{"role": "user", "content": question}],
        "stream": True,
    }
    t = time.perf_counter()
    ttfb = ttft = last = None
    tokens = 0
    outcome, error, done = "", None, False
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            await response.aread()
            return Sample(_ms(t), _http_error(response))
        async for line in response.aiter_lines():
            if ttfb is None:
                ttfb = _ms(t)
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                done = True
                continue
            chunk = json.loads(data)
            if "error" in chunk:
                error = f"stream error: {str(chunk['error'].get('message'))[:200]}"
                continue
            if "citadel" in chunk:
                c = chunk["citadel"]
                outcome = (
                    "refused" if c["refused"] else "search mode" if c["search_mode"] else "answer"
                )
                continue
            choices = chunk.get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):
                tokens += 1
                last = time.perf_counter()
                if ttft is None:
                    ttft = _ms(t)
    latency = _ms(t)
    tail = _ms(last) if last is not None else None
    if error is None and not done:
        error = "stream ended without [DONE]"
    return Sample(latency, error, outcome, ttfb_ms=ttfb, ttft_ms=ttft, tokens=tokens, tail_ms=tail)


REQUESTS: dict[str, Request] = {
    "search": request_search,
    "ask": request_ask,
    "stream": request_stream,
}


# -- measuring ---------------------------------------------------------------------------------
def _machine_busy_s() -> float:
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0))


@dataclass
class Meters:
    """CPU seconds of the processes involved and of the machine, from one instant."""

    processes: dict[str, psutil.Process | None]
    at: float = field(default_factory=time.perf_counter)
    cpu: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The bench's children are the server and the fake model: counted on their own.
        self.cpu = {
            k: cpu_s(p, children=k != "bench") for k, p in self.processes.items() if p is not None
        }
        self.cpu["machine"] = _machine_busy_s()

    def cores_since(self, before: Meters) -> dict[str, float]:
        wall = self.at - before.at
        return {k: round((v - before.cpu[k]) / wall, 2) for k, v in self.cpu.items()}


@dataclass
class LevelRun:
    """One endpoint at one concurrency level, as measured: every sample and probe, the meters
    before and after, the load average around it and the server's RSS (peak and end)."""

    endpoint: str
    concurrency: int
    samples: list[Sample]
    probes: list[float]
    probe_errors: int
    before: Meters
    after: Meters
    load_average: tuple[float, float]
    rss_peak_mb: float
    rss_end_mb: float


async def run_level(
    server: ServerProcess,
    key: str,
    endpoint: str,
    collection: str,
    questions: Sequence[str],
    concurrency: int,
    seconds: float,
    others: dict[str, psutil.Process | None],
) -> LevelRun:
    """`concurrency` clients sending `endpoint` requests back to back for `seconds`."""
    assert server.process is not None
    send = REQUESTS[endpoint]
    samples: list[Sample] = []
    probes: list[float] = []
    probe_errors = 0
    rss_peak = 0.0
    turn = itertools.count()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(REQUEST_TIMEOUT_S, connect=10)
    headers = {"Authorization": f"Bearer {key}"}
    processes = {"server": server.process, "bench": psutil.Process(), **others}
    async with (
        httpx.AsyncClient(
            base_url=server.url, headers=headers, timeout=timeout, limits=limits
        ) as client,
        httpx.AsyncClient(base_url=server.url, timeout=30) as probe_client,
    ):
        load_before = os.getloadavg()[0]
        before = Meters(processes)
        deadline = before.at + seconds

        async def client_loop() -> None:
            while time.perf_counter() < deadline:
                question = questions[next(turn) % len(questions)]
                t = time.perf_counter()
                try:
                    samples.append(await send(client, question, collection))
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    samples.append(Sample(_ms(t), f"{type(exc).__name__}: {exc}"[:200]))

        async def probe_loop() -> None:
            nonlocal probe_errors, rss_peak
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                try:
                    response = await probe_client.get("/healthz")
                    if response.status_code == 200:
                        probes.append(_ms(t))
                    else:
                        probe_errors += 1
                except httpx.HTTPError:
                    probe_errors += 1
                rss_peak = max(rss_peak, rss_mb(server.process))  # type: ignore[arg-type]
                await asyncio.sleep(PROBE_INTERVAL_S)

        await asyncio.gather(*(client_loop() for _ in range(concurrency)), probe_loop())
        after = Meters(processes)
        load_after = os.getloadavg()[0]
    rss_end = rss_mb(server.process)
    return LevelRun(
        endpoint,
        concurrency,
        samples,
        probes,
        probe_errors,
        before,
        after,
        (load_before, load_after),
        rss_peak,
        rss_end,
    )


async def warm_up(
    server: ServerProcess, key: str, endpoint: str, collection: str, questions: Sequence[str]
) -> None:
    """A few requests first, unmeasured (first use of the shard, of the model client...)."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        base_url=server.url, headers=headers, timeout=REQUEST_TIMEOUT_S
    ) as client:
        for question in list(questions)[:3]:
            sample = await REQUESTS[endpoint](client, question, collection)
            if sample.error is not None:
                raise RuntimeError(f"warm-up {endpoint} failed: {sample.error}")


def measure_server(
    server: ServerProcess,
    key: str,
    endpoints: Sequence[str],
    args: argparse.Namespace,
    questions: Sequence[str],
    others: dict[str, psutil.Process | None],
    on_level: Callable[[LevelRun], None],
) -> dict[str, Any]:
    """Every endpoint at every level on one running server, each level handed to `on_level`
    as it ends; what the server looked like before and after."""
    assert server.process is not None
    info: dict[str, Any] = {
        "startup_s": server.startup_s,
        "rss_mb_started": rss_mb(server.process),
    }
    listed = httpx.get(
        f"{server.url}/api/collections", headers={"Authorization": f"Bearer {key}"}, timeout=30
    ).json()
    info["collection"] = next((c for c in listed if c["name"] == args.collection), None)
    if not info["collection"] or not info["collection"]["chunks"]:
        raise SystemExit(f"collection {args.collection!r} is missing or empty: {listed}")
    for endpoint in endpoints:
        asyncio.run(warm_up(server, key, endpoint, args.collection, questions))
        for concurrency in args.levels:
            print(
                f"{endpoint} x{concurrency} for {args.seconds:g} s...", file=sys.stderr, flush=True
            )
            run = asyncio.run(
                run_level(
                    server,
                    key,
                    endpoint,
                    args.collection,
                    questions,
                    concurrency,
                    args.seconds,
                    others,
                )
            )
            on_level(run)
    info["rss_mb_end"] = rss_mb(server.process)
    info["log_problems"] = server.log_problems()[:20]
    return info
