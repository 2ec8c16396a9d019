"""The Administration tab's handlers: users, teams, collections, API keys, the audit log,
suggested questions, the model's status and the feedback export.

Like every handler of the web UI, each resolves its caller from the Gradio session (through
`Handlers.caller`) and goes through the Workspace, which refuses a non-administrator and
audits every change, exactly as for the REST API and the command line. What is shown is
escaped HTML (ui/web/render.py `esc`); a refused or failed change says why in plain words
and leaves what the administrator typed where it was. The layout is in ui/web/admin.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import gradio as gr

from rag.errors import CitadelError
from rag.text import shorten
from ui.metadata.accounts import Caller
from ui.metadata.audit import ACTIONS, AuditEntry
from ui.service.workspace import Workspace
from ui.web.handlers import NO_ACCOUNT, Handlers
from ui.web.render import ago, esc, message_html

AUDIT_SHOWN = 200  # newest entries shown at most; the count says how many match
ADMINS_ONLY = "(administrators only)"
ROLES = [("member", "member"), ("administrator", "admin")]
AUDIT_ACTIONS = [("any action", ""), *[(a, a) for a in ACTIONS]]

# The lists every change refreshes, in the order of `AdminHandlers.views` (ui/web/admin.py
# wires them in the same order).
VIEWS = (
    "users_table",
    "teams_table",
    "collections_table",
    "keys_table",
    "user_pick",
    "key_user",
    "new_teams",
    "user_teams",
    "new_collection_team",
    "owner_team",
    "owner_collection",
    "starters_collection",
    "key_pick",
    "audit_user",
)


class AdminHandlers:
    """The Administration tab's handlers, over the same Workspace as the rest of the UI."""

    def __init__(self, web: Handlers) -> None:
        self.web = web
        self.workspace: Workspace = web.workspace

    # -- who -----------------------------------------------------------------------------
    def _caller(self, request: gr.Request | None) -> Caller | None:
        return self.web.caller(request)

    def _client(self, request: gr.Request | None) -> str | None:
        return self.web.client(request)

    # -- the lists -----------------------------------------------------------------------
    def views(self, request: gr.Request) -> tuple[Any, ...]:
        """Every list and picker of the tab, fresh (see VIEWS)."""
        caller = self._caller(request)
        if caller is None:
            problem = message_html("error", NO_ACCOUNT)
            return (problem,) * 4 + (gr.skip(),) * (len(VIEWS) - 4)
        return self._views(caller)

    def _views(self, caller: Caller) -> tuple[Any, ...]:
        ws = self.workspace
        try:
            users = ws.users(caller)
            teams = ws.teams(caller)
            collections = ws.collections(caller)
            keys = ws.keys(caller)
        except CitadelError as exc:
            problem = message_html("error", str(exc))
            return (problem,) * 4 + (gr.skip(),) * (len(VIEWS) - 4)
        names = [u.name for u in users]
        team_names = list(teams)
        owners = [(ADMINS_ONLY, ""), *[(t, t) for t in team_names]]
        collection_names = [c.name for c in collections]
        active = [k for k in keys if not k["revoked"]]
        key_choices = [
            (
                f"{k['prefix']}… of {k['user']}" + (f" ({k['label']})" if k["label"] else ""),
                f"{k['user']}\t{k['prefix']}",
            )
            for k in active
        ]
        return (
            users_html(
                [(u.name, u.role, u.teams, u.disabled, u.created_at, u.source) for u in users]
            ),
            teams_html(teams),
            collections_html([(c.name, c.team, c.documents, c.chunks) for c in collections]),
            keys_html(keys),
            gr.Dropdown(choices=names),
            gr.Dropdown(choices=names),
            gr.Dropdown(choices=team_names),
            gr.Dropdown(choices=team_names),
            gr.Dropdown(choices=owners),
            gr.Dropdown(choices=owners),
            gr.Dropdown(choices=collection_names),
            gr.Dropdown(choices=collection_names),
            gr.Dropdown(choices=key_choices, value=None),
            gr.Dropdown(choices=[("anyone", ""), *[(n, n) for n in names]]),
        )

    def _done(self, caller: Caller, note: str, *fields: Any) -> tuple[Any, ...]:
        """A change made: the confirmation, the fields to reset, every list refreshed."""
        return (message_html("ok", note), *fields, *self._views(caller))

    @staticmethod
    def _refused(problem: str, fields: int) -> tuple[Any, ...]:
        """A change refused: why, and nothing else touched (what was typed stays)."""
        return (message_html("error", problem), *[gr.skip()] * (fields + len(VIEWS)))

    # -- users ---------------------------------------------------------------------------
    def add_user(
        self,
        name: str | None,
        password: str | None,
        role: str | None,
        teams: Sequence[str] | None,
        request: gr.Request,
    ) -> tuple[Any, ...]:
        """Outputs: status, name, password, teams, then VIEWS."""
        caller = self._caller(request)
        if caller is None:
            return self._refused(NO_ACCOUNT, 3)
        name = (name or "").strip()
        if not name:
            return self._refused("Type the new user's name.", 3)
        if not password:
            return self._refused("Type a password for the new user.", 3)
        chosen = list(teams or [])
        try:
            admin = self.workspace.administration(caller, "add users", self._client(request))
            admin.add_user(name, password, role or "member", chosen)
        except CitadelError as exc:
            return self._refused(_sentence(exc), 3)
        where = f" in {', '.join(chosen)}" if chosen else ""
        word = "administrator" if role == "admin" else "user"
        note = f"Added {word} {name}{where}: they can sign in now."
        return self._done(caller, note, "", "", gr.update(value=[]))

    def pick_user(self, name: str | None, request: gr.Request) -> Any:
        """A user chosen to change: their teams, ready to edit."""
        caller = self._caller(request)
        if caller is None or not name:
            return gr.update(value=[])
        try:
            users = {u.name: u for u in self.workspace.users(caller)}
        except CitadelError:
            return gr.update(value=[])
        user = users.get(name)
        return gr.update(value=list(user.teams) if user else [])

    def disable_user(self, name: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Outputs: status, then VIEWS."""
        return self._set_disabled(name, True, request)

    def enable_user(self, name: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Outputs: status, then VIEWS."""
        return self._set_disabled(name, False, request)

    def _set_disabled(
        self, name: str | None, disabled: bool, request: gr.Request
    ) -> tuple[Any, ...]:
        caller = self._caller(request)
        if caller is None:
            return self._refused(NO_ACCOUNT, 0)
        if not name:
            return self._refused("Choose a user first.", 0)
        what = "disable users" if disabled else "enable users"
        try:
            admin = self.workspace.administration(caller, what, self._client(request))
            admin.set_disabled(name, disabled)
        except CitadelError as exc:
            return self._refused(_sentence(exc), 0)
        if disabled:
            note = f"Disabled {name}: they can no longer sign in or use their API keys."
        else:
            note = f"Enabled {name}: they can sign in again."
        return self._done(caller, note)

    def reset_password(
        self, name: str | None, password: str | None, request: gr.Request
    ) -> tuple[Any, ...]:
        """Outputs: status, password."""
        caller = self._caller(request)
        if caller is None:
            return message_html("error", NO_ACCOUNT), gr.skip()
        if not name:
            return message_html("error", "Choose a user first."), gr.skip()
        if not password:
            return message_html("error", "Type the new password."), gr.skip()
        try:
            admin = self.workspace.administration(caller, "reset passwords", self._client(request))
            admin.set_password(name, password)
        except CitadelError as exc:
            return message_html("error", _sentence(exc)), gr.skip()
        note = f"New password set for {name}; their open sessions have ended."
        return message_html("ok", note), ""

    def set_teams(
        self, name: str | None, teams: Sequence[str] | None, request: gr.Request
    ) -> tuple[Any, ...]:
        """Outputs: status, then VIEWS."""
        caller = self._caller(request)
        if caller is None:
            return self._refused(NO_ACCOUNT, 0)
        if not name:
            return self._refused("Choose a user first.", 0)
        chosen = list(teams or [])
        try:
            admin = self.workspace.administration(caller, "change teams", self._client(request))
            admin.set_teams(name, chosen)
        except CitadelError as exc:
            return self._refused(_sentence(exc), 0)
        where = ", ".join(chosen) if chosen else "no team"
        return self._done(caller, f"{name} is now in {where}.")

    # -- teams ---------------------------------------------------------------------------
    def add_team(self, name: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Outputs: status, name, then VIEWS."""
        caller = self._caller(request)
        if caller is None:
            return self._refused(NO_ACCOUNT, 1)
        name = (name or "").strip()
        if not name:
            return self._refused("Type the new team's name.", 1)
        try:
            self.workspace.administration(caller, "add teams", self._client(request)).add_team(name)
        except CitadelError as exc:
            return self._refused(_sentence(exc), 1)
        return self._done(caller, f"Added team {name}.", "")

    # -- collections ---------------------------------------------------------------------
    def create_collection(
        self, name: str | None, team: str | None, request: gr.Request
    ) -> tuple[Any, ...]:
        """Outputs: status, name, then VIEWS."""
        caller = self._caller(request)
        if caller is None:
            return self._refused(NO_ACCOUNT, 1)
        name = (name or "").strip()
        if not name:
            return self._refused("Type the new collection's name.", 1)
        try:
            if name in self.workspace.readable(caller) and caller.admin:
                problem = f"A collection named {name} already exists: change its owner below."
                return self._refused(problem, 1)
            self.workspace.create_collection(caller, name, team or None, self._client(request))
        except CitadelError as exc:
            return self._refused(_sentence(exc), 1)
        owner = team or "administrators only"
        return self._done(caller, f"Created {name}, readable by {owner}.", "")

    def set_owner(
        self, collection: str | None, team: str | None, request: gr.Request
    ) -> tuple[Any, ...]:
        """Outputs: status, then VIEWS."""
        caller = self._caller(request)
        if caller is None:
            return self._refused(NO_ACCOUNT, 0)
        if not collection:
            return self._refused("Choose a collection first.", 0)
        try:
            self.workspace.set_collection_owner(
                caller, collection, team or None, self._client(request)
            )
        except CitadelError as exc:
            return self._refused(_sentence(exc), 0)
        owner = team or "administrators only"
        return self._done(caller, f"{collection} now belongs to {owner}.")

    # -- API keys ------------------------------------------------------------------------
    def create_key(
        self, user: str | None, label: str | None, request: gr.Request
    ) -> tuple[Any, ...]:
        """Outputs: the new key (shown once) or why not, label, then VIEWS."""
        caller = self._caller(request)
        if caller is None:
            return self._refused(NO_ACCOUNT, 1)
        if not user:
            return self._refused("Choose whose key it is first.", 1)
        try:
            admin = self.workspace.administration(caller, "create API keys", self._client(request))
            secret = admin.create_key(user, (label or "").strip())
        except CitadelError as exc:
            return self._refused(_sentence(exc), 1)
        return (secret_html(user, secret), "", *self._views(caller))

    def revoke_key(self, choice: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Outputs: status, then VIEWS. `choice`: "user<TAB>prefix" from the picker."""
        caller = self._caller(request)
        if caller is None:
            return self._refused(NO_ACCOUNT, 0)
        user, _, prefix = (choice or "").partition("\t")
        if not user or not prefix:
            return self._refused("Choose a key to revoke first.", 0)
        try:
            admin = self.workspace.administration(caller, "revoke API keys", self._client(request))
            admin.revoke_key(user, prefix)
        except CitadelError as exc:
            return self._refused(_sentence(exc), 0)
        return self._done(caller, f"Revoked {user}'s key {prefix}…: it no longer works.")

    # -- audit log -----------------------------------------------------------------------
    def audit(
        self,
        user: str | None,
        action: str | None,
        since: str | None,
        until: str | None,
        request: gr.Request,
    ) -> tuple[Any, ...]:
        """Outputs: the count line (or why not), the table. Dates are days (YYYY-MM-DD),
        both included; the newest AUDIT_SHOWN matching entries are shown."""
        caller = self._caller(request)
        if caller is None:
            return message_html("error", NO_ACCOUNT), gr.skip()
        try:
            start = _day(since, "From")
            end = _day(until, "To")
        except ValueError as exc:
            return message_html("error", str(exc)), gr.skip()
        if start and end and start > end:
            return message_html("error", "The “From” day comes after the “To” day."), gr.skip()
        filters: dict[str, Any] = {
            "actor": (user or "").strip() or None,
            "action": action or None,
            "since": start.isoformat() if start else None,
            "until": (end + timedelta(days=1)).isoformat() if end else None,
        }
        try:
            total = self.workspace.audit_count(caller, **filters)
            entries = self.workspace.audit_entries(caller, AUDIT_SHOWN, **filters)
        except CitadelError as exc:
            return message_html("error", _sentence(exc)), gr.skip()
        if total > len(entries):
            line = (
                f"Showing the newest {len(entries)} of {total} matching entries: narrow the "
                "filters or the days to see older ones."
            )
        else:
            line = f"Showing {len(entries)} of {total} matching entries, newest first."
        return message_html("info", line), audit_html(entries)

    # -- suggested questions -------------------------------------------------------------
    def load_starters(self, collection: str | None, request: gr.Request) -> str:
        return self.web.load_starters_editor(collection, request)

    def save_starters(
        self,
        collection: str | None,
        text: str | None,
        chosen: Sequence[str] | None,
        request: gr.Request,
    ) -> tuple[Any, ...]:
        """Outputs: status, the editor, the Ask tab's suggested questions."""
        return self.web.save_starters(collection, text, chosen, request)

    # -- model ---------------------------------------------------------------------------
    def model_status(self, request: gr.Request) -> str:
        caller = self._caller(request)
        if caller is None:
            return message_html("error", NO_ACCOUNT)
        try:
            status = self.workspace.model_status(caller)
        except CitadelError as exc:
            return message_html("error", _sentence(exc))
        return model_html(status)

    # -- feedback ------------------------------------------------------------------------
    def export(self, request: gr.Request) -> tuple[Any, ...]:
        return self.web.export(request)


# -- HTML ----------------------------------------------------------------------------------


def table_html(caption: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A table of escaped cells, in a scrollable region a keyboard can reach."""
    if not rows:
        return f'<p class="citadel-muted">{esc(caption)}: none yet.</p>'
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return (
        f'<div class="citadel-admin-table" role="region" aria-label="{esc(caption)}" '
        f'tabindex="0"><table><caption class="citadel-sr-only">{esc(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


# How each kind of account signs in; the role and teams of the SSO ones come from their
# provider at every login.
_SIGNS_IN = {"local": "password", "oidc": "single sign-on", "ldap": "directory"}


def users_html(users: Sequence[tuple[str, str, Sequence[str], bool, str, str]]) -> str:
    rows = [
        (
            name,
            "administrator" if role == "admin" else "member",
            ", ".join(teams) or "—",
            "disabled" if disabled else "active",
            _SIGNS_IN.get(source, source),
            ago(created),
        )
        for name, role, teams, disabled, created, source in users
    ]
    headers = ["User", "Role", "Teams", "Account", "Signs in with", "Added"]
    return table_html("Users", headers, rows)


def teams_html(teams: dict[str, list[str]]) -> str:
    rows = [(team, ", ".join(members) or "—", len(members)) for team, members in teams.items()]
    return table_html("Teams", ["Team", "Members", "Count"], rows)


def collections_html(collections: Sequence[tuple[str, str | None, int, int]]) -> str:
    rows = [
        (name, team or ADMINS_ONLY, documents, chunks)
        for name, team, documents, chunks in collections
    ]
    return table_html("Collections", ["Collection", "Owned by", "Documents", "Passages"], rows)


def keys_html(keys: Sequence[dict[str, object]]) -> str:
    rows = [
        (
            k["user"],
            k["label"] or "—",
            f"{k['prefix']}…",
            ago(str(k["created_at"])),
            ago(str(k["last_used_at"])) if k["last_used_at"] else "never",
            "revoked" if k["revoked"] else "active",
        )
        for k in keys
    ]
    headers = ["User", "Label", "Starts with", "Created", "Last used", "State"]
    return table_html("API keys", headers, rows)


def secret_html(user: str, secret: str) -> str:
    """A new key, shown this once: the server keeps only its hash."""
    return (
        '<div class="citadel-secret" role="status">'
        f"<p><strong>New API key for {esc(user)}. Copy it now: it is shown only this once "
        "and cannot be recovered.</strong></p>"
        f'<p><code class="citadel-secret-key">{esc(secret)}</code></p>'
        "<p>Send it as <code>Authorization: Bearer &lt;key&gt;</code>.</p></div>"
    )


def audit_html(entries: Sequence[AuditEntry]) -> str:
    rows = [
        (
            e.at.replace("T", " ").removesuffix("+00:00") + " UTC",
            e.actor,
            e.action,
            e.collection or "",
            _detail(e.detail),
            e.client or "",
        )
        for e in entries
    ]
    headers = ["When", "User", "Action", "Collection", "Detail", "From"]
    return table_html("Audit log entries", headers, rows)


def model_html(status: dict[str, Any]) -> str:
    reachable = bool(status.get("reachable"))
    state = "reachable" if reachable else "not reachable"
    context = status.get("context_tokens")
    rows = [
        ("Provider", status.get("provider", "")),
        ("Model", status.get("model") or "none: search mode"),
        ("Where", status.get("host", "")),
        ("Context length", _context(context, bool(status.get("context_measured")))),
        ("Model server", state),
    ]
    embedder = status.get("embedder") or {}
    rows.append(
        (
            "Embedding model",
            f"{embedder.get('model', '')}"
            f" ({'loaded' if embedder.get('ok') else embedder.get('error', 'not loaded')})",
        )
    )
    store = status.get("store") or {}
    rows.append(("Vector store", "working" if store.get("ok") else store.get("error", "failing")))
    body = "".join(f'<tr><th scope="row">{esc(k)}</th><td>{esc(v)}</td></tr>' for k, v in rows)
    problem = ""
    if not reachable:
        problem = (
            '<div class="citadel-banner citadel-banner-error" role="alert">'
            "<strong>The model server does not answer: questions get search results only."
            f"</strong><div>{esc(status.get('error', ''))}</div></div>"
        )
    return (
        f'<div class="citadel-model" data-reachable="{str(reachable).lower()}">{problem}'
        '<div class="citadel-admin-table" role="region" aria-label="Model status" tabindex="0">'
        '<table><caption class="citadel-sr-only">Model status</caption>'
        f"<tbody>{body}</tbody></table></div></div>"
    )


def _context(tokens: int | None, measured: bool) -> str:
    if not tokens:
        return "unknown"
    if measured:
        return f"{tokens} tokens"
    return f"at most {tokens} tokens (the setting; the model's own length is unknown for now)"


def _detail(detail: dict[str, Any]) -> str:
    parts = []
    for key, value in detail.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}: {shown}")
    return shorten("; ".join(parts), 300)


def _day(text: str | None, which: str) -> date | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"“{which}” must be a day written as YYYY-MM-DD, such as 2026-12-05 "
            f"(it is “{shorten(text, 40)}”)."
        ) from None


def _sentence(exc: Exception) -> str:
    """An error of the service as a sentence (its messages start in lower case)."""
    text = str(exc).strip()
    if not text:
        return "That could not be done."
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."
