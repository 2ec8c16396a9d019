"""Zero egress: everything Citadel runs, under a guard that fails any connection leaving
loopback, and (where the machine allows it) inside a network namespace with no route out.

The guard is an audit hook loaded by every Python process of the run (`sitecustomize` on
PYTHONPATH: the CLI, its parser processes, the server, the embedded model's process): each
connection attempt and name lookup is written down, and a connection to anything but
loopback raises, so it cannot happen. The browser is Chromium driven by Playwright: every
request the page makes is written down too. What runs, as a user would:

1. `citadel ingest samples`;
2. `citadel ask` answered by the embedded model (SmolLM2-135M through llama.cpp);
3. `citadel serve --no-auth` with the embedded model; in Chromium the page is loaded, a
   question typed and its answer awaited.

Any attempt to reach beyond loopback, even one the guard stopped, fails the promise:
telemetry included, there must be no attempt at all.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
_CITADEL = [sys.executable, "-m", "ui"]

GUARD = """
import ipaddress, os, sys
_log = os.environ["CITADEL_PROOF_NETLOG"]
_LOCAL_NAMES = {"localhost", "ip6-localhost", "ip6-loopback", ""}

def _local(host):
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).strip("[]")
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False

def _guard(event, args):
    if event == "socket.connect":
        address = args[1]
        if isinstance(address, (str, bytes)):
            return  # AF_UNIX: a local pipe, not the network
        host = address[0]
    elif event in ("socket.getaddrinfo", "socket.gethostbyname"):
        host = args[0]
    else:
        return
    if host is None or _local(host):
        return
    with open(_log, "a") as fh:
        fh.write(f"{os.getpid()} {sys.argv[:3]!r} {event} {host!r}\\n")
    if event == "socket.connect":
        raise OSError(f"egress guard: connection to {host!r} refused (not loopback)")

sys.addaudithook(_guard)
"""


def namespace_available() -> bool:
    """A network namespace with only loopback can be made here (root, or user namespaces)."""
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "-n", "sh", "-c", "ip link set lo up"],  # noqa: S607 - found on PATH above
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


def run(work: Path, model: Path, log: Any) -> dict[str, Any]:
    """The whole run in a child process (in the namespace when possible); its findings."""
    hook = work / "hook"
    hook.mkdir(parents=True, exist_ok=True)
    (hook / "sitecustomize.py").write_text(GUARD, encoding="utf-8")
    netlog = work / "egress.log"
    netlog.write_text("")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CITADEL_", "HF_", "TRANSFORMERS_", "GRADIO", "DO_NOT_TRACK"))
    }
    env.update(PYTHONPATH=f"{hook}{os.pathsep}{REPO}", CITADEL_PROOF_NETLOG=str(netlog))
    inside = [sys.executable, "-m", "bench.proof.egress", str(work), str(model)]
    namespace = namespace_available()
    command = (
        ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *inside]
        if namespace
        else inside
    )
    log(f"egress: {'in a network namespace with loopback only' if namespace else 'guard only'}")
    started = time.monotonic()
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=1800)
    steps = json.loads((work / "steps.json").read_text()) if (work / "steps.json").exists() else []
    attempts = [line for line in netlog.read_text().splitlines() if line.strip()]
    return {
        "namespace": namespace,
        "steps": steps,
        "attempts_outside_loopback": attempts,
        "seconds": round(time.monotonic() - started, 1),
        "exit": done.returncode,
        "error": done.stderr[-3000:] if done.returncode else "",
        "held": done.returncode == 0 and not attempts and all(s["ok"] for s in steps),
    }


def _citadel(data: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_CITADEL, "--data-dir", str(data), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=900,
    )


def _inside(work: Path, model: Path) -> int:
    """Runs in the guarded child: the user's steps, each recorded in steps.json."""
    import httpx

    data = work / "data"
    embedded = {
        "CITADEL_LLM__PROVIDER": "llamacpp",
        "CITADEL_LLM__MODEL_PATH": str(model),
        "CITADEL_LLM__THREADS": "1",
    }
    steps: list[dict[str, Any]] = []

    def step(name: str, ok: bool, detail: str) -> None:
        steps.append({"step": name, "ok": ok, "detail": detail[-500:]})
        (work / "steps.json").write_text(json.dumps(steps, indent=1))

    # The control: the guard stops and records a deliberate attempt (then forgotten).
    netlog = Path(os.environ["CITADEL_PROOF_NETLOG"])
    try:
        socket.create_connection(("192.0.2.1", 80), timeout=2).close()
        stopped = False
    except OSError as exc:
        stopped = "egress guard" in str(exc)
    seen = "192.0.2.1" in netlog.read_text()
    netlog.write_text("")
    step("control: a deliberate connection out is stopped and recorded", stopped and seen, "")

    ingest = _citadel(data, "ingest", str(REPO / "samples"), "--collection", "proof", "--json")
    step("citadel ingest samples", ingest.returncode == 0, ingest.stderr or ingest.stdout[:300])
    question = "Where do I pick up my laptop on day 1?"
    ask = _citadel(data, "ask", question, "--collection", "proof", "--json", **embedded)
    answered = ask.returncode == 0 and bool(json.loads(ask.stdout or "{}").get("answer"))
    step("citadel ask (embedded model)", answered, ask.stdout[:400] or ask.stderr)

    port = 8391
    server = subprocess.Popen(
        [*_CITADEL, "--data-dir", str(data), "serve", "--no-auth", "--port", str(port)],
        env={**os.environ, **embedded},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        step("citadel serve", time.monotonic() < deadline, "healthz answered")
        requests, shown = _browse(base, question)
        outside = [u for u in requests if not u.startswith(base)]
        step(
            "the web UI in Chromium",
            bool(shown) and not outside,
            f"{len(requests)} requests, {len(outside)} not to the server {outside[:5]}; "
            f"answer shown: {shown[:200]!r}",
        )
    finally:
        server.terminate()
        server.wait(60)
    return 0


def _browse(base: str, question: str) -> tuple[list[str], str]:
    from playwright.sync_api import expect, sync_playwright

    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.goto(base + "/", wait_until="domcontentloaded", timeout=120_000)
        box = page.locator("#citadel-question textarea")
        box.wait_for(timeout=120_000)
        expect(page.locator("#citadel-collections")).to_contain_text("proof", timeout=60_000)
        box.fill(question)
        box.press("Enter")
        answer = page.locator("#citadel-conversation .citadel-a").first
        # The checked answer (rating buttons), or a banner saying why there is none.
        answer.locator(".citadel-rate, .citadel-banner").first.wait_for(timeout=300_000)
        shown = answer.inner_text()
        browser.close()
    return requests, shown


if __name__ == "__main__":
    sys.exit(_inside(Path(sys.argv[1]), Path(sys.argv[2])))
