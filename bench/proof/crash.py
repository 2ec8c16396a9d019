"""No lost or duplicated data under crashes: ingestion, replacement and re-indexing SIGKILLed
at random moments, each kill followed by a restart, end exactly where a clean run ends; and
the metadata database (audit log, conversations) loses no committed entry.

Rounds, each compared point by point with a clean run of the same end state:
- `ingest`: the dev corpus into an empty collection;
- `replace`: then half of its files edited, some deleted, renamed and added, and the
  corpus ingested again with `--prune` (documents being replaced);
- `reindex`: `citadel reindex` of the collection (a re-embedding in progress);
- `metadata`: a writer appending audit entries and conversations, each printed
  once committed; after every kill each printed entry must be there, and the database
  must pass SQLite's integrity check.

The comparison: the same point IDs, the same payloads (the time written apart) hashed
point by point, no chunk without its document record or of another version of its file
(orphans, duplicates), no document missing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

COLLECTION = "dev"


@dataclass
class Round:
    name: str
    kills: int = 0
    kills_mid_work: int = 0  # the store's files had changed since the previous kill
    restarts: int = 0
    seconds: float = 0.0
    points: int = 0
    documents: int = 0
    identical: bool = False
    differences: list[str] = field(default_factory=list)


def citadel(data_dir: Path, *args: str, batch: int = 16) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CITADEL_DATA_DIR": str(data_dir),
        "PYTHONUNBUFFERED": "1",
        # Documents are stored batch by batch: smaller batches, more moments between them.
        "CITADEL_INGEST__EMBED_BATCH_CHUNKS": str(batch),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "ui", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its parser processes are killed with it
    )
    _watch_progress(process)
    return process


# A progress line: a file stored ("[3/142] added ...") or chunks re-embedded and written.
_PROGRESS = re.compile(rb"\[\d+/\d+\]|re-embedded [1-9]")
_progress_seen: dict[int, threading.Event] = {}


def _watch_progress(process: subprocess.Popen[bytes]) -> None:
    """Drain the process's stderr (a full pipe would stop it) and note its first progress."""
    seen = _progress_seen[process.pid] = threading.Event()

    def drain() -> None:
        assert process.stderr is not None
        tail = b""
        for block in iter(lambda: process.stderr.read1(4096), b""):  # type: ignore[union-attr]
            tail = (tail + block)[-4096:]
            if not seen.is_set() and _PROGRESS.search(tail):
                seen.set()
        seen.set()  # ended: nothing more to wait for

    threading.Thread(target=drain, daemon=True).start()


def finish(process: subprocess.Popen[bytes], timeout_s: float = 3600) -> None:
    code = process.wait(timeout_s)
    if code != 0:
        raise RuntimeError(f"{process.args!r} ended with {code}")


def kill(process: subprocess.Popen[bytes]) -> bool:
    """SIGKILL the process and its parser processes; False when it had already ended."""
    ended = process.poll() is not None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(60)
    return not ended


def state(data_dir: Path) -> dict[str, str]:
    """point ID -> sha256 of its payload (without the time it was written)."""
    from rag.adapters.qdrant.edge import EdgeStore

    store = EdgeStore(data_dir / "qdrant-edge")
    try:
        payloads = {h.id: h.payload for h in store.chunks(COLLECTION)}
        payloads.update({d.id: d.payload() for d in store.documents(COLLECTION)})
    finally:
        store.close()
    hashed = {}
    for point, payload in payloads.items():
        payload = {k: v for k, v in payload.items() if k != "ingested_at"}
        hashed[point] = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return hashed


def consistency(data_dir: Path) -> list[str]:
    """Orphans and duplicates inside one store, whatever a clean run would hold."""
    from rag.adapters.qdrant.edge import EdgeStore

    store = EdgeStore(data_dir / "qdrant-edge")
    try:
        records = {d.id: d for d in store.documents(COLLECTION)}
        problems = []
        sources = [d.source for d in records.values()]
        if len(sources) != len(set(sources)):
            problems.append("two document records for one file")
        seen: set[tuple[str, int]] = set()
        for hit in store.chunks(COLLECTION):
            doc, number = hit.payload["document_id"], hit.payload["chunk"]
            record = records.get(doc)
            if record is None:
                problems.append(f"chunk {hit.id} has no document record (orphan)")
            elif hit.payload.get("sha256") != record.sha256:
                problems.append(f"chunk {hit.id} is of another version of {record.source}")
            if (doc, number) in seen:
                problems.append(f"chunk {number} of {doc} stored twice")
            seen.add((doc, number))
        return problems
    finally:
        store.close()


