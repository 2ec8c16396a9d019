"""An ingestion killed with SIGKILL at any moment, then run again, ends exactly like a clean run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.adapters.qdrant.edge import EdgeStore

CITADEL = [sys.executable, "-m", "ui"]
pytestmark = pytest.mark.slow


def _citadel(data_dir: Path, *args: str) -> subprocess.Popen[str]:
    # Small embedding batches: documents are stored one by one, so kills land between them.
    env = {
        **os.environ,
        "CITADEL_DATA_DIR": str(data_dir),
        "PYTHONUNBUFFERED": "1",
        "CITADEL_INGEST__EMBED_BATCH_CHUNKS": "4",
    }
    return subprocess.Popen(
        [*CITADEL, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _state(data_dir: Path) -> dict[str, dict]:
    """Every point of the collection, its payload without the time it was written."""
    store = EdgeStore(data_dir / "qdrant-edge")
    try:
        points = {h.id: h.payload for h in store.chunks("docs")}
        points.update({d.id: d.payload() for d in store.documents("docs")})
    finally:
        store.close()
    for payload in points.values():
        payload.pop("ingested_at", None)
    return points


def _kill_after(data_dir: Path, folder: Path, progress_lines: int | None, delay_s: float) -> None:
    """Start an ingestion and SIGKILL it after `progress_lines` stored files (or at once)."""
    process = _citadel(data_dir, "ingest", str(folder), "--collection", "docs")
    assert process.stderr is not None
    seen = 0
    if progress_lines is not None:
        for line in process.stderr:
            if line.startswith("["):
                seen += 1
                if seen >= progress_lines:
                    break
    time.sleep(delay_s)
    process.send_signal(signal.SIGKILL)
    process.wait(30)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    shutil.copytree(Path(__file__).parent.parent / "samples", folder)
    extra = folder / "notes"
    extra.mkdir()
    # Enough files that the kills below (13 stored files, plus the few a burst of stores
    # adds before the signal lands) always leave work for the next run, however fast the
    # machine: with 12 notes, a quiet machine finished everything before the last kill.
    for i in range(30):
        body = "\n\n".join(
            f"Paragraph {j} of note {i} about quarterly planning, budgets and "
            f"the meeting room booking rules number {i * j}."
            for j in range(30)
        )
        (extra / f"note-{i:02}.md").write_text(f"# Note {i}\n\n{body}\n", encoding="utf-8")
    return folder


def test_ingestion_killed_at_any_point_converges_to_a_clean_run(tmp_path: Path, corpus: Path):
    clean_dir, crashed_dir = tmp_path / "clean", tmp_path / "crashed"
    clean = _citadel(clean_dir, "ingest", str(corpus), "--collection", "docs", "--json")
    clean.communicate(timeout=600)
    assert clean.returncode == 0
    reference = _state(clean_dir)
    assert len(reference) > 40

    documents = sum(1 for p in reference.values() if p["kind"] == "document")

    # Killed while starting, then after 1, 3, 6 and 3 more stored files (each run has work
    # left, so each kill lands mid-ingestion: mid-parse, mid-embed or mid-write).
    _kill_after(crashed_dir, corpus, None, 4.0)
    for stored_files in (1, 3, 6, 3):
        _kill_after(crashed_dir, corpus, stored_files, 0.05 * stored_files)
        partial = _state(crashed_dir)
        stored = sum(1 for p in partial.values() if p["kind"] == "document")
        assert stored < documents, f"the kill after {stored_files} files landed too late"
    final = _citadel(crashed_dir, "ingest", str(corpus), "--collection", "docs", "--json")
    _, err = final.communicate(timeout=600)
    assert final.returncode == 0, err

    assert _state(crashed_dir) == reference
