"""The fault catalogue: each fault the issue lists, done to a real `citadel` command, which
must end within seconds with a message a person understands (no traceback, words naming
the cause), and leave the data consistent (checked after the fault is lifted).

- the model server down, slow, stalling mid-stream, answering errors, killed mid-answer;
  the embedded llama.cpp child killed mid-answer;
- the Qdrant server unreachable;
- the disk full while ingesting, and while writing the audit log; the data directory
  read-only (a small tmpfs in a private mount namespace: `unshare -m`, where allowed);
- the metadata database locked by another process.

The whole part runs in one `unshare -m` child (python -m bench.proof.faults WORK MODEL
CORPUS),
which prints its outcomes as JSON; without mount namespaces the disk faults are reported
as not run."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

QUESTION = "How do I reset my password?"
COLLECTION = "samples"
ASK = ("ask", QUESTION, "-c", COLLECTION)
MODEL_TIMEOUT_S = 5.0  # first-token and idle limits given to the model faults
PASSWORD = "fault-proof-password"  # noqa: S105 - throw-away accounts in a temporary folder
TRACEBACK = "Traceback (most recent call last)"
# The sentence a person needs: which server, and that the answer is missing or incomplete.
MODEL_CAUSE = r"(model|ollama) server|embedded llama\.cpp"
FILLED_LEAVES_MB = 40  # free space left by the program filling the disk: below the floor
ANSWER_STARTED_CHARS = 60  # printed by `citadel ask` once the answer is being written


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
        """A fault not done here (no mount namespace) proves nothing: not held."""
        return self.ran and self.clear and self.consistent


def run(work: Path, model: Path, corpus: Path, log: Callable) -> dict[str, Any]:
    """The catalogue, in a private mount namespace when the machine allows it."""
    unshare = shutil.which("unshare")
    command = [sys.executable, "-m", "bench.proof.faults", str(work), str(model), str(corpus)]
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

    def __init__(self, work: Path, model: Path, corpus: Path, mounts: bool) -> None:
        self.work, self.model, self.mounts = work, model, mounts
        self.base = work / "base"  # the samples ingested, with an administrator
        self.corpus = corpus  # ingested while the disk fills up
        self.corpus_mb = int(_size_mb(corpus))

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITADEL_")}
        env.update(OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
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


def _shown(args: tuple[str, ...]) -> str:
    return shlex.join(("citadel", *args))


# The lines where `citadel` tells what went wrong: an error, or a notice under an answer.
_TELLING = re.compile(r"^(error:|Search mode:|The answer is incomplete:)")


def _judge(
    outcome: Outcome, code: int, out: str, seconds: float, cause: str, exit_code: int
) -> None:
    """Clear: the command ended within the limit with `exit_code`, no traceback, and the
    line telling what went wrong names `cause` (not any line of the output: a progress line
    may well contain "space" or "written")."""
    outcome.exit, outcome.seconds = code, seconds
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    telling = [line for line in lines if _TELLING.match(line)]
    outcome.message = (telling[-1] if telling else " / ".join(lines[-3:]))[-400:]
    outcome.clear = (
        seconds <= outcome.limit_s
        and code == exit_code
        and TRACEBACK not in out
        and any(re.search(cause, line, re.IGNORECASE) for line in telling)
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


Check = tuple[str, Callable[[], Outcome]]  # a fault's name, and the check doing it


def model_faults(lab: Lab) -> list[Check]:
    """One check per model fault; each asks the question, then asks it again of a working
    model server (the consistency check: nothing stuck, nothing broken)."""
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

    def down() -> Outcome:
        outcome = Outcome("model server down", _shown(ask), 15)
        closed = f"http://127.0.0.1:{_port()}"
        code, out, seconds = lab.citadel(data, *ask, **_model_env(closed))
        _judge(outcome, code, out, seconds, MODEL_CAUSE, 0)
        outcome.consistent, outcome.after = _answers(lab, data)
        return outcome

    def play(fault: str, script: Script) -> Outcome:
        outcome = Outcome(fault, _shown(ask), MODEL_TIMEOUT_S + 15)
        with FakeOllama() as fake:
            fake.enqueue(script)
            code, out, seconds = lab.citadel(data, *ask, **_model_env(fake.url))
        _judge(outcome, code, out, seconds, MODEL_CAUSE, 0)
        outcome.consistent, outcome.after = _answers(lab, data)
        return outcome

    def killed() -> Outcome:
        outcome = _model_killed(lab, data)
        outcome.consistent, outcome.after = _answers(lab, data)
        return outcome

    checks: list[Check] = [("model server down", down)]
    checks += [(f, lambda f=f, s=s: play(f, s)) for f, s in scripted.items()]  # type: ignore[misc]
    checks.append(("model server killed mid-answer", killed))
    checks.append(("embedded model killed mid-answer", lambda: _embedded_killed(lab, data)))
    return checks


def _port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _model_killed(lab: Lab, data: Path) -> Outcome:
    """The model server's process SIGKILLed while it streams."""
    from bench.server.harness import FakeModel, answer_tokens

    outcome = Outcome("model server killed mid-answer", _shown(ASK), 15)
    with FakeModel(answer_tokens(400), 0.2, 0.1) as fake:
        ask = Running(lab, data, "ask", QUESTION, "-c", COLLECTION, **_model_env(fake.url))
        ask.wait_for_text(ANSWER_STARTED_CHARS, 120)
        fake.kill()
        killed = time.monotonic()
        code, out = ask.finish()
    _judge(outcome, code, out, round(time.monotonic() - killed, 2), MODEL_CAUSE, 0)
    return outcome


