"""Nothing leaves the machine: an ingestion attempts no network connection at all."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.live_server import free_port

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


def _audited_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose Python processes log every connection attempt and name lookup
    to the returned file; none of the developer's CITADEL_/offline switches leak in (the
    code under test must set them itself)."""
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(AUDIT_HOOK, encoding="utf-8")
    log = tmp_path / "net.log"
    log.touch()
    prefixes = ("CITADEL_", "HF_", "TRANSFORMERS_", "SCARF", "DO_NOT_TRACK", "GRADIO")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(PYTHONPATH=f"{hook_dir}{os.pathsep}{REPO}", CITADEL_TEST_NETLOG=str(log))
    return env, log


def test_ingestion_makes_no_network_connection(tmp_path: Path):
    env, log = _audited_env(tmp_path)
    docs = tmp_path / "docs"
    shutil.copytree(REPO / "samples", docs)

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


def _is_loopback(target: str) -> bool:
    return any(host in target for host in ("'127.0.0.1'", "'localhost'", "'::1'"))


def test_the_server_and_its_web_ui_make_no_outside_connection(tmp_path: Path):
    """`citadel serve` (FastAPI, Gradio, the embedder) is started, its UI page and config
    are loaded, a question is asked: every connection it attempts is to loopback (the
    unreachable model server on 127.0.0.1), none to an analytics or model hub host."""
    import time

    import httpx

    env, log = _audited_env(tmp_path)
    port = free_port()
    env["CITADEL_LLM__HOST"] = "http://127.0.0.1:9"  # nothing listens: search mode
    data = tmp_path / "data"
    ingest = subprocess.run(
        [sys.executable, "-m", "ui", "--data-dir", str(data), "ingest", str(REPO / "samples")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=REPO,
    )
    assert ingest.returncode == 0, ingest.stderr
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ui",
            "--data-dir",
            str(data),
            "serve",
            "--no-auth",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=REPO,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("the server did not start")
        page = httpx.get(f"{base}/", timeout=30)
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert httpx.get(f"{base}/config", timeout=30).status_code == 200
        answer = httpx.post(
            f"{base}/api/ask", json={"question": "How many days of paid leave?"}, timeout=60
        ).json()
        assert answer["search_mode"] and answer["citations"]
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode(errors="replace")
    attempts = [line for line in log.read_text().splitlines() if line.strip()]
    outside = [line for line in attempts if not _is_loopback(line)]
    assert not outside, f"outside connections: {outside}\n{output[-2000:]}"
    assert any("'127.0.0.1', 9" in line for line in attempts)  # the hook saw the model server
