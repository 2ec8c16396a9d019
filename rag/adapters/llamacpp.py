"""Answers from llama.cpp embedded: Citadel runs llama.cpp's own server (the `xllamacpp`
package: prebuilt, MIT, no compiler) in a child process on a free loopback port, serving the
GGUF file `llm.model_path`, and speaks to it as to any OpenAI-compatible server.

The child stops with Citadel: it reads its standard input until the pipe closes, which
happens when Citadel closes the generator or exits, however it exits. If the child dies,
the next question starts a new one; if that cannot start, the question gets a clear error
(and search mode), never a hang.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from rag.adapters.openai_compat import OpenAICompatibleGenerator
from rag.errors import ConfigurationError, GenerationTimeout, GeneratorUnavailable
from rag.generation import Piece
from rag.settings import LlmSettings
from rag.types import Message

LOG_LINES_KEPT = 40  # of the child's log, quoted when it fails to start
KEY_VARIABLE = "CITADEL_LLAMACPP_API_KEY"  # the child's API key, set by the parent


def default_threads() -> int:
    """The cores that are idle when the model starts, at least one. On 2 cores, measured
    with Qwen2.5-Coder-1.5B: quiet, 2 threads answered the demo's questions first in
    3.8-5.4 s against 7.3-10.2 s with 1; busy, 2 threads made generation 4x slower than 1."""
    cores = os.cpu_count() or 1
    busy = round(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
    return max(1, min(cores, cores - busy))


class EmbeddedLlamaCpp(OpenAICompatibleGenerator):
    """The Generator port on a llama.cpp server that Citadel starts and stops itself."""

    provider = "the embedded llama.cpp"

    def __init__(self, settings: LlmSettings) -> None:
        path = settings.model_path
        if path is None:
            raise ConfigurationError(
                "the embedded llama.cpp needs a GGUF file: set CITADEL_LLM__MODEL_PATH "
                "(`make models` puts some under models/)"
            )
        self._path = Path(path).expanduser().resolve()
        if not self._path.is_file():
            raise ConfigurationError(
                f"no GGUF file at {self._path} (CITADEL_LLM__MODEL_PATH): run `make models`, "
                "or point it at a .gguf file"
            )
        # Named by its file: the setting `llm.model` names models of the other providers.
        super().__init__(settings, self._path.stem, host="http://127.0.0.1:0")
        self._child: subprocess.Popen[str] | None = None
        self._key = ""
        self._log_path: Path | None = None
        self._start_lock = threading.Lock()
        atexit.register(self.close)

    @property
    def _named(self) -> str:
        # Its address is Citadel's own business: the person knows the model by its file.
        return f"the embedded llama.cpp ({self._path.name})"

    def _unreachable(self) -> str:
        return (
            f"the embedded llama.cpp ({self._path.name}) stopped answering; it is started "
            "again with the next question"
        )

    # -- the child process ---------------------------------------------------------------
    def _running(self) -> None:
        """Start the child unless it runs; wait until it serves (or fail clearly)."""
        with self._start_lock:
            if self._child is not None and self._child.poll() is None:
                return
            self._stop_child()
            if self._log_path is not None:  # the last child's, quoted when it failed
                self._log_path.unlink(missing_ok=True)
            port = _free_port()
            log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (kept while the child runs)
                "w+", prefix="citadel-llamacpp-", suffix=".log", delete=False
            )
            self._log_path = Path(log.name)
            threads = self._settings.threads or default_threads()
            command = [
                sys.executable,
                "-m",
                "rag.adapters.llamacpp_server",
                "--model",
                str(self._path),
                "--alias",
                self.model,
                "--port",
                str(port),
                "--ctx",
                str(self._settings.max_context_tokens),
                "--threads",
                str(threads),
            ]
            # A key of this start only: no other local program (a web page included) can
            # use the model server. Passed in the environment, not visible in `ps`.
            self._key = secrets.token_urlsafe(24)
            child = subprocess.Popen(
                command,
                env={**os.environ, KEY_VARIABLE: self._key},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
            log.close()
            self._child = child
            self._use_root(f"http://127.0.0.1:{port}")
            self._wait_ready(child)

    def _wait_ready(self, child: subprocess.Popen[str]) -> None:
        allowed = self._settings.first_token_timeout_s
        assert child.stdout is not None
        ready = _read_line_until(child.stdout, time.monotonic() + allowed)
        if ready == "ready":
            return
        # Quoted before the child is stopped: its last lines would be about stopping.
        why = self._log_tail() or "no message"
        # Still loading, it reads no signal until the model is in memory: killed, not waited on.
        self._stop_child(hung=ready is None)
        if ready is None:  # still loading at the deadline
            raise GeneratorUnavailable(
                f"the embedded llama.cpp did not load {self._path.name} within {allowed:g} s "
                "(CITADEL_LLM__FIRST_TOKEN_TIMEOUT_S, which includes loading the model)"
            )
        raise GeneratorUnavailable(
            f"the embedded llama.cpp did not start with {self._path.name}: {why}"
        )

    def _log_tail(self) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        with self._log_path.open(encoding="utf-8", errors="replace") as log:
            lines = deque((line.strip() for line in log if line.strip()), LOG_LINES_KEPT)
        errors = [line for line in lines if " E " in f" {line} " or "error" in line.lower()]
        return " | ".join((errors or list(lines))[-3:])

    def _stop_child(self, hung: bool = False) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        if hung:
            child.kill()  # it does not answer: it would not read its signal either
        if child.stdin is not None:
            with contextlib.suppress(OSError):
                child.stdin.close()  # the child's signal to stop
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()

    def close(self) -> None:
        with self._start_lock:
            self._stop_child()
        if self._log_path is not None:
            self._log_path.unlink(missing_ok=True)

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        child = self._child
        return child.pid if child is not None and child.poll() is None else None

    # -- the port, with the child running ------------------------------------------------
    def check(self) -> None:
        self._running()
        super().check()

    def _server_context_length(self) -> int | None:
        self._running()
        return super()._server_context_length()

    def _tokenize(self, text: str) -> int | None:
        self._running()
        return super()._tokenize(text)

    def _api_key(self) -> str | None:
        return self._key or None

    def _open(
        self, messages: Sequence[Message], num_ctx: int, answer_tokens: int | None = None
    ) -> Iterator[Piece]:
        self._running()
        yield from super()._open(messages, num_ctx, answer_tokens)

    def stream(
        self, messages: Sequence[Message], num_ctx: int, answer_tokens: int | None = None
    ) -> Iterator[Piece]:
        try:
            yield from super().stream(messages, num_ctx, answer_tokens)
        except GenerationTimeout:
            # A child that stopped answering is replaced on the next question, not waited on.
            with self._start_lock:
                self._stop_child(hung=True)
            raise


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _read_line_until(stream: IO[str], deadline: float) -> str | None:
    """The child's first line of standard output ("" if it ended without one), or None if
    none comes by the deadline."""
    lines: list[str] = []

    def read() -> None:
        with contextlib.suppress(ValueError, OSError):  # closed when the child is stopped
            lines.append(stream.readline())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(max(0.0, deadline - time.monotonic()))
    return lines[0].strip() if lines else None