def _embedded_killed(lab: Lab, data: Path) -> Outcome:
    """The embedded llama.cpp child SIGKILLed while it writes; the next question starts it
    again."""
    outcome = Outcome("embedded model killed mid-answer", _shown(ASK), 15)
    env = {
        "CITADEL_LLM__PROVIDER": "llamacpp",
        "CITADEL_LLM__MODEL_PATH": str(lab.model),
        "CITADEL_LLM__THREADS": "1",
        "CITADEL_LLM__IDLE_TIMEOUT_S": str(MODEL_TIMEOUT_S),
    }
    ask = Running(lab, data, "ask", QUESTION, "-c", COLLECTION, **env)
    ask.wait_for_text(ANSWER_STARTED_CHARS, 300)
    children = [p for p in psutil.Process(ask.process.pid).children(recursive=True) if _is_llama(p)]
    for child in children:
        child.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    code, out = ask.finish()
    _judge(outcome, code, out, round(time.monotonic() - killed, 2), MODEL_CAUSE, 0)
    if not children:
        outcome.clear, outcome.message = False, "no llama.cpp child found to kill; " + out[-300:]
    code, out, _ = lab.citadel(data, "ask", QUESTION, "-c", COLLECTION, **env)
    # Answered by a model started again: no error, no search-mode or incomplete notice.
    told = [line for line in out.splitlines() if _TELLING.match(line.strip())]
    outcome.consistent = code == 0 and not told
    outcome.after = f"next question: exit {code}" + (f", {told[-1][:200]}" if told else "")
    return outcome


def _is_llama(process: psutil.Process) -> bool:
    try:
        return "llama" in " ".join(process.cmdline()).lower() or "xllamacpp" in process.name()
    except psutil.Error:
        return False


class Running:
    """A command started in the background, its output read as it comes (so that a fault
    can be done at the moment its answer is being written)."""

    def __init__(self, lab: Lab, data: Path, *args: str, **env: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ui", "--data-dir", str(data), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=lab.env(**env),
        )
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for chunk in iter(lambda: self.process.stdout.read(1), ""):  # type: ignore[union-attr]
            self.output.append(chunk)

    def wait_for_text(self, characters: int, timeout: float) -> bool:
        """Whether the command printed at least `characters` non-blank characters in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if len("".join(self.output).strip()) >= characters:
                return True
            time.sleep(0.05)
        return False

    def wait_for(self, pattern: str, timeout: float) -> bool:
        """Whether the output showed `pattern` (a regular expression) in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if re.search(pattern, "".join(self.output)):
                return True
            time.sleep(0.05)
        return False

    def finish(self, timeout: float = 120) -> tuple[int, str]:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(10)
        return self.process.returncode, "".join(self.output)


def qdrant_unreachable(lab: Lab) -> list[Check]:
    url = f"http://127.0.0.1:{_port()}"

    def check(args: tuple[str, ...]) -> Outcome:
        outcome = Outcome("Qdrant server unreachable", _shown(args), 40)
        data = lab.copy(f"qdrant-{args[0]}")
        code, out, seconds = lab.citadel(data, *args, CITADEL_QDRANT__URL=url)
        _judge(outcome, code, out, seconds, r"the Qdrant server at http", 2)
        outcome.consistent = code != 0 and lab.points(data) == lab.points(lab.base)
        outcome.after = "the embedded store untouched"
        return outcome

    return [
        ("Qdrant server unreachable", lambda: check(("search", QUESTION))),
        ("Qdrant server unreachable", lambda: check(("ingest", "samples", "-c", COLLECTION))),
    ]


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
    _judge(outcome, code, out, seconds, r"locked by another process", 2)
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


def _small_disk(lab: Lab, name: str, room_mb: int = 400) -> tuple[Path, Path]:
    """A tmpfs with room for the base data directory and `room_mb` more; (mount, data)."""
    disk = lab.work / f"disk-{name}"
    _mount(disk, int(_size_mb(lab.base)) + room_mb)
    return disk, lab.copy("data", disk)


