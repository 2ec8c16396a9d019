"""Saved conversations: each user's own, kept as shown, their file links renewed when shown
again. (The web UI around them is in tests/test_browser.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.types import Passage
from ui.metadata.conversations import ConversationStore
from ui.metadata.database import Database
from ui.service.links import FileLinks
from ui.web.render import Turn


@pytest.fixture
def store(tmp_path: Path) -> ConversationStore:
    return ConversationStore(Database(tmp_path / "meta.sqlite3"))


def _turn(question: str) -> dict[str, object]:
    return {"question": question, "html": "<p>answer</p>", "answer_id": "a1", "answer_text": "x"}


def test_a_conversation_is_saved_listed_renamed_and_deleted_by_its_owner(store):
    assert store.save("alice", "c1", "How many   days of leave?", [_turn("How many days?")])
    assert store.save("alice", "c1", "ignored: the title stays", [_turn("q1"), _turn("q2")])
    assert store.save("alice", "c2", "Laptop lost", [_turn("Laptop?")])

    listed = store.owned_by("alice")
    assert [(c.id, c.title) for c in listed] == [
        ("c2", "Laptop lost"),
        ("c1", "How many days of leave?"),
    ]
    assert [t["question"] for t in store.turns("alice", "c1") or []] == ["q1", "q2"]
    assert store.rename("alice", "c1", "Leave")
    assert {c.title for c in store.owned_by("alice")} == {"Leave", "Laptop lost"}
    assert store.delete("alice", "c2")
    assert [c.id for c in store.owned_by("alice")] == ["c1"]


def test_another_user_can_neither_read_nor_change_nor_overwrite_a_conversation(store):
    store.save("alice", "c1", "Salaries", [_turn("What is the CEO's salary?")])

    assert store.owned_by("mallory") == []
    assert store.turns("mallory", "c1") is None
    assert not store.rename("mallory", "c1", "pwned")
    assert not store.delete("mallory", "c1")
    assert not store.save("mallory", "c1", "mine now", [_turn("overwritten")])
    assert store.turns("alice", "c1") == [_turn("What is the CEO's salary?")]
    assert [c.title for c in store.owned_by("alice")] == ["Salaries"]


def test_a_user_keeps_a_bounded_number_of_conversations_the_oldest_go_first(tmp_path: Path):
    store = ConversationStore(Database(tmp_path / "meta.sqlite3"), max_per_user=3)
    for n in range(5):
        store.save("alice", f"c{n}", f"q{n}", [_turn(f"q{n}")])
    store.save("bob", "b0", "bob's", [_turn("b")])

    assert [c.id for c in store.owned_by("alice")] == ["c4", "c3", "c2"]
    assert [c.id for c in store.owned_by("bob")] == ["b0"]  # one user's count is their own


def test_a_saved_answer_gets_fresh_file_links_for_its_owner_when_shown_again():
    now = [1_000.0]
    links = FileLinks(b"k" * 32, ttl_s=60, clock=lambda: now[0])
    passage = Passage("c", "hr", "doc-1", "a.pdf", "pdf", "", (), (2,), 0, "t", 1.0)
    old = links.make("alice", passage).replace("&", "&amp;")
    saved = {
        "question": "q",
        "html": f'<a href="{old}">open</a>',
        "answer_id": "a",
        "answer_text": "",
    }

    now[0] += 3600  # the saved link has long expired
    shown = Turn.restored(saved, "alice", lambda doc: links.for_document("alice", doc))

    href = shown.html.split('href="')[1].split('"')[0].replace("&amp;", "&")
    assert href != old.replace("&amp;", "&") and href.endswith("#page=2")
    path, query = href.split("#")[0].split("?")
    fields = dict(part.split("=", 1) for part in query.split("&"))
    assert path == "/files/doc-1"
    assert links.user_of("doc-1", fields["u"], fields["e"], fields["s"]) == "alice"
    assert shown.owner == "alice" and shown.question == "q"
