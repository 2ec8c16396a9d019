"""A fake Ollama server for tests: speaks the real REST API over real HTTP.

Ollama itself cannot run here, so adapters are tested against this instead. The wire format
follows what the Ollama server sends and what the official ``ollama`` Python client (0.6.x)
parses:

- ``POST /api/chat``, streaming (``stream`` true or absent): ``application/x-ndjson`` with
  chunked transfer encoding, one JSON object per line, flushed line by line, ending with a
  ``"done": true`` line carrying ``done_reason`` and the counters/durations. ``stream: false``:
  one ``application/json`` object with the whole content. Errors are ``{"error": "..."}`` with
  a non-2xx status (the client turns them into ``ollama.ResponseError``).
- ``POST /api/chat`` with no messages answers like Ollama's load/unload request: a single
  ``done`` object with ``done_reason`` ``"load"`` (``"unload"`` when ``keep_alive`` is 0); it
  consumes no script.
- ``GET /api/tags``, ``POST /api/show`` (with the model's ``capabilities``), ``GET
  /api/version``, ``GET /`` ("Ollama is running").

Each ``/api/chat`` call with messages consumes the next enqueued :class:`Script` (FIFO), or a
default one answering ``"OK"``. A chat for an unknown model is a 404 and consumes no script.

Reasoning, as Ollama 0.12 does it (server/routes.go ChatHandler). A model is a
:class:`ModelSpec` (context length, capabilities, family); ``FakeOllama({name: ctx})`` still
works and gives a plain ``["completion"]`` llama model. The ``think`` field of a chat is kept
in :attr:`FakeOllama.requests` as sent (absent when the client sent none):

- a model with the ``thinking`` capability thinks unless ``think`` is ``false`` (absent means
  true); it streams the script's ``thinking`` tokens as ``message.thinking`` lines (content
  ``""``) before the content tokens, and a non-streamed answer carries them whole in
  ``message.thinking``. gpt-oss (family ``gptoss``, parsed by Ollama's harmony parser) cannot
  switch reasoning off: it thinks even with ``think: false``;
- ``think`` true or a level sent to a model without the capability is a 400
  ``"<model>" does not support thinking`` (``false`` is accepted), even for a load request;
- a level (``"low"``...) is for gpt-oss only: another thinking model answers 400
  ``think value "low" is not supported for this model``; a value that is neither a boolean
  nor a level is a 400 before anything else;
- reasoning tokens count in ``eval_count``, and ``stall_after``/``drop_after`` count every
  token streamed, reasoning first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class ModelSpec:
    """A model pulled on the fake server, as /api/show and /api/tags describe it."""

    context_length: int = 131072
    capabilities: tuple[str, ...] = ("completion",)
    family: str = "llama"  # details.family, and the model_info key prefix (architecture)
    parameter_size: str = "3.2B"
    quantization_level: str = "Q4_K_M"

    @property
    def thinks(self) -> bool:
        return "thinking" in self.capabilities

    @property
    def levels_only(self) -> bool:
        """gpt-oss: takes reasoning levels (Ollama's harmony parser) and cannot stop reasoning."""
        return self.family in HARMONY_FAMILIES


HARMONY_FAMILIES = ("gptoss", "gpt-oss")
THINK_LEVELS = ("high", "medium", "low")
# Models as Ollama 0.12 shows them.
LLAMA = ModelSpec()
QWEN3 = ModelSpec(40960, ("completion", "tools", "thinking"), "qwen3", "8.2B")
GPT_OSS = ModelSpec(131072, ("completion", "tools", "thinking"), "gptoss", "20.9B", "MXFP4")

DEFAULT_MODELS: dict[str, int | ModelSpec] = {"llama3.2:3b": 131072}
OLLAMA_VERSION = "0.12.6"
STALL_LIMIT_S = 60.0
_MODIFIED_AT = "2025-01-15T10:20:30.123456789Z"
_MODEL_SIZE = 2019393189  # llama3.2:3b Q4_K_M on disk
_TEMPLATE = (
    "<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>"
    "{{ range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n"
    "{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
)
_PARAMETERS = (
    'stop                           "<|start_header_id|>"\n'
    'stop                           "<|end_header_id|>"\n'
    'stop                           "<|eot_id|>"'
)


@dataclass
class Script:
    """How the next ``/api/chat`` call behaves."""

    tokens: list[str]  # streamed one NDJSON line per token
    delay_before_first_s: float = 0  # sleep before the first token (model loading)
    delay_between_s: float = 0
    # After this many tokens (reasoning included), stop sending (connection kept open) until
    # the server stops or STALL_LIMIT_S passes; then the connection is closed without the
    # final line.
    stall_after: int | None = None
    # After this many tokens (reasoning included), close the socket abruptly (no final done
    # line, no chunk terminator).
    drop_after: int | None = None
    prompt_eval_count: int | None = None  # reported in the final line; default: prompt word count
    status: int = 200  # non-200: {"error": "..."} body with that status, nothing streamed
    # Reasoning, streamed first (message.thinking) when the model thinks for the request.
    thinking: list[str] = field(default_factory=list)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _not_found(name: str) -> str:
    return f'model "{name}" not found, try pulling it first'


def _error_text(status: int) -> str:
    if status == HTTPStatus.INTERNAL_SERVER_ERROR:
        return "llama runner process has terminated: exit status 2"
    with contextlib.suppress(ValueError):
        return HTTPStatus(status).phrase.lower()
    return f"error {status}"


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _details(spec: ModelSpec) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": spec.family,
        "families": [spec.family],
        "parameter_size": spec.parameter_size,
        "quantization_level": spec.quantization_level,
    }