def disk_full_ingesting(lab: Lab) -> Outcome:
    """The disk fills up while a corpus is being ingested (another program's files grow):
    a clear message; once space is freed, the same command ends as a run with room would."""
    disk, data = _small_disk(lab, "ingest", lab.corpus_mb * 6 + 400)
    ingest = ("ingest", str(lab.corpus), "-c", "more")
    outcome = Outcome("disk full while ingesting", _shown(ingest), 60)
    running = Running(lab, data, *ingest)
    started = running.wait_for(r"\[\d+/\d+\]", 600)  # a first file stored
    filler = _fill(disk, FILLED_LEAVES_MB * 1024)
    filled = time.monotonic()
    code, out = running.finish(900)
    _judge(outcome, code, out, round(time.monotonic() - filled, 2), r"MB free.*free some space", 2)
    if not started:
        outcome.clear, outcome.message = False, "ended before a file was stored: " + out[-300:]
    filler.unlink()
    again, _, _ = lab.citadel(data, *ingest, "-q", timeout=1800)
    reference = lab.copy("reference")
    lab.citadel(reference, *ingest, "-q", timeout=1800)
    ok, why = _database_ok(data)
    found, expected = lab.points(data), lab.points(reference)
    outcome.consistent = again == 0 and found == expected and ok
    outcome.after = (
        f"ingested again with room: exit {again}; (documents, chunks) {found}, a run with "
        f"room: {expected}; {why}"
    )
    return outcome


def disk_full_auditing(lab: Lab) -> Outcome:
    """The disk is full when an audited change (adding a user) is written."""
    disk, data = _small_disk(lab, "audit")
    audit_before = _audit_count(data)
    filler = _fill(disk, 0)
    outcome = Outcome("disk full while writing the audit log", "citadel users add bea", 30)
    add = ("users", "add", "bea", "--password-stdin")
    code, out, seconds = lab.citadel(data, *add, stdin=PASSWORD + "\n")
    _judge(outcome, code, out, seconds, r"disk full\? nothing was changed", 2)
    filler.unlink()
    ok, why = _database_ok(data)
    audit_after = _audit_count(data)
    again, _, _ = lab.citadel(data, *add, stdin=PASSWORD + "\n")
    outcome.consistent = ok and audit_after in (audit_before, audit_before + 1) and again == 0
    outcome.after = (
        f"{why}; audit entries {audit_before} before, {audit_after} after (none lost); "
        f"the same command with room: exit {again}"
    )
    return outcome


def data_read_only(lab: Lab) -> Outcome:
    """The data directory's file system mounted read-only: ingesting says so (searching
    too: the store writes its lock and log even to read); nothing changes."""
    disk, data = _small_disk(lab, "ro")
    before = lab.points(data)
    _tool(["mount", "-o", "remount,ro", str(disk)], check=True)
    outcome = Outcome("data directory read-only", _shown(("ingest", "samples", "-c", "other")), 30)
    code, out, seconds = lab.citadel(data, "ingest", "samples", "-c", "other")
    _judge(outcome, code, out, seconds, r"is read-only", 2)
    search_code, search_out, _ = lab.citadel(data, "search", QUESTION, "-c", COLLECTION)
    _tool(["mount", "-o", "remount,rw", str(disk)], check=True)
    last = (search_out.strip().splitlines() or [""])[-1][:200]
    outcome.consistent = lab.points(data) == before
    outcome.after = (
        f"searching while read-only: exit {search_code}"
        + ("" if search_code == 0 else f" ({last})")
        + f"; collections unchanged once writable: {lab.points(data) == before}"
    )
    return outcome


def _size_mb(folder: Path) -> float:
    done = _tool(["du", "-sm", str(folder)], capture_output=True, check=True)
    return float(done.stdout.split()[0])


def _audit_count(data: Path) -> int:
    with sqlite3.connect(_metadata_file(data)) as db:
        return int(db.execute("SELECT COUNT(*) FROM audit").fetchone()[0])


def inside(work: Path, model: Path, corpus: Path) -> int:
    mounts = os.geteuid() == 0 and _can_mount(work)
    lab = Lab(work, model, corpus, mounts)
    lab.prepare()
    checks = [
        *model_faults(lab),
        *qdrant_unreachable(lab),
        ("metadata database locked", lambda: metadata_locked(lab)),
    ]
    disk: list[tuple[str, Callable[[Lab], Outcome]]] = [
        ("disk full while ingesting", disk_full_ingesting),
        ("disk full while writing the audit log", disk_full_auditing),
        ("data directory read-only", data_read_only),
    ]
    if mounts:
        checks += [(name, lambda f=f: f(lab)) for name, f in disk]  # type: ignore[misc]
    outcomes: list[Outcome] = []
    for name, check in checks:
        try:
            outcome = check()
        except Exception as exc:  # a check that breaks is a finding
            outcome = Outcome(name, "", 0, message=f"{type(exc).__name__}: {exc}"[:500])
        print(f"{name}: {'held' if outcome.held else 'NOT HELD'}", file=sys.stderr, flush=True)
        outcomes.append(outcome)
    if not mounts:
        outcomes += [Outcome(n, "", 0, ran=False, message="no mount namespace") for n, _ in disk]
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
    sys.exit(inside(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
