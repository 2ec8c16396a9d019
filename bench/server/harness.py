"""What the server bench measures, started and stopped: the data directory with its bench
user and key, `citadel serve` as a subprocess, and the fake model server in its own process;
plus the CPU and memory readings of those processes."""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

REQUESTS_PER_MINUTE = 1_000_000
USER = "bench"
USER_SECRET = "bench-server-load-password"  # noqa: S105 - a throw-away account in a temp dir
STARTUP_TIMEOUT_S = 300.0
MB = 1024 * 1024

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


def cpu_s(process: psutil.Process, children: bool = True) -> float:
    """CPU seconds of `process` and (unless told not to) its live children."""
    total = 0.0
    for p in (process, *(process.children(recursive=True) if children else ())):
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def rss_mb(process: psutil.Process) -> float:
    total = 0
    for p in (process, *process.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return round(total / MB, 1)


class ServerProcess:
    """`citadel serve` in a subprocess (its own session: the bench stops it, not Ctrl-C)."""

    def __init__(
        self,
        data: Path,
        log: Path,
        llm_host: str,
        requests_per_minute: int = REQUESTS_PER_MINUTE,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._args = [sys.executable, "-m", "ui", "--data-dir", str(data), "serve"]
        self._args += ["--host", "127.0.0.1", "--port", str(self.port)]
        # The bench lifts the per-user request limit (one key sends all its load) unless told.
        self._env = _env(
            CITADEL_LLM__HOST=llm_host,
            CITADEL_SERVER__REQUESTS_PER_MINUTE=str(requests_per_minute),
        )
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

    def kill(self) -> None:
        """SIGKILL the model server's process, as a crash would."""
        self._process.kill()
        self._process.join(10)

    def __exit__(self, *exc: object) -> None:
        if self._process.exitcode is not None:  # killed: setting the event could hang on a
            return  # lock the dead process held
        self._stop.set()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)


def answer_tokens(n: int) -> list[str]:
    text = ANSWER_TEXT.split()
    words = [text[i % len(text)] for i in range(n)]
    return [w if i == 0 else f" {w}" for i, w in enumerate(words)]


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the bench like Ctrl-C does: through the `finally` blocks."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
