"""Many questions at once while the model is slow: answers are written a few at a time, the
rest wait in line and are told their place, one user cannot fill the line, and every other
route keeps answering at once (before, 45 questions to a model taking 20 s an answer made
`GET /api/me` take 17 s)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conftest import SAMPLES
from tests.fake_ollama import FakeOllama, Script
from tests.live_server import LiveServer, add_user, server_settings, upload_and_wait, workspace_with
from ui.service.answer_slots import AnswerSlots, places_in_line
from ui.service.errors import RateLimited
from ui.web.handlers import Handlers

QUESTION = "How many days of paid annual leave do full-time employees get?"


def test_answers_run_in_order_of_arrival_and_each_waiting_one_knows_its_place() -> None:
    slots = AnswerSlots(running=2, per_user=2, waiting=3)
    first, second, third, fourth = (slots.admit(user) for user in ("a", "b", "c", "a"))
    assert (first.running, second.running, third.running) == (True, True, False)
    assert (third.position, fourth.position) == (0, 1)
    assert next(places_in_line(fourth)) == 1
    with pytest.raises(RateLimited, match="2 of your answers"):
        slots.admit("a")  # a already has two: one written, one waiting
    slots.admit("d")
    with pytest.raises(RateLimited, match="more are waiting"):
        slots.admit("e")  # the line is full
    third.release()  # left the line before its turn (Stop pressed, the client went away)
    assert fourth.position == 0 and not fourth.running
    first.release()
    assert fourth.wait(timeout=0) and list(places_in_line(fourth)) == []
    assert slots.counts() == (2, 1)
    first.release()  # twice: nothing more is freed
    assert slots.counts() == (2, 1)


@pytest.mark.slow
def test_forty_five_questions_to_a_slow_model_leave_every_other_route_answering(
    tmp_path, embedder
) -> None:
    slow = Script(tokens=["Twenty-five ", "days ", "[1]", "."] * 10, delay_between_s=0.25)
    with FakeOllama() as model:
        for _ in range(60):
            model.enqueue(slow)
        settings = server_settings(
            tmp_path, llm_host=model.url, max_concurrent_answers=2, answers_per_user=45
        )
        workspace = workspace_with(settings, embedder)
        key = add_user(workspace, "n8n", ("hr",))
        workspace.catalog.assign("hr-docs", "hr")
        upload_and_wait(workspace, "n8n", "hr-docs", [SAMPLES / "handbook.md"])
        try:
            with LiveServer(workspace) as server:
                _while_45_answers_wait(server, key)
                deadline = time.monotonic() + 20
                while workspace.answer_slots.counts() != (0, 0) and time.monotonic() < deadline:
                    time.sleep(0.1)
                # Every client went away: every slot and place was given back.
                assert workspace.answer_slots.counts() == (0, 0)
        finally:
            workspace.close()


def _while_45_answers_wait(server: LiveServer, key: str) -> None:
    first_events: list[tuple[str, dict[str, Any]]] = []
    started = threading.Barrier(46)
    leave = threading.Event()

    def ask() -> None:
        body = {"question": QUESTION, "collections": ["hr-docs"], "stream": True}
        with server.client(key) as client, client.stream("POST", "/api/ask", json=body) as r:
            assert r.status_code == 200, r.read()
            event = None
            for line in r.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event:
                    first_events.append((event, json.loads(line.removeprefix("data: "))))
                    break
            started.wait(timeout=120)
            leave.wait(timeout=120)  # then the client goes away mid-answer, or in line

    with ThreadPoolExecutor(45) as pool:
        asked = [pool.submit(ask) for _ in range(45)]
        started.wait(timeout=120)  # every question is answered or waiting in line
        try:
            with server.client(key) as other:
                for _ in range(5):
                    began = time.monotonic()
                    assert other.get("/api/me").status_code == 200
                    assert other.get("/api/collections").status_code == 200
                    took = time.monotonic() - began
                    # Routes queued behind the answers would wait until they end (the
                    # test holds them for minutes); the bound leaves room for a busy CI.
                    assert took < 3.0, f"other routes took {took:.2f} s"
                # A 46th question of the same user: over its allowance, refused at once.
                refused = other.post("/api/ask", json={"question": QUESTION, "stream": True})
                assert refused.status_code == 429 and "Retry-After" in refused.headers
        finally:
            leave.set()
        for future in asked:
            future.result()
    kinds = [kind for kind, _ in first_events]
    assert kinds.count("queued") == 43, kinds  # two answers written at once
    places = sorted(data["ahead"] for kind, data in first_events if kind == "queued")
    assert places == list(range(43))


@pytest.mark.slow
def test_the_openai_api_waits_in_the_same_line(tmp_path, embedder) -> None:
    with FakeOllama() as model:
        model.enqueue(Script(tokens=["Slow ", "[1]", "."] * 8, delay_between_s=0.25))
        settings = server_settings(tmp_path, llm_host=model.url, max_concurrent_answers=1)
        workspace = workspace_with(settings, embedder)
        key = add_user(workspace, "alice", ("hr",))
        workspace.catalog.assign("hr-docs", "hr")
        upload_and_wait(workspace, "alice", "hr-docs", [SAMPLES / "handbook.md"])
        try:
            with LiveServer(workspace) as server, ThreadPoolExecutor(2) as pool:
                body = {"model": "citadel", "messages": [{"role": "user", "content": QUESTION}]}

                def complete() -> tuple[float, httpx.Response]:
                    with server.client(key) as client:
                        response = client.post("/v1/chat/completions", json=body)
                    return time.monotonic(), response

                first = pool.submit(complete)
                time.sleep(0.5)
                second = pool.submit(complete)
                (done_first, a), (done_second, b) = first.result(), second.result()
                assert a.status_code == b.status_code == 200, (a.text, b.text)
                assert done_second > done_first  # written after the first, not beside it
        finally:
            workspace.close()


@pytest.mark.slow
def test_an_answer_not_streamed_never_holds_up_the_other_routes(tmp_path, embedder) -> None:
    """Its wait for the model happens on an answer thread, not on the server's event loop."""
    with FakeOllama() as model:
        slow = Script(tokens=["Twenty-five ", "days ", "[1]", "."], delay_before_first_s=3.0)
        model.enqueue(slow)  # the first token comes 3 s after the question
        workspace = workspace_with(server_settings(tmp_path, llm_host=model.url), embedder)
        key = add_user(workspace, "alice", ("hr",))
        workspace.catalog.assign("hr-docs", "hr")
        upload_and_wait(workspace, "alice", "hr-docs", [SAMPLES / "handbook.md"])
        try:
            with LiveServer(workspace) as server, ThreadPoolExecutor(1) as pool:
                body = {"question": QUESTION, "collections": ["hr-docs"]}

                def ask() -> httpx.Response:
                    with server.client(key) as client:
                        return client.post("/api/ask", json=body)

                answer = pool.submit(ask)
                time.sleep(1.0)  # the model is still reading the question
                with server.client(key) as other:
                    began = time.monotonic()
                    assert other.get("/healthz").status_code == 200
                    took = time.monotonic() - began
                # Blocked behind the model, /healthz would wait for its first token (2 s
                # more at least); the bound leaves room for a busy machine.
                assert not answer.done() and took < 1.5, took
                assert answer.result().status_code == 200
        finally:
            workspace.close()


