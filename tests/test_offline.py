"""Nothing leaves the machine: an ingestion attempts no network connection at all."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent

# Loaded by every Python process of the run (the CLI and its spawned parser workers) through
# PYTHONPATH: an audit hook that records each connection attempt and name lookup.
AUDIT_HOOK = """
import os, sys
_log = os.environ["CITADEL_TEST_NETLOG"]
def _hook(event, args):
    if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
        target = args[1] if event == "socket.connect" else args[0]
        if event == "socket.connect" and isinstance(target, (str, bytes)):
            return  # AF_UNIX: a local pipe, not the network
        with open(_log, "a") as fh:
            fh.write(f"{os.getpid()} {event} {target!r}\\n")
sys.addaudithook(_hook)
"""


def test_ingestion_makes_no_network_connection(tmp_path: Path):
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(AUDIT_HOOK, encoding="utf-8")
    log = tmp_path / "net.log"
    log.touch()
    docs = tmp_path / "docs"
    shutil.copytree(REPO / "samples", docs)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CITADEL_", "HF_", "TRANSFORMERS_", "SCARF", "DO_NOT_TRACK"))
    }
    env.update(PYTHONPATH=f"{hook_dir}{os.pathsep}{REPO}", CITADEL_TEST_NETLOG=str(log))

    # The hook itself works: a deliberate lookup from a process with the same environment is seen.
    probe = subprocess.run(
        [sys.executable, "-c", "import socket; socket.getaddrinfo('localhost', 80)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0 and "socket.getaddrinfo 'localhost'" in log.read_text()
    log.write_text("")

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ui",
            "--data-dir",
            str(tmp_path / "data"),
            "ingest",
            str(docs),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=REPO,
    )

    assert result.returncode == 0, result.stderr
    assert '"added": 8' in result.stdout
    assert log.read_text() == ""