def _think_value_error(think: Any) -> str | None:
    """Ollama's error for a `think` it cannot read (api.ThinkValue.UnmarshalJSON), if any."""
    if think is None or isinstance(think, bool):
        return None
    if isinstance(think, str):
        if think in THINK_LEVELS:
            return None
        return (
            f"invalid think value: {json.dumps(think)} "
            '(must be "high", "medium", "low", true, or false)'
        )
    return 'think must be a boolean or string ("high", "medium", "low", true, or false)'


def _think_on(think: Any) -> bool:
    """api.ThinkValue.Bool(): true, or any level."""
    return think is True or think in THINK_LEVELS


def _prompt_words(messages: list[Any]) -> int:
    words = 0
    for message in messages:
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            words += len(message["content"].split())
    return words


def _is_zero_keep_alive(value: Any) -> bool:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value == 0
    if isinstance(value, str):
        return value.strip() in {"0", "0s", "0m", "0h"}
    return False


class _Aborted(Exception):
    """The server is stopping or the client went away: end the connection without more output."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # FakeOllama.stop() joins the handler threads itself, with a bound

    def __init__(self, fake: FakeOllama) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        self.fake._track_thread(thread)
        thread.start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up (timeouts, dropped streams) is expected here: stay quiet about it.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Ollama"
    sys_version = ""
    server: _Server
    _done_reason = "stop"  # of the chat being answered

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def fake(self) -> FakeOllama:
        return self.server.fake

    def setup(self) -> None:
        super().setup()
        self.fake._track_connection(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.fake._track_connection(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send_json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_error(self, status: int, message: str) -> None:
        self._send_json(status, {"error": message})

    def _read_json(self) -> dict[str, Any] | None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send_error(HTTPStatus.BAD_REQUEST, "invalid character in request body")
            return None
        if not isinstance(body, dict):
            self._send_error(HTTPStatus.BAD_REQUEST, "request body must be a JSON object")
            return None
        return body

    def _wait(self, seconds: float) -> None:
        if seconds > 0 and self.fake._stopping.wait(seconds):
            raise _Aborted

    def _abort_connection(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    # -- routing ----------------------------------------------------------------------------

    def do_GET(self) -> None:
        self.fake._record_call(self.command, self.path)
        if self.path == "/":
            self._send_text(HTTPStatus.OK, "Ollama is running")
        elif self.path == "/api/version":
            self._send_json(HTTPStatus.OK, {"version": OLLAMA_VERSION})
        elif self.path == "/api/tags":
            self._send_json(HTTPStatus.OK, {"models": self.fake._tags()})
        else:
            self._send_text(HTTPStatus.NOT_FOUND, "404 page not found")

    def do_HEAD(self) -> None:
        self.fake._record_call(self.command, self.path)
        if self.path == "/":
            self._send_text(HTTPStatus.OK, "Ollama is running")
        else:
            self._send_text(HTTPStatus.NOT_FOUND, "404 page not found")

    def do_POST(self) -> None:
        self.fake._record_call(self.command, self.path)
        if self.path == "/api/chat":
            self._chat()
        elif self.path == "/api/show":
            self._show()
        else:
            self._send_text(HTTPStatus.NOT_FOUND, "404 page not found")

    # -- endpoints --------------------------------------------------------------------------

    def _show(self) -> None:
        body = self._read_json()
        if body is None:
            return
        name = body.get("model") or body.get("name") or ""
        if not name:
            self._send_error(HTTPStatus.BAD_REQUEST, "model is required")
            return
        spec = self.fake.models.get(name)
        if spec is None:
            self._send_error(HTTPStatus.NOT_FOUND, _not_found(name))
            return
        arch = spec.family
        self._send_json(
            HTTPStatus.OK,
            {
                "modelfile": f"# Modelfile generated by fake ollama\nFROM {name}\n"
                f'TEMPLATE """{_TEMPLATE}"""\n{_PARAMETERS}\n',
                "parameters": _PARAMETERS,
                "template": _TEMPLATE,
                "details": _details(spec),
                "model_info": {
                    "general.architecture": arch,
                    "general.basename": name.split(":")[0],
                    "general.file_type": 15,
                    "general.parameter_count": 3212749888,
                    "general.quantization_version": 2,
                    f"{arch}.attention.head_count": 24,
                    f"{arch}.attention.head_count_kv": 8,
                    f"{arch}.block_count": 28,
                    f"{arch}.context_length": spec.context_length,
                    f"{arch}.embedding_length": 3072,
                    f"{arch}.feed_forward_length": 8192,
                    f"{arch}.rope.freq_base": 500000,
                    f"{arch}.vocab_size": 128256,
                    "tokenizer.ggml.model": "gpt2",
                },
                "capabilities": list(spec.capabilities),
                "modified_at": _MODIFIED_AT,
            },
        )

    def _chat(self) -> None:
        body = self._read_json()
        if body is None:
            return
        self.fake._record_chat(body)
        think = body.get("think")
        if (invalid := _think_value_error(think)) is not None:
            self._send_error(HTTPStatus.BAD_REQUEST, invalid)
            return
        name = body.get("model") or ""
        if not name:
            self._send_error(HTTPStatus.BAD_REQUEST, "model is required")
            return
        spec = self.fake.models.get(name)
        if spec is None:
            self._send_error(HTTPStatus.NOT_FOUND, _not_found(name))
            return
        if not spec.thinks and _think_on(think):
            self._send_error(HTTPStatus.BAD_REQUEST, f'"{name}" does not support thinking')
            return
        messages = body.get("messages") or []
        if not messages:
            # Ollama's "load" / "unload" request: one plain JSON object, even when streaming.
            reason = "unload" if _is_zero_keep_alive(body.get("keep_alive")) else "load"
            self._send_json(
                HTTPStatus.OK,
                {
                    "model": name,
                    "created_at": _now(),
                    "message": {"role": "assistant", "content": ""},
                    "done_reason": reason,
                    "done": True,
                },
            )
            return
        if isinstance(think, str) and not spec.levels_only:
            self._send_error(
                HTTPStatus.BAD_REQUEST,
                f"think value {json.dumps(think)} is not supported for this model",
            )
            return
        script = self.fake._next_script()
        prompt_eval_count = script.prompt_eval_count
        if prompt_eval_count is None:
            prompt_eval_count = max(1, _prompt_words(messages))
        # A thinking model thinks unless told not to (absent means true); gpt-oss always does.
        thinks = spec.thinks and (think is not False or spec.levels_only)
        thinking = list(script.thinking) if thinks else []
        # Like Ollama, at most `num_predict` tokens (reasoning included), then "length".
        predict = (body.get("options") or {}).get("num_predict")
        self._done_reason = "stop"
        if isinstance(predict, int) and 0 < predict < len(thinking) + len(script.tokens):
            self._done_reason = "length"
            thinking = thinking[:predict]
            script = replace(script, tokens=script.tokens[: predict - len(thinking)])
        try:
            if script.status != HTTPStatus.OK:
                self._wait(script.delay_before_first_s)
                self._send_error(script.status, _error_text(script.status))
            elif body.get("stream", True) is False:
                self._chat_whole(name, script, thinking, prompt_eval_count)
            else:
                self._chat_stream(name, script, thinking, prompt_eval_count)
        except (_Aborted, OSError):
            self._abort_connection()

    def _final(
        self, name: str, message: dict[str, str], started: float, prompt_eval_count: int, n: int
    ) -> dict[str, Any]:
        total = max(1, int((time.monotonic() - started) * 1e9))
        return {
            "model": name,
            "created_at": _now(),
            "message": {"role": "assistant", **message},
            "done_reason": self._done_reason,
            "done": True,
            "total_duration": total,
            "load_duration": total // 10,
            "prompt_eval_count": prompt_eval_count,
            "prompt_eval_duration": total // 5,
            "eval_count": n,
            "eval_duration": total // 2,
        }

    def _chat_whole(
        self, name: str, script: Script, thinking: list[str], prompt_eval_count: int
    ) -> None:
        started = time.monotonic()
        n = len(thinking) + len(script.tokens)
        self._cut(script, 0)
        self._wait(script.delay_before_first_s)
        for i in range(n):
            if i:
                self._wait(script.delay_between_s)
            self._cut(script, i + 1)
        message = {"content": "".join(script.tokens)}
        if thinking:
            message["thinking"] = "".join(thinking)
        self._send_json(HTTPStatus.OK, self._final(name, message, started, prompt_eval_count, n))

    def _chat_stream(
        self, name: str, script: Script, thinking: list[str], prompt_eval_count: int
    ) -> None:
        started = time.monotonic()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        self._cut(script, 0)
        self._wait(script.delay_before_first_s)
        pieces = [{"content": "", "thinking": t} for t in thinking]
        pieces += [{"content": t} for t in script.tokens]
        for i, piece in enumerate(pieces):
            if i:
                self._wait(script.delay_between_s)
            line = {
                "model": name,
                "created_at": _now(),
                "message": {"role": "assistant", **piece},
                "done": False,
            }
            self._write_chunk(line)
            self._cut(script, i + 1)
        final = self._final(name, {"content": ""}, started, prompt_eval_count, len(pieces))
        self._write_chunk(final)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _write_chunk(self, obj: Any) -> None:
        data = json.dumps(obj).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _cut(self, script: Script, sent: int) -> None:
        """Apply the script's drop/stall once `sent` tokens have gone out."""
        if script.drop_after is not None and sent >= script.drop_after:
            raise _Aborted
        if script.stall_after is not None and sent >= script.stall_after:
            self.fake._stopping.wait(STALL_LIMIT_S)
            raise _Aborted


