"""Users, teams and API keys as an administrator and an attacker see them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from ui.metadata.accounts import Accounts
from ui.metadata.catalog import Catalog
from ui.metadata.conversations import ConversationStore
from ui.metadata.database import Database
from ui.metadata.errors import AccountError, LoginLocked

PASSWORD = "correct horse battery"


@pytest.fixture
def accounts(tmp_path: Path) -> Accounts:
    # Cheap Argon2 parameters keep the suite fast; the algorithm (Argon2id) is the same.
    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return Accounts(
        Database(tmp_path / "meta.sqlite3"), max_failures=3, lockout_s=60, hasher=hasher
    )


def test_passwords_are_stored_as_argon2id_hashes_never_in_clear(tmp_path: Path, accounts):
    accounts.add_user("alice", PASSWORD, "admin")
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("meta.sqlite3*"))  # WAL included
    assert PASSWORD.encode() not in raw
    assert b"$argon2id$" in raw
    assert oct((tmp_path / "meta.sqlite3").stat().st_mode & 0o777) == "0o600"


def test_login_gives_the_caller_with_teams_and_role(accounts):
    accounts.add_team("hr")
    accounts.add_user("alice", PASSWORD)
    accounts.add_member("hr", "alice")
    caller = accounts.login("alice", PASSWORD)
    assert caller is not None
    assert (caller.name, caller.admin, caller.teams) == ("alice", False, frozenset({"hr"}))
    assert accounts.login("alice", "wrong password!") is None
    assert accounts.login("nobody", PASSWORD) is None


def test_repeated_failures_lock_the_account_even_for_the_right_password(accounts):
    accounts.add_user("alice", PASSWORD)
    for _ in range(3):
        assert accounts.login("alice", "guess-guess-guess", clock=1000.0) is None
    with pytest.raises(LoginLocked):
        accounts.login("alice", PASSWORD, clock=1001.0)
    # After the lockout window, the right password works and clears the failures.
    assert accounts.login("alice", PASSWORD, clock=1100.0) is not None


def test_disabled_and_removed_users_cannot_log_in_or_use_keys(accounts):
    accounts.add_user("alice", PASSWORD)
    key = accounts.create_key("alice")
    assert accounts.caller_for_key(key) is not None
    accounts.set_disabled("alice", True)
    assert accounts.login("alice", PASSWORD) is None
    assert accounts.caller_for_key(key) is None
    accounts.set_disabled("alice", False)
    accounts.remove_user("alice")
    assert accounts.caller_for_key(key) is None


def test_api_keys_are_shown_once_stored_hashed_and_revocable(tmp_path: Path, accounts):
    accounts.add_user("alice", PASSWORD)
    key = accounts.create_key("alice", "n8n")
    assert key.startswith("ctl_") and len(key) > 40
    assert key.encode() not in b"".join(p.read_bytes() for p in tmp_path.glob("meta.sqlite3*"))
    caller = accounts.caller_for_key(key)
    assert caller is not None and caller.name == "alice"
    assert accounts.caller_for_key(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert accounts.caller_for_key("") is None
    (listed,) = accounts.keys("alice")
    assert listed["label"] == "n8n" and listed["last_used_at"] is not None
    accounts.revoke_key("alice", str(listed["prefix"]))
    assert accounts.caller_for_key(key) is None


@pytest.mark.parametrize("name", ["", "../x", "a b", "x" * 65, "<script>", "-rf"])
def test_bad_names_are_refused_with_the_rule(accounts, name):
    with pytest.raises(AccountError, match="invalid user name"):
        accounts.add_user(name, PASSWORD)


def test_weak_passwords_duplicates_and_unknown_roles_are_refused(accounts):
    with pytest.raises(AccountError, match="too short"):
        accounts.add_user("alice", "short")
    accounts.add_user("alice", PASSWORD)
    with pytest.raises(AccountError, match="already exists"):
        accounts.add_user("ALICE", PASSWORD)
    with pytest.raises(AccountError, match="unknown role"):
        accounts.add_user("bob", PASSWORD, "root")
    with pytest.raises(AccountError, match="no team"):
        accounts.add_member("ghosts", "alice")


def test_collections_belong_to_teams(tmp_path: Path, accounts):
    catalog = Catalog(Database(tmp_path / "meta.sqlite3"))
    accounts.add_team("hr")
    accounts.add_team("eng")
    catalog.assign("hr-docs", "hr")
    catalog.assign("secret", None)
    assert catalog.readable_by(frozenset({"hr"})) == {"hr-docs"}
    assert catalog.readable_by(frozenset({"eng"})) == set()
    # Removing a team leaves its collections to the administrators, not to everyone.
    accounts.remove_team("hr")
    assert catalog.owners()["hr-docs"] is None
    assert catalog.readable_by(frozenset({"hr"})) == set()


def test_a_removed_users_conversations_go_with_them(tmp_path: Path, accounts):
    """A later account of the same name (a single sign-on user's first login) finds none of
    the removed user's conversations."""
    conversations = ConversationStore(Database(tmp_path / "meta.sqlite3"))
    accounts.add_user("jdoe", PASSWORD)
    conversations.save("jdoe", "c1", "Finance figures", [{"role": "user", "content": "Q3?"}])

    accounts.remove_user("jdoe")
    accounts.sync_external("oidc", "https://idp|7", "jdoe", False, ["marketing"])

    assert conversations.owned_by("jdoe") == []


def test_a_single_sign_on_user_renamed_by_their_provider_is_told_what_to_do(accounts):
    accounts.sync_external("oidc", "https://idp|42", "jdoe", False, ["hr"])

    renamed = re.escape("'jdoe', which their provider now names 'john.doe'")
    with pytest.raises(AccountError, match=renamed):
        accounts.sync_external("oidc", "https://idp|42", "john.doe", False, ["hr"])
    assert accounts.caller("john.doe") is None