def compare(crashed: dict[str, str], clean: dict[str, str]) -> list[str]:
    problems = []
    missing, extra = clean.keys() - crashed.keys(), crashed.keys() - clean.keys()
    if missing:
        problems.append(f"{len(missing)} points of the clean run missing")
    if extra:
        problems.append(f"{len(extra)} points a clean run does not have")
    changed = [p for p in clean.keys() & crashed.keys() if clean[p] != crashed[p]]
    if changed:
        problems.append(f"{len(changed)} points with another payload")
    return problems


def kill_loop(
    start: Callable[[], subprocess.Popen[bytes]],
    data_dir: Path,
    kills: int,
    rng: random.Random,
    max_delay_s: float,
    report: Round,
) -> None:
    """Start, wait for its first progress (a file stored, chunks written) and then a random
    moment, SIGKILL, restart... `kills` times, then let the last run finish. Each kill so
    lands while the run is writing, not during its start-up (loading the embedder takes
    longer than most random delays would)."""
    before = _stored(data_dir)
    started = time.monotonic()
    while report.kills < kills:
        process = start()
        report.restarts += 1
        _progress_seen[process.pid].wait(600)
        time.sleep(rng.uniform(0, max_delay_s))
        if not kill(process):
            # It ended on its own: nothing left to interrupt in this round.
            break
        report.kills += 1
        after = _stored(data_dir)
        report.kills_mid_work += after != before
        before = after
    finish(start())
    report.restarts += 1
    report.seconds = time.monotonic() - started


def _stored(data_dir: Path) -> dict[str, str]:
    """What the store holds (the size of its files would not do: its write-ahead log is
    allocated ahead and does not grow with each write)."""
    if not (data_dir / "qdrant-edge" / COLLECTION).exists():
        return {}
    return state(data_dir)


