"""The fault catalogue: each fault the issue lists, done to a real `citadel` command, which
must end within seconds with a message a person understands (no traceback, words naming
the cause), and leave the data consistent (checked after the fault is lifted).

- the model server down, slow, stalling mid-stream, answering errors, killed mid-answer;
  the embedded llama.cpp child killed mid-answer;
- the Qdrant server unreachable;
- the disk full while ingesting, and while writing the audit log; the data directory
  read-only (a small tmpfs in a private mount namespace: `unshare -m`, where allowed);
- the metadata database locked by another process.

The whole part runs in one `unshare -m` child (python -m bench.proof.faults WORK MODEL),
which prints its outcomes as JSON; without mount namespaces the disk faults are reported
as not run."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

QUESTION = "How do I reset my password?"
COLLECTION = "samples"
MODEL_TIMEOUT_S = 5.0  # first-token and idle limits given to the model faults
PASSWORD = "fault-proof-password"  # noqa: S105 - throw-away accounts in a temporary folder
TRACEBACK = "Traceback (most recent call last)"


@dataclass
class Outcome:
    fault: str
    command: str
    limit_s: float
    seconds: float = 0.0
    exit: int | None = None
    message: str = ""  # what the person saw: the last lines of the command's output
    clear: bool = False  # ended within the limit, no traceback, the cause named
    consistent: bool = False  # after the fault was lifted
    after: str = ""  # what the consistency check found
    ran: bool = True

    @property
    def held(self) -> bool:
        return not self.ran or (self.clear and self.consistent)


def run(work: Path, model: Path, log: Callable) -> dict[str, Any]:
    """The catalogue, in a private mount namespace when the machine allows it."""
    unshare = shutil.which("unshare")
    command = [sys.executable, "-m", "bench.proof.faults", str(work), str(model)]
    namespace = bool(unshare) and _namespaces_work(unshare)
    if namespace:
        command = [unshare or "unshare", "-m", "--propagation", "private", *command]
    log(f"faults{' in a private mount namespace' if namespace else ''}")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    for line in done.stderr.splitlines():
        log(f"  {line}")
    try:
        outcomes = json.loads(done.stdout.splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"held": False, "outcomes": [], "error": (done.stdout + done.stderr)[-3000:]}
    return {
        "held": done.returncode == 0 and all(Outcome(**o).held for o in outcomes),
        "namespace": namespace,
        "outcomes": outcomes,
    }


def _namespaces_work(unshare: str) -> bool:
    probe = subprocess.run(
        [unshare, "-m", "--propagation", "private", "true"], capture_output=True, check=False
    )
    return probe.returncode == 0


def _tool(command: list[str], **options: Any) -> subprocess.CompletedProcess[str]:
    """A system tool (cp, mount, du) by its full path."""
    return subprocess.run(
        [shutil.which(command[0]) or command[0], *command[1:]], text=True, **options
    )


# -- inside: the faults ------------------------------------------------------------------
class Lab:
    """The data directories and processes the faults are done to."""

    def __init__(self, work: Path, model: Path, mounts: bool) -> None:
        self.work, self.model, self.mounts = work, model, mounts
        self.base = work / "base"  # the samples ingested, with an administrator
        self.more = Path("samples")

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITADEL_")}
        env.update(OPENBLAS_NUM_THREADS="1", **extra)
        return env

    def citadel(
        self,
        data: Path,
        *args: str,
        stdin: str | None = None,
        timeout: float = 300,
        **env: str,
    ) -> tuple[int, str, float]:
        """A command's exit code, its output (both streams) and its seconds."""
        t = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "ui", "--data-dir", str(data), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env(**env),
            timeout=timeout,
            check=False,
        )
        return done.returncode, done.stdout + done.stderr, round(time.monotonic() - t, 2)

    def copy(self, name: str, into: Path | None = None) -> Path:
        target = (into or self.work) / name
        _tool(["cp", "-a", "--sparse=always", str(self.base), str(target)], check=True)
        return target

    def prepare(self) -> None:
        code, out, _ = self.citadel(self.base, "ingest", "samples", "-c", COLLECTION, "-q")
        if code != 0:
            raise RuntimeError(f"ingest failed: {out}")

    def points(self, data: Path) -> dict[str, tuple[int, int]]:
        code, out, _ = self.citadel(data, "collections", "--json")
        if code != 0:
            return {}
        listed = json.loads(out[out.index("{") :])["collections"]
        return {c["name"]: (c["documents"], c["chunks"]) for c in listed}


