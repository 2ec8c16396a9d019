"""Load on the team server over real HTTP: how many users can one (2-core) box serve?

    python -m bench.server [--corpus PATH | --data DIR] [--collection NAME]
                           [--seconds 20] [--concurrency 1,4,16] [--endpoints search,ask,stream]
                           [--questions FILE] [--tokens 60] [--token-ms 20]
                           [--out bench/results/server.json] [--keep]

Set-up, all under a fresh temporary directory (removed at the end unless --keep):

1. the data directory: a copy of `--data DIR` (an already-ingested one; the copy means
   the bench never writes into it), or `citadel ingest` of `--corpus` (default: the bundled
   `samples/`) into collection `--collection`;
2. an administrator `bench` and an API key, made with `citadel users add/key`;
3. the server as a subprocess, `python -m ui --data-dir DIR serve --port P`, with
   authentication on (the default) and OPENBLAS_NUM_THREADS=1: the load generator does not
   share its GIL or its cores' scheduling with it. CITADEL_SERVER__REQUESTS_PER_MINUTE is
   raised to 1,000,000, or the per-user limit (120/min) would answer 429s to the load.

Endpoints, each at every concurrency level for `--seconds` (closed loop: each of the C
clients sends its next question as soon as it has the previous answer):

- `search`: `POST /api/search` (retrieval only);
- `ask`: `POST /api/ask`, not streamed, in search mode: the model server's address is a
  closed port, so each answer is retrieval plus a refused connection, then the passages;
- `stream`: `POST /v1/chat/completions` with `stream: true`, against a fake Ollama
  (tests/fake_ollama.py, in its own process) that streams `--tokens` tokens at `--token-ms`
  per token, an answer with citation markers: the generation time is the fake's, the rest
  (retrieval, prompt, streaming, checking the citations) is the server's. A second server
  process is started for this, pointed at the fake.

Measured per level: requests, errors, throughput, latency percentiles (client side, whole
response), for streams the time to the first byte and to the first content token; the
latency of a `/healthz` probe sent every 0.2 s alongside the load (a stalled event loop or
a full thread pool shows there); the CPU used by the server, this load generator, the fake
model and the whole machine (cores: 1.0 = one core busy); the server's RSS at the end and
its peak. Questions: `--questions` (JSON lines with a "question" field, or one per line);
by default ../shared/eval/handbook-qa.jsonl for a collection named `handbook`, else ~20
questions about the samples.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

from bench.environment import environment, percentiles

REQUESTS_PER_MINUTE = 1_000_000
USER = "bench"
USER_SECRET = "bench-server-load-password"  # noqa: S105 - a throw-away account in a temp dir
HANDBOOK_QA = Path("../shared/eval/handbook-qa.jsonl")
PROBE_INTERVAL_S = 0.2
REQUEST_TIMEOUT_S = 120.0
STARTUP_TIMEOUT_S = 300.0
MB = 1024 * 1024

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

# What the fake model writes: cited and uncited sentences (the uncited ones make the server
# align them with a passage, as it does for a real model's answer).
ANSWER_TEXT = (
    "The documents answer this directly [1]. The relevant setting lives in the main "
    "configuration file, and the change takes effect once the service restarts [2]. "
    "Administrators usually check the result with the status command before going further. "
    "If the package is not installed yet, install it first and then repeat these steps "
    "[1]. The manual also lists a few exceptions."
)


# -- processes ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),  # as the Makefile exports
        "CITADEL_SERVER__REQUESTS_PER_MINUTE": str(REQUESTS_PER_MINUTE),
    }
    env.pop("CITADEL_DATA_DIR", None)
    env.pop("CITADEL_CONFIG", None)
    return {**env, **extra}


def _citadel(data: Path, *args: str, stdin: str | None = None, check: bool = True) -> str:
    """`python -m ui --data-dir DATA ARGS...`; its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "ui", "--data-dir", str(data), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=_env(),
        check=False,
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"citadel {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _cpu_s(process: psutil.Process, children: bool = True) -> float:
    """CPU seconds of `process` and (unless told not to) its live children."""
    total = 0.0
    for p in (process, *(process.children(recursive=True) if children else ())):
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def _rss_mb(process: psutil.Process) -> float:
    total = 0
    for p in (process, *process.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return round(total / MB, 1)


class ServerProcess:
    """`citadel serve` in a subprocess (its own session: the bench stops it, not Ctrl-C)."""

    def __init__(self, data: Path, log: Path, llm_host: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._args = [sys.executable, "-m", "ui", "--data-dir", str(data), "serve"]
        self._args += ["--host", "127.0.0.1", "--port", str(self.port)]
        self._env = _env(CITADEL_LLM__HOST=llm_host)
        self._popen: subprocess.Popen[bytes] | None = None
        self.process: psutil.Process | None = None
        self.startup_s = 0.0

    def __enter__(self) -> ServerProcess:
        started = time.monotonic()
        with self.log.open("wb") as out:
            self._popen = subprocess.Popen(
                self._args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self._env,
                start_new_session=True,
            )
        self.process = psutil.Process(self._popen.pid)
        try:
            while True:
                if self._popen.poll() is not None:
                    raise RuntimeError(
                        f"the server exited ({self._popen.returncode}):\n{self.tail()}"
                    )
                if time.monotonic() - started > STARTUP_TIMEOUT_S:
                    raise RuntimeError(f"the server did not start:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                        break
                time.sleep(0.2)
        except BaseException:
            self.stop()
            raise
        self.startup_s = round(time.monotonic() - started, 1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        popen, self._popen = self._popen, None
        if popen is None or popen.poll() is not None:
            return
        popen.terminate()  # uvicorn's graceful shutdown
        try:
            popen.wait(20)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(10)

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_problems(self) -> list[str]:
        """Lines of the server's log that report errors (tracebacks, ERROR, warnings)."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        keys = ("Traceback", "ERROR", "Error", "WARNING", "Exception")
        return [line for line in text.splitlines() if any(k in line for k in keys)]


def _fake_model_main(
    urls: Any, stop: Any, parent: int, tokens: list[str], first_s: float, between_s: float
) -> None:
    """The fake Ollama's process: every chat streams the same script, until `stop`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it
    from tests.fake_ollama import FakeOllama, Script

    class RepeatingFake(FakeOllama):
        def _next_script(self) -> Script:
            return Script(list(tokens), delay_before_first_s=first_s, delay_between_s=between_s)

        def _record_chat(self, body: dict[str, Any]) -> None:  # keep nothing: no growth
            pass

        def _record_call(self, method: str, path: str) -> None:
            pass

    fake = RepeatingFake().start()
    urls.put(fake.url)
    try:
        while not stop.wait(1.0):
            if os.getppid() != parent:  # the bench died without stopping it
                break
    finally:
        fake.stop()


class FakeModel:
    """tests.fake_ollama in its own process (its threads would otherwise take the load
    generator's GIL)."""

    def __init__(self, tokens: list[str], first_s: float, between_s: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._urls = ctx.Queue()
        self._stop = ctx.Event()
        self._process = ctx.Process(
            target=_fake_model_main,
            args=(self._urls, self._stop, os.getpid(), tokens, first_s, between_s),
            daemon=True,
        )
        self.url = ""
        self.process: psutil.Process | None = None

    def __enter__(self) -> FakeModel:
        self._process.start()
        try:
            self.url = self._urls.get(timeout=60)
        except BaseException:
            self.__exit__()
            raise
        self.process = psutil.Process(self._process.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)


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
def _stats(values: Sequence[float]) -> dict[str, float] | None:
    return percentiles(values, digits=1) if values else None


def _machine_busy_s() -> float:
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0))


@dataclass
class _Meters:
    """CPU seconds of the processes involved and of the machine, from one instant."""

    processes: dict[str, psutil.Process | None]
    at: float = field(default_factory=time.perf_counter)
    cpu: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The bench's children are the server and the fake model: counted on their own.
        self.cpu = {
            k: _cpu_s(p, children=k != "bench") for k, p in self.processes.items() if p is not None
        }
        self.cpu["machine"] = _machine_busy_s()

    def cores_since(self, before: _Meters) -> dict[str, float]:
        wall = self.at - before.at
        return {k: round((v - before.cpu[k]) / wall, 2) for k, v in self.cpu.items()}


async def run_level(
    server: ServerProcess,
    key: str,
    endpoint: str,
    collection: str,
    questions: Sequence[str],
    concurrency: int,
    seconds: float,
    others: dict[str, psutil.Process | None],
) -> dict[str, Any]:
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
        before = _Meters(processes)
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
                rss_peak = max(rss_peak, _rss_mb(server.process))  # type: ignore[arg-type]
                await asyncio.sleep(PROBE_INTERVAL_S)

        await asyncio.gather(*(client_loop() for _ in range(concurrency)), probe_loop())
        after = _Meters(processes)
        load_after = os.getloadavg()[0]
    rss_end = _rss_mb(server.process)
    elapsed = after.at - before.at
    ok = [s for s in samples if s.error is None]
    errors = Counter(s.error for s in samples if s.error is not None)
    return {
        "endpoint": endpoint,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "requests": len(samples),
        "errors": sum(errors.values()),
        "error_messages": dict(errors.most_common(5)),
        "throughput_rps": round(len(ok) / elapsed, 2),
        "latency_ms": _stats([s.latency_ms for s in ok]),
        "server_retrieval_ms": _stats([s.server_ms for s in ok if s.server_ms is not None]),
        "ttfb_ms": _stats([s.ttfb_ms for s in ok if s.ttfb_ms is not None]),
        "ttft_ms": _stats([s.ttft_ms for s in ok if s.ttft_ms is not None]),
        "tail_ms": _stats([s.tail_ms for s in ok if s.tail_ms is not None]),
        "mean_tokens": round(float(np.mean([s.tokens for s in ok])), 1) if ok else None,
        "outcomes": dict(Counter(s.outcome for s in ok).most_common()),
        "healthz_ms": _stats(probes),
        "healthz_errors": probe_errors,
        "cpu_cores": after.cores_since(before),
        "load_average": [round(load_before, 2), round(load_after, 2)],
        "rss_mb": {"end": rss_end, "peak": max(rss_peak, rss_end)},
        "latencies_ms": [round(s.latency_ms, 1) for s in samples],
    }


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


# -- set-up ------------------------------------------------------------------------------------
def prepare_data(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The data directory under `work`: a copy of --data, or --corpus ingested."""
    data = work / "data"
    started = time.monotonic()
    if args.data is not None:
        if not args.data.is_dir():
            raise SystemExit(f"--data {args.data}: not a directory")
        cp = shutil.which("cp")
        if cp:  # keeps the store's preallocated files sparse
            subprocess.run([cp, "-a", "--sparse=always", str(args.data), str(data)], check=True)
        else:
            shutil.copytree(args.data, data)
        source = {
            "data": str(args.data.resolve()),
            "copied_s": round(time.monotonic() - started, 1),
        }
    else:
        print(f"ingesting {args.corpus} into {args.collection}...", file=sys.stderr, flush=True)
        _citadel(data, "ingest", str(args.corpus), "-c", args.collection, "-q")
        source = {
            "corpus": str(args.corpus.resolve()),
            "ingest_s": round(time.monotonic() - started, 1),
        }
    # The user may exist already in a copied bench data directory: then only a new key.
    _citadel(
        data,
        "users",
        "add",
        USER,
        "--admin",
        "--password-stdin",
        stdin=USER_SECRET + "\n",
        check=False,
    )
    source["key"] = _citadel(data, "users", "key", USER, "--label", "bench").strip()
    return source


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


def answer_tokens(n: int) -> list[str]:
    text = ANSWER_TEXT.split()
    words = [text[i % len(text)] for i in range(n)]
    return [w if i == 0 else f" {w}" for i, w in enumerate(words)]


# -- report ------------------------------------------------------------------------------------
def _cell(stats: dict[str, float] | None, key: str) -> str:
    return f"{stats[key]:.0f}" if stats else "-"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'endpoint':<8} {'conc':>4} {'reqs':>6} {'err':>4} {'req/s':>7} {'p50':>6} {'p95':>6} "
        f"{'p99':>6} {'max':>6} {'ttfb50':>7} {'ttfb95':>7} {'hz50':>5} {'hz99':>5} "
        f"{'srvCPU':>6} {'bnchCPU':>7} {'boxCPU':>6} {'RSS MB':>7} {'peak':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lat, cpu = r["latency_ms"], r["cpu_cores"]
        lines.append(
            f"{r['endpoint']:<8} {r['concurrency']:>4} {r['requests']:>6} {r['errors']:>4} "
            f"{r['throughput_rps']:>7.1f} {_cell(lat, 'p50'):>6} {_cell(lat, 'p95'):>6} "
            f"{_cell(lat, 'p99'):>6} {_cell(lat, 'max'):>6} {_cell(r['ttfb_ms'], 'p50'):>7} "
            f"{_cell(r['ttfb_ms'], 'p95'):>7} {_cell(r['healthz_ms'], 'p50'):>5} "
            f"{_cell(r['healthz_ms'], 'p99'):>5} {cpu['server']:>6.2f} {cpu['bench']:>7.2f} "
            f"{cpu['machine']:>6.2f} {r['rss_mb']['end']:>7.0f} {r['rss_mb']['peak']:>6.0f}"
        )
    return "\n".join(lines)


def notes(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in rows:
        extra = []
        if r["outcomes"]:
            extra.append(", ".join(f"{k} {v}" for k, v in r["outcomes"].items()))
        if r["endpoint"] == "stream" and r["ttft_ms"]:
            extra.append(f"first token p50 {r['ttft_ms']['p50']:.0f} ms")
            tail = r["tail_ms"]
            extra.append(f"last token to end p50/p95 {tail['p50']:.0f}/{tail['p95']:.0f} ms")
            extra.append(f"{r['mean_tokens']} content chunks per stream")
        if r["server_retrieval_ms"]:
            extra.append(f"server-side retrieval p50 {r['server_retrieval_ms']['p50']:.0f} ms")
        if "fake_model" in r["cpu_cores"]:
            extra.append(f"fake model CPU {r['cpu_cores']['fake_model']:.2f}")
        extra.append(f"load avg {r['load_average'][0]} -> {r['load_average'][1]}")
        out.append(f"{r['endpoint']:<6} x{r['concurrency']:<3} " + "; ".join(extra))
        for message, count in r["error_messages"].items():
            out.append(f"    {count} x {message}")
    return out


# -- driver ------------------------------------------------------------------------------------
@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the bench like Ctrl-C does: through the `finally` blocks."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def measure_server(
    server: ServerProcess,
    key: str,
    endpoints: Sequence[str],
    args: argparse.Namespace,
    questions: Sequence[str],
    others: dict[str, psutil.Process | None],
    on_row: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    assert server.process is not None
    info: dict[str, Any] = {
        "startup_s": server.startup_s,
        "rss_mb_started": _rss_mb(server.process),
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
            row = asyncio.run(
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
            on_row(row)
    info["rss_mb_end"] = _rss_mb(server.process)
    info["log_problems"] = server.log_problems()[:20]
    return info


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--corpus", type=Path, default=Path("samples"), help="folder to ingest")
    source.add_argument("--data", type=Path, help="an ingested data directory (copied first)")
    parser.add_argument("--collection", default=None, help="default: bench (handbook with --data)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per endpoint and level")
    parser.add_argument("--concurrency", default="1,4,16", help="concurrent clients per level")
    parser.add_argument("--endpoints", default="search,ask,stream")
    parser.add_argument("--questions", type=Path, help="JSON lines with 'question', or plain lines")
    parser.add_argument("--tokens", type=int, default=60, help="tokens the fake model streams")
    parser.add_argument("--token-ms", type=float, default=20.0, help="fake model: ms per token")
    parser.add_argument("--first-token-ms", type=float, default=0.0, help="fake model: first delay")
    parser.add_argument("--out", type=Path, default=Path("bench/results/server.json"))
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    if args.collection is None:
        args.collection = "handbook" if args.data is not None else "bench"
    args.levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    endpoints = [e.strip() for e in args.endpoints.split(",") if e.strip()]
    if not args.levels or min(args.levels) < 1 or not set(endpoints) <= set(REQUESTS):
        parser.error(f"concurrency levels must be >= 1; endpoints among {', '.join(REQUESTS)}")
    questions, questions_from = load_questions(args.questions, args.collection)

    report: dict[str, Any] = {
        "environment": environment("uvicorn", "fastapi", "httpx"),
        "collection": args.collection,
        "questions": {"from": questions_from, "count": len(questions)},
        "settings": {
            "CITADEL_SERVER__REQUESTS_PER_MINUTE": REQUESTS_PER_MINUTE,
            "OPENBLAS_NUM_THREADS": "1",
            "seconds_per_level": args.seconds,
            "fake_model": {
                "tokens": args.tokens,
                "ms_per_token": args.token_ms,
                "first_token_ms": args.first_token_ms,
            },
        },
        "servers": {},
        "runs": [],
    }
    rows: list[dict[str, Any]] = report["runs"]
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def on_row(row: dict[str, Any]) -> None:
        rows.append(row)
        args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
        print(table([row]).splitlines()[-1], file=sys.stderr, flush=True)

    work = Path(tempfile.mkdtemp(prefix="citadel-bench-server-"))
    try:
        with _sigterm_as_interrupt():
            prepared = prepare_data(args, work)
            key = prepared.pop("key")
            report["data"] = prepared
            data = work / "data"
            plain = [e for e in endpoints if e != "stream"]
            if plain:  # search mode: the model server's address is a closed port
                closed = f"http://127.0.0.1:{free_port()}"
                with ServerProcess(data, work / "server-search.log", closed) as server:
                    report["servers"]["search_mode"] = measure_server(
                        server, key, plain, args, questions, {}, on_row
                    )
            if "stream" in endpoints:
                delay_s = args.token_ms / 1000
                with (
                    FakeModel(
                        answer_tokens(args.tokens), args.first_token_ms / 1000, delay_s
                    ) as fake,
                    ServerProcess(data, work / "server-stream.log", fake.url) as server,
                ):
                    report["servers"]["fake_model"] = measure_server(
                        server,
                        key,
                        ["stream"],
                        args,
                        questions,
                        {"fake_model": fake.process},
                        on_row,
                    )
    except KeyboardInterrupt:
        print("interrupted: servers stopped", file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    floor = (args.tokens - 1) * args.token_ms + args.first_token_ms
    servers: list[dict[str, Any]] = list(report["servers"].values())
    collection = (servers[0].get("collection") if servers else None) or {}
    print(
        f"collection {args.collection}: {collection.get('documents')} documents, "
        f"{collection.get('chunks')} chunks\n"
    )
    print(table(rows))
    print()
    for line in notes(rows):
        print(line)
    print()
    for name, info in report["servers"].items():
        print(
            f"server ({name}): started in {info['startup_s']} s; RSS {info['rss_mb_started']} MB "
            f"after start, {info['rss_mb_end']} MB at the end; "
            f"{len(info['log_problems'])} error/warning lines in its log"
        )
        for line in info["log_problems"][:5]:
            print(f"    {line[:160]}")
    print(
        f"\nlatencies in ms (client side, whole response); ttfb: first byte of a stream's body; "
        f"hz: /healthz probe every {PROBE_INTERVAL_S} s during the load; CPU in cores "
        f"(server process, this load generator, whole machine of {os.cpu_count()} CPUs)."
    )
    if "stream" in endpoints:
        print(
            f"stream: the fake model takes {floor:.0f} ms per answer ({args.tokens} tokens, "
            f"{args.token_ms:g} ms apart): the rest of a stream's latency is the server's."
        )
    print(
        f"questions: {questions_from} ({len(questions)}); per-user rate limit raised to "
        f"{REQUESTS_PER_MINUTE:,}/min (CITADEL_SERVER__REQUESTS_PER_MINUTE) for the bench."
    )
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