def change_corpus(corpus: Path, rng: random.Random) -> dict[str, int]:
    """Edit half of the text files, delete, rename and add a few: what a folder of
    documents goes through between two ingestions."""
    texts = sorted(p for p in corpus.rglob("*") if p.suffix in (".html", ".md", ".txt"))
    rng.shuffle(texts)
    third = max(1, len(texts) // 2)
    edited, deleted, renamed = texts[:third], texts[third : third + 5], texts[third + 5 : third + 8]
    for path in edited:
        text = path.read_text(encoding="utf-8", errors="replace")
        note = f"Revised {rng.randint(1, 28)} March: the procedure above was reviewed."
        marker = "</body>" if "</body>" in text else None
        path.write_text(
            text.replace(marker, f"<p>{note}</p>{marker}") if marker else f"{text}\n\n{note}\n",
            encoding="utf-8",
        )
    for path in deleted:
        path.unlink()
    for path in renamed:
        path.rename(path.with_name(f"renamed-{path.name}"))
    added = corpus / "added"
    added.mkdir(exist_ok=True)
    for n in range(5):
        body = "\n\n".join(
            f"Section {k} of the new procedure {n}: requests go to desk {n * 10 + k}, "
            "answered within two working days."
            for k in range(12)
        )
        (added / f"procedure-{n}.md").write_text(f"# Procedure {n}\n\n{body}\n", encoding="utf-8")
    return {"edited": len(edited), "deleted": len(deleted), "renamed": len(renamed), "added": 5}


def _checked(report: Round, crashed: Path, clean: dict[str, str]) -> Round:
    from rag.adapters.qdrant.edge import EdgeStore

    got = state(crashed)
    report.points = len(got)
    store = EdgeStore(crashed / "qdrant-edge")
    try:
        report.documents = len(store.documents(COLLECTION))
    finally:
        store.close()
    report.differences = compare(got, clean) + consistency(crashed)
    report.identical = not report.differences
    return report


def store_rounds(
    corpus: Path, work: Path, kills: Sequence[int], max_delay_s: float, seed: int, log: Callable
) -> list[Round]:
    """The ingest, replace and reindex rounds; `kills` per round."""
    rng = random.Random(seed)
    source = work / "corpus"
    shutil.copytree(corpus, source)
    clean_dir, crashed_dir = work / "clean", work / "crashed"
    ingest = ("ingest", str(source), "--collection", COLLECTION, "--prune")

    log("clean ingestion of the corpus")
    finish(citadel(clean_dir, *ingest))
    clean = state(clean_dir)
    rounds = []

    log(f"ingestion, {kills[0]} kills")
    first = Round("ingest")
    kill_loop(lambda: citadel(crashed_dir, *ingest), crashed_dir, kills[0], rng, max_delay_s, first)
    rounds.append(_checked(first, crashed_dir, clean))
    log(f"  {asdict(first)}")

    changes = change_corpus(source, rng)
    log(f"corpus changed {changes}; clean ingestion of the changed corpus")
    shutil.rmtree(clean_dir)
    finish(citadel(clean_dir, *ingest))
    clean = state(clean_dir)
    log(f"replacement, {kills[1]} kills")
    second = Round("replace")
    kill_loop(
        lambda: citadel(crashed_dir, *ingest), crashed_dir, kills[1], rng, max_delay_s, second
    )
    rounds.append(_checked(second, crashed_dir, clean))
    log(f"  {asdict(second)}")

    log(f"re-index, {kills[2]} kills")
    third = Round("reindex")
    reindex = ("reindex", COLLECTION)
    kill_loop(
        lambda: citadel(crashed_dir, *reindex), crashed_dir, kills[2], rng, max_delay_s, third
    )
    rounds.append(_checked(third, crashed_dir, clean))
    log(f"  {asdict(third)}")
    return rounds


# The metadata writer: appends entries forever, printing each one's key once committed.
WRITER = """
import sys
from pathlib import Path
from ui.metadata.database import Database
from ui.metadata.audit import AuditLog
from ui.metadata.conversations import ConversationStore
db = Database(Path(sys.argv[1]))
audit, conversations = AuditLog(db), ConversationStore(db, max_per_user=1_000_000)
n = int(sys.argv[2])
while True:
    n += 1
    audit.record("proof", "ask", "dev", None, question=f"question {n}")
    print(f"audit {n}", flush=True)
    if n % 3 == 0:
        conversations.save("proof", f"c{n}", f"conversation {n}", [{"q": f"turn {n}"}])
        print(f"conversation {n}", flush=True)
"""


def metadata_round(work: Path, kills: int, seed: int, log: Callable) -> dict[str, Any]:
    rng = random.Random(seed)
    path = work / "meta" / "citadel.sqlite3"
    acknowledged: list[str] = []
    problems: list[str] = []
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    started = time.monotonic()
    for k in range(kills):
        process = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(k * 1_000_000)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        time.sleep(0.8 + rng.uniform(0, 2.0))
        if process.poll() is not None:
            raise RuntimeError(f"the metadata writer stopped: {process.communicate()[1][-2000:]}")
        process.send_signal(signal.SIGKILL)
        out, _ = process.communicate(timeout=60)
        acknowledged.extend(out.splitlines())
        problems += _missing(path, acknowledged)
        if problems:
            break
    log(f"  metadata: {kills} kills, {len(acknowledged)} acknowledged entries")
    return {
        "kills": kills,
        "acknowledged": len(acknowledged),
        "seconds": round(time.monotonic() - started, 1),
        "problems": problems,
        "identical": not problems,
    }


def _missing(path: Path, acknowledged: Sequence[str]) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        problems = []
        if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            problems.append("integrity check failed")
        questions = {json.loads(d)["question"] for (d,) in conn.execute("SELECT detail FROM audit")}
        titles = {t for (t,) in conn.execute("SELECT title FROM conversations")}
        for line in acknowledged:
            kind, n = line.split()
            if kind == "audit" and f"question {n}" not in questions:
                problems.append(f"committed audit entry {n} lost")
            if kind == "conversation" and f"conversation {n}" not in titles:
                problems.append(f"committed conversation {n} lost")
        return problems
    finally:
        conn.close()