def _judge(outcome: Outcome, code: int, out: str, seconds: float, cause: str) -> None:
    outcome.exit, outcome.seconds = code, seconds
    lines = [line for line in out.splitlines() if line.strip()]
    outcome.message = " / ".join(lines[-3:])[-400:]
    outcome.clear = (
        seconds <= outcome.limit_s
        and TRACEBACK not in out
        and re.search(cause, out, re.IGNORECASE) is not None
    )


def _answers(lab: Lab, data: Path, **env: str) -> tuple[bool, str]:
    """After the fault: the same question answered in full by a working model server."""
    from tests.fake_ollama import FakeOllama, Script

    with FakeOllama() as fake:
        fake.enqueue(Script(["Use", " the", " self-service", " portal", " [1]."]))
        code, out, _ = lab.citadel(
            data, "ask", QUESTION, "-c", COLLECTION, **_model_env(fake.url), **env
        )
    return code == 0 and "self-service portal" in out, f"exit {code}"


def _model_env(url: str) -> dict[str, str]:
    return {
        "CITADEL_LLM__PROVIDER": "ollama",
        "CITADEL_LLM__MODEL": "llama3.2:3b",
        "CITADEL_LLM__HOST": url,
        "CITADEL_LLM__FIRST_TOKEN_TIMEOUT_S": str(MODEL_TIMEOUT_S),
        "CITADEL_LLM__IDLE_TIMEOUT_S": str(MODEL_TIMEOUT_S),
    }


def model_faults(lab: Lab) -> list[Outcome]:
    from tests.fake_ollama import FakeOllama, Script

    words = [f" word{i}" for i in range(200)]
    scripted = {
        "model server slow (first token after 60 s)": Script(words, delay_before_first_s=60),
        "model server stalls mid-stream": Script(words, delay_between_s=0.05, stall_after=8),
        "model server answers HTTP 500": Script([], status=500),
        "model server drops the connection mid-answer": Script(words, drop_after=8),
    }
    data = lab.copy("model")
    ask = ("ask", QUESTION, "-c", COLLECTION)
    outcomes = []
    down = Outcome("model server down", f"citadel {' '.join(ask)}", 15)
    code, out, seconds = lab.citadel(data, *ask, **_model_env(f"http://127.0.0.1:{_port()}"))
    _judge(down, code, out, seconds, r"model|reach|connect")
    outcomes.append(down)
    for fault, script in scripted.items():
        outcome = Outcome(fault, f"citadel {' '.join(ask)}", MODEL_TIMEOUT_S + 15)
        with FakeOllama() as fake:
            fake.enqueue(script)
            code, out, seconds = lab.citadel(data, *ask, **_model_env(fake.url))
        _judge(outcome, code, out, seconds, r"model")
        outcomes.append(outcome)
    outcomes.append(_model_killed(lab, data))
    outcomes.append(_embedded_killed(lab, data))
    for outcome in outcomes[:-1]:
        outcome.consistent, outcome.after = _answers(lab, data)
    return outcomes


def _port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _model_killed(lab: Lab, data: Path) -> Outcome:
    """The model server's process SIGKILLed while it streams."""
    from bench.server.harness import FakeModel, answer_tokens

    outcome = Outcome("model server killed mid-answer", f"citadel ask {QUESTION!r}", 15)
    with FakeModel(answer_tokens(400), 0.2, 0.1) as fake:
        ask = _start(lab, data, "ask", QUESTION, "-c", COLLECTION, **_model_env(fake.url))
        _first_output(ask, 60)
        time.sleep(1.0)
        assert fake.process is not None
        fake.process.kill()
        killed = time.monotonic()
        code, out = _finish(ask)
    _judge(outcome, code, out, round(time.monotonic() - killed, 2), r"model")
    return outcome


def _embedded_killed(lab: Lab, data: Path) -> Outcome:
    """The embedded llama.cpp child SIGKILLed while it writes; the next question starts it
    again."""
    outcome = Outcome("embedded model killed mid-answer", f"citadel ask {QUESTION!r}", 15)
    env = {
        "CITADEL_LLM__PROVIDER": "llamacpp",
        "CITADEL_LLM__MODEL_PATH": str(lab.model),
        "CITADEL_LLM__THREADS": "1",
        "CITADEL_LLM__IDLE_TIMEOUT_S": str(MODEL_TIMEOUT_S),
    }
    ask = _start(lab, data, "ask", QUESTION, "-c", COLLECTION, **env)
    _first_output(ask, 180)
    time.sleep(0.5)
    children = [p for p in psutil.Process(ask.pid).children(recursive=True) if _is_llama(p)]
    for child in children:
        child.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    code, out = _finish(ask)
    _judge(outcome, code, out, round(time.monotonic() - killed, 2), r"model")
    if not children:
        outcome.clear, outcome.message = False, "no llama.cpp child found to kill; " + out[-300:]
    code, out, _ = lab.citadel(data, "ask", QUESTION, "-c", COLLECTION, **env)
    outcome.consistent = code == 0 and "[" in out
    outcome.after = f"next question: exit {code}"
    return outcome