class FakeOllama:
    """Fake Ollama on 127.0.0.1 (random port), served from a background thread.

    Use as a context manager: ``with FakeOllama() as fake: ollama.Client(host=fake.url)``.
    """

    def __init__(self, models: Mapping[str, int | ModelSpec] = DEFAULT_MODELS) -> None:
        """`models`: name -> ModelSpec, or just its context length (a plain llama model)."""
        self.models: dict[str, ModelSpec] = {
            name: spec if isinstance(spec, ModelSpec) else replace(LLAMA, context_length=spec)
            for name, spec in models.items()
        }
        # JSON bodies of /api/chat as received (`think` included when sent), plus "path"
        self.requests: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []  # (method, path) of every request, in order
        self.url = ""
        self._scripts: deque[Script] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None

    # -- public -----------------------------------------------------------------------------

    def enqueue(self, script: Script) -> None:
        with self._lock:
            self._scripts.append(script)

    def reset(self) -> None:
        """Forget the requests and calls seen and the scripts not played yet (a server shared
        by several tests)."""
        with self._lock:
            self._scripts.clear()
            self.requests.clear()
            self.calls.clear()

    def start(self) -> FakeOllama:
        if self._server is not None:
            raise RuntimeError("FakeOllama already started")
        self._stopping.clear()
        self._server = _Server(self)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._serve_thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._serve_thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving; ends stalled streams and idle keep-alive connections. Does not hang."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        if self._serve_thread is not None:
            self._serve_thread.join(timeout)
        with self._lock:
            connections = list(self._connections)
            threads = list(self._threads)
        for conn in connections:  # unblocks handlers waiting on keep-alive reads or writes
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        server.server_close()

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- used by the handler ----------------------------------------------------------------

    def _next_script(self) -> Script:
        with self._lock:
            return self._scripts.popleft() if self._scripts else Script(tokens=["OK"])

    def _record_chat(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append({**body, "path": "/api/chat"})

    def _record_call(self, method: str, path: str) -> None:
        with self._lock:
            self.calls.append((method, path))

    def _track_thread(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)

    def _track_connection(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add and self._stopping.is_set():  # raced with stop(): end it now
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            elif add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _tags(self) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "model": name,
                "modified_at": _MODIFIED_AT,
                "size": _MODEL_SIZE,
                "digest": _digest(name),
                "details": _details(spec),
            }
            for name, spec in self.models.items()
        ]