@dataclass
class WebRequest:
    """What the web UI's handlers read of gr.Request: the signed-in user."""

    username: str
    client: None = None
    session_hash: str = "tab-1"


@pytest.mark.slow
def test_the_web_ui_shows_the_place_in_line_and_stop_gives_it_back(tmp_path, embedder) -> None:
    with FakeOllama() as model:
        model.enqueue(Script(tokens=["Twenty-five ", "days ", "[1]", "."]))
        settings = server_settings(tmp_path, llm_host=model.url, max_concurrent_answers=1)
        workspace = workspace_with(settings, embedder)
        add_user(workspace, "alice", ("hr",))
        workspace.catalog.assign("hr-docs", "hr")
        upload_and_wait(workspace, "alice", "hr-docs", [SAMPLES / "handbook.md"])
        ui = Handlers(workspace)
        try:
            writing = workspace.answer_slots.admit("bob")  # someone else's answer is written
            shown = ui.ask(QUESTION, ["hr-docs"], [], WebRequest("alice"))  # type: ignore[arg-type]
            next(shown)  # the question, and the answer's placeholder
            waiting = json.dumps(next(shown)[0])
            assert "Waiting for the model: yours is next" in waiting
            assert workspace.answer_slots.counts() == (1, 1)
            shown.close()  # Stop pressed while in line: the place is given back
            assert workspace.answer_slots.counts() == (1, 0)

            shown = ui.ask(QUESTION, ["hr-docs"], [], WebRequest("alice"))  # type: ignore[arg-type]
            next(shown)
            assert "Waiting for the model" in json.dumps(next(shown)[0])
            threading.Timer(0.5, writing.release).start()  # bob's answer is done
            *_, last = shown
            final = json.dumps(last[0])
            assert "Twenty-five" in final and "Waiting for the model" not in final
            assert workspace.answer_slots.counts() == (0, 0)
        finally:
            workspace.close()