def _is_llama(process: psutil.Process) -> bool:
    try:
        return "llama" in " ".join(process.cmdline()).lower() or "xllamacpp" in process.name()
    except psutil.Error:
        return False


def _start(lab: Lab, data: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ui", "--data-dir", str(data), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=lab.env(**env),
    )


_OUTPUT: dict[int, list[str]] = {}


def _first_output(process: subprocess.Popen[str], timeout: float) -> None:
    """Waits for the answer's first words (kept for `_finish`)."""
    assert process.stdout is not None
    t = time.monotonic()
    os.set_blocking(process.stdout.fileno(), False)
    seen = _OUTPUT.setdefault(process.pid, [])
    while time.monotonic() - t < timeout and process.poll() is None:
        chunk = process.stdout.read()
        if chunk:
            seen.append(chunk)
            if len("".join(seen).strip()) > 40:
                break
        time.sleep(0.1)


def _finish(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str]:
    assert process.stdout is not None
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    os.set_blocking(process.stdout.fileno(), True)
    rest = process.stdout.read()
    return process.returncode, "".join(_OUTPUT.pop(process.pid, [])) + rest


def qdrant_unreachable(lab: Lab) -> list[Outcome]:
    url = f"http://127.0.0.1:{_port()}"
    outcomes = []
    for args in (("search", QUESTION), ("ingest", "samples", "-c", COLLECTION)):
        outcome = Outcome("Qdrant server unreachable", f"citadel {' '.join(args)}", 40)
        data = lab.copy(f"qdrant-{args[0]}")
        code, out, seconds = lab.citadel(data, *args, CITADEL_QDRANT__URL=url)
        _judge(outcome, code, out, seconds, r"qdrant")
        outcome.consistent = code != 0 and lab.points(data) == lab.points(lab.base)
        outcome.after = "the embedded store untouched"
        outcomes.append(outcome)
    return outcomes


