"""The clients that send the probes; each response is recorded on its probe.

`Wire` sends the HTTP probes (REST, /v1, /files, the web UI's endpoints) over one
keep-alive http.client connection, each request-target byte for byte as planned, and
reads every response to its end, streams included. `GradioSession` drives the web UI as
a browser does (a login cookie, then queued events); `run_gradio` sends the planned
events through it. `Campaign` is the outcome: every probe, answered, and the time taken.
"""

from __future__ import annotations

import http.client
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from tests.isolation.plans import Probe, forms, gradio_calls
from tests.isolation.world import BLUE, World, make_canary
from tests.live_server import PASSWORD


class Wire:
    """One keep-alive connection; request-targets go out exactly as written."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def send(self, probe: Probe) -> None:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            try:
                self.conn.putrequest(probe.method, probe.target, skip_accept_encoding=True)
                for name, value in probe.headers.items():
                    self.conn.putheader(name, value)
                if probe.body or probe.method in ("POST", "PUT"):
                    self.conn.putheader("Content-Length", str(len(probe.body)))
                self.conn.endheaders(probe.body or None)
                if probe.hang_up_s is not None and self.conn.sock is not None:
                    self.conn.sock.settimeout(probe.hang_up_s)
                response = self.conn.getresponse()
                probe.response = self._read(response, probe.hang_up_s)
            except (http.client.RemoteDisconnected, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
                continue
            probe.status = response.status
            probe.response_headers = response.getheaders()
            if response.will_close or probe.hang_up_s is not None:
                self.conn.close()
                self.conn = None
            return

    @staticmethod
    def _read(response: http.client.HTTPResponse, hang_up_s: float | None) -> bytes:
        """The whole response; or, for a stream that may never end, what came before it
        fell silent for `hang_up_s` seconds (the socket's timeout, set before sending)."""
        if hang_up_s is None:
            return response.read()
        body = b""
        try:
            while chunk := response.read1(65536):
                body += chunk
        except TimeoutError:
            pass
        return body

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class GradioSession:
    """The web UI as a browser drives it: a login cookie, then queued events."""

    def __init__(self, world: World, user: str, load: bool) -> None:
        self.world = world
        self.http = httpx.Client(base_url=world.server.url, timeout=120)
        signed_in = self.http.post("/login", data={"username": user, "password": PASSWORD})
        assert signed_in.status_code == 303 and "citadel_session" in self.http.cookies
        self.session = secrets.token_hex(8)
        if load:
            self.call("on_load", [])

    def join(self, name: str, data: list[Any]) -> httpx.Response:
        """Queue an event; its results wait in the session until its stream is read."""
        fn, trigger = self.world.gradio[name]
        payload = {
            "data": data,
            "fn_index": fn,
            "trigger_id": trigger,
            "session_hash": self.session,
            "event_data": None,
        }
        return self.http.post("/gradio_api/queue/join", json=payload)

    def call(self, name: str, data: list[Any]) -> tuple[int, bytes]:
        joined = self.join(name, data)
        if not joined.is_success:
            return joined.status_code, joined.content
        event = joined.json()["event_id"]
        lines = []
        params = {"session_hash": self.session}
        with self.http.stream("GET", "/gradio_api/queue/data", params=params) as stream:
            for line in stream.iter_lines():
                lines.append(line)
                message = json.loads(line[5:]) if line.startswith("data:") else {}
                done = message.get("msg") == "process_completed"
                if (done and message.get("event_id") == event) or message.get("msg") == (
                    "close_stream"
                ):
                    break
        return 200, "\n".join(lines).encode()

    def close(self) -> None:
        self.http.close()


def open_victim_tab(world: World) -> GradioSession:
    """Victim's web UI tab, open during the campaign: the page loaded, a file uploaded, and
    a listing of blue asked for but not read yet. Its ids go in `World.victim_tab`, for
    mallory to try."""
    tab = GradioSession(world, "victim", load=True)
    upload = secrets.token_hex(8)
    name = f"notes-{make_canary()}.md"
    world.secret(name.removesuffix(".md").split("-", 1)[1], "victim's web upload canary")
    sent = tab.http.post(
        "/gradio_api/upload",
        params={"upload_id": upload},
        files=[("files", (name, b"# Notes\n\nFor the executive team only.\n"))],
    )
    assert sent.status_code == 200, sent.text
    joined = tab.join("library", [BLUE, "", "Name"])
    assert joined.status_code == 200, joined.text
    world.victim_tab = {
        "session": tab.session,
        "event": joined.json()["event_id"],
        "upload": upload,
    }
    return tab


def run_gradio(world: World, probes: list[Probe], pairs: Iterator[int]) -> None:
    """Mallory's events in the web UI: once after the page loaded (her collections are the
    dropdowns' choices), once without (the choices as built); victim's page is open too."""
    victim = GradioSession(world, "victim", load=True)
    for load in (True, False):
        session = GradioSession(world, "mallory", load)
        try:
            for name, make, blue, twin, paired in gradio_calls(world):
                pair = next(pairs) if paired else None
                for value, is_foreign in ((blue, paired), (twin, False)):
                    data = make(value)
                    probe = Probe(
                        f"web UI, {name}",
                        "GRADIO",
                        f"{name}({json.dumps(data, ensure_ascii=False)[:120]})",
                        json.dumps(data, ensure_ascii=False).encode(),
                        foreign=is_foreign,
                        pair=pair,
                        stand_in=forms(value) if value else (),
                    )
                    if name == "ask":  # each question in a new conversation
                        session.call("new_conversation", [])
                    before = len(world.fake.requests)
                    probe.status, probe.response = session.call(name, data)
                    probe.prompts = list(world.fake.requests[before:])
                    probes.append(probe)
        finally:
            session.close()
    victim.close()


@dataclass
class Campaign:
    probes: list[Probe]
    seconds: float