def metadata_locked(lab: Lab) -> Outcome:
    """Another process holds the metadata database's write lock for 60 s."""
    data = lab.copy("locked")
    outcome = Outcome("metadata database locked", "citadel users add ann", 30)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(60)\n",
            str(_metadata_file(data)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        holder.stdout.readline()
        code, out, seconds = lab.citadel(
            data, "users", "add", "ann", "--password-stdin", stdin=PASSWORD + "\n"
        )
    finally:
        holder.kill()
        holder.wait()
    _judge(outcome, code, out, seconds, r"lock|busy|in use")
    code, _, _ = lab.citadel(data, "users", "add", "ann", "--password-stdin", stdin=PASSWORD + "\n")
    ok, why = _database_ok(data)
    outcome.consistent = code == 0 and ok
    outcome.after = f"the same command once released: exit {code}; {why}"
    return outcome


def _metadata_file(data: Path) -> Path:
    return data / "citadel.sqlite3"  # Settings.metadata_path


def _database_ok(data: Path) -> tuple[bool, str]:
    with sqlite3.connect(_metadata_file(data)) as db:
        check = db.execute("PRAGMA integrity_check").fetchone()[0]
    return check == "ok", f"integrity check {check}"


# -- disk faults (a small tmpfs in this process's private mount namespace) ----------------
def _mount(folder: Path, mb: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _tool(["mount", "-t", "tmpfs", "-o", f"size={mb}m", "tmpfs", str(folder)], check=True)


def _fill(folder: Path, leave_kb: int) -> Path:
    """A file taking all the free space of `folder`'s file system but `leave_kb`."""
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize - leave_kb * 1024
    filler = folder / "filler"
    with filler.open("wb") as out:
        block = b"\0" * 2**20
        while free > 0:
            written = out.write(block[: min(len(block), free)])
            free -= written
    return filler


def disk_faults(lab: Lab) -> list[Outcome]:
    base_mb = int(_size_mb(lab.base))
    disk = lab.work / "disk"
    _mount(disk, base_mb + 400)
    outcomes = []

    # Ingesting when the disk fills up: a clear message; once space is freed, the same
    # command ends as a run with room would have.
    data = lab.copy("data", disk)
    filler = _fill(disk, 256)
    ingest = ("ingest", "samples", "-c", "more")
    outcome = Outcome("disk full while ingesting", f"citadel {' '.join(ingest)}", 60)
    code, out, seconds = lab.citadel(data, *ingest)
    _judge(outcome, code, out, seconds, r"space|disk|full")
    filler.unlink()
    again, _, _ = lab.citadel(data, *ingest, "-q")
    reference = lab.copy("reference")
    lab.citadel(reference, *ingest, "-q")
    ok, why = _database_ok(data)
    outcome.consistent = again == 0 and lab.points(data) == lab.points(reference) and ok
    outcome.after = (
        f"ingested again with room: exit {again}; collections {lab.points(data)} "
        f"(a run with room: {lab.points(reference)}); {why}"
    )
    outcomes.append(outcome)

    # The audit log's write when the disk is full (adding a user is audited).
    audit_before = _audit_count(data)
    filler = _fill(disk, 0)
    outcome = Outcome("disk full while writing the audit log", "citadel users add bea", 30)
    code, out, seconds = lab.citadel(
        data, "users", "add", "bea", "--password-stdin", stdin=PASSWORD + "\n"
    )
    _judge(outcome, code, out, seconds, r"space|disk|full")
    filler.unlink()
    ok, why = _database_ok(data)
    audit_after = _audit_count(data)
    again, _, _ = lab.citadel(
        data, "users", "add", "bea", "--password-stdin", stdin=PASSWORD + "\n"
    )
    outcome.consistent = ok and audit_after in (audit_before, audit_before + 1) and again == 0
    outcome.after = (
        f"{why}; audit entries {audit_before} before, {audit_after} after (all kept); the "
        f"same command with room: exit {again}"
    )
    outcomes.append(outcome)

    # A read-only data directory: ingesting says so; searching still works.
    before = lab.points(data)
    _tool(["mount", "-o", "remount,ro", str(disk)], check=True)
    outcome = Outcome("data directory read-only", "citadel ingest samples -c other", 30)
    code, out, seconds = lab.citadel(data, "ingest", "samples", "-c", "other")
    _judge(outcome, code, out, seconds, r"read-only|read only|permission|writ")
    search_code, search_out, _ = lab.citadel(data, "search", QUESTION, "-c", COLLECTION)
    _tool(["mount", "-o", "remount,rw", str(disk)], check=True)
    outcome.consistent = lab.points(data) == before
    outcome.after = (
        f"searching while read-only: exit {search_code}"
        + ("" if search_code == 0 else f" ({search_out.strip().splitlines()[-1][:200]})")
        + f"; collections unchanged once writable: {lab.points(data) == before}"
    )
    outcomes.append(outcome)
    return outcomes


def _size_mb(folder: Path) -> float:
    done = _tool(["du", "-sm", str(folder)], capture_output=True, check=True)
    return float(done.stdout.split()[0])


def _audit_count(data: Path) -> int:
    with sqlite3.connect(_metadata_file(data)) as db:
        return int(db.execute("SELECT COUNT(*) FROM audit").fetchone()[0])


def inside(work: Path, model: Path) -> int:
    mounts = os.geteuid() == 0 and _can_mount(work)
    lab = Lab(work, model, mounts)
    lab.prepare()
    outcomes: list[Outcome] = []

    def part(name: str, make: Callable[[], list[Outcome]]) -> None:
        print(f"{name}...", file=sys.stderr, flush=True)
        try:
            found = make()
        except Exception as exc:  # a part that breaks is a finding
            found = [Outcome(name, "", 0, message=f"{type(exc).__name__}: {exc}"[:500])]
        for o in found:
            print(f"  {o.fault}: {'held' if o.held else 'NOT HELD'}", file=sys.stderr, flush=True)
        outcomes.extend(found)

    part("model", lambda: model_faults(lab))
    part("qdrant", lambda: qdrant_unreachable(lab))
    part("locked", lambda: [metadata_locked(lab)])
    if mounts:
        part("disk", lambda: disk_faults(lab))
    else:
        for fault in ("disk full while ingesting", "disk full while writing the audit log"):
            outcomes.append(Outcome(fault, "", 0, ran=False, message="no mount namespace"))
    print(json.dumps([asdict(o) for o in outcomes]))
    return 0


def _can_mount(work: Path) -> bool:
    probe = work / "probe"
    try:
        _mount(probe, 1)
    except (subprocess.CalledProcessError, OSError):
        return False
    _tool(["umount", str(probe)], check=False)
    return True


if __name__ == "__main__":
    sys.exit(inside(Path(sys.argv[1]), Path(sys.argv[2])))
