"""Server and administration commands: `citadel serve`, `users`, `teams`, `assign`,
`starters`, `audit` and `feedback`. They work on the metadata database directly (SQLite
allows it while the server runs)."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NamedTuple

import typer
from rich.console import Console
from rich.table import Table

from rag.errors import CitadelError
from rag.settings import Settings
from ui.accounts import Accounts
from ui.administration import Administration
from ui.audit import AuditLog
from ui.catalog import Catalog
from ui.failures import IngestFailures
from ui.feedback import FeedbackStore
from ui.metadata import Metadata
from ui.render import shown

users_app = typer.Typer(no_args_is_help=True, help="Users of the server (admins only).")
teams_app = typer.Typer(no_args_is_help=True, help="Teams and their members.")
feedback_app = typer.Typer(no_args_is_help=True, help="Thumbs up/down given on answers.")


def _settings() -> Settings:
    from ui.cli import current_settings

    return current_settings()


def _console() -> Console:
    from ui.cli import console

    return console()


class _Metadata(NamedTuple):
    admin: Administration  # changes to accounts, audited as cli:<os user>
    accounts: Accounts
    catalog: Catalog
    audit: AuditLog
    feedback: FeedbackStore
    failures: IngestFailures


@contextmanager
def open_metadata() -> Iterator[_Metadata]:
    """Accounts, catalog, audit log, feedback and ingestion failures, without opening the
    vector store."""
    meta = Metadata.open(_settings())
    try:
        yield _Metadata(
            Administration(meta.accounts, meta.audit, cli_actor()),
            meta.accounts,
            meta.catalog,
            meta.audit,
            meta.feedback,
            meta.failures,
        )
    finally:
        meta.close()


def cli_actor() -> str:
    """Who runs an administration command: the operating-system account, as the audit log
    shows it (the CLI has no Citadel login)."""
    return f"cli:{getpass.getuser()}"


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


# -- serve -----------------------------------------------------------------------------
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth",
            help="No login: the local user is the administrator. Refused off loopback.",
        ),
    ] = False,
) -> None:
    """Start the server: web UI at /, REST API at /api (docs at /api/docs), OpenAI-compatible
    API at /v1."""
    from ui.server import check_bind
    from ui.server import serve as run
    from ui.workspace import Workspace

    settings = _settings()
    server = settings.server.model_copy(
        update={
            "host": host or settings.server.host,
            "port": port or settings.server.port,
            "auth": settings.server.auth and not no_auth,
        }
    )
    settings = settings.model_copy(update={"server": server})
    check_bind(server.host, server.auth)  # before minutes of loading
    workspace = Workspace(settings)
    try:
        if server.auth and not workspace.accounts.has_users():
            raise CitadelError(
                "no user can log in yet: create the first administrator with "
                "`citadel users add NAME --admin`"
            )
        console = _console()
        console.print("loading the embedding model...")
        workspace.warm_up()
        url = f"http://{server.host}:{server.port}/"
        mode = "login required" if server.auth else "no login: local administrator"
        console.print(f"Citadel is serving on {url} ({mode}); API docs at {url}api/docs")
        run(workspace, server.host, server.port)
    finally:
        workspace.close()


# -- users -----------------------------------------------------------------------------
@users_app.command("add")
def users_add(
    name: str,
    admin: Annotated[
        bool, typer.Option("--admin", help="Administrator: manages everything.")
    ] = False,
    team: Annotated[
        list[str] | None, typer.Option("--team", "-t", help="Team (repeatable).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin (scripts).")
    ] = False,
) -> None:
    """Add a user; asks for the password (at least 10 characters)."""
    with open_metadata() as meta:
        password = _password(password_stdin)
        meta.admin.add_user(name, password, "admin" if admin else "member", team or [])
    _console().print(f"added {'administrator' if admin else 'user'} {shown(name)}")


@users_app.command("list")
def users_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    with open_metadata() as meta:
        users = meta.accounts.users()
    if as_json:
        rows = [
            {"name": u.name, "role": u.role, "teams": list(u.teams), "disabled": u.disabled}
            for u in users
        ]
        print(json.dumps(rows, indent=2))
        return
    table = Table("user", "role", "teams", "disabled", "created")
    for u in users:
        table.add_row(
            shown(u.name), u.role, shown(", ".join(u.teams)), str(u.disabled), u.created_at
        )
    _console().print(table)


@users_app.command("passwd")
def users_passwd(
    name: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
) -> None:
    """Set a user's password."""
    with open_metadata() as meta:
        meta.admin.set_password(name, _password(password_stdin))
    _console().print(f"password of {shown(name)} changed")


@users_app.command("remove")
def users_remove(name: str) -> None:
    with open_metadata() as meta:
        meta.admin.remove_user(name)
    _console().print(f"removed {shown(name)}")


@users_app.command("key")
def users_key(
    name: str, label: Annotated[str, typer.Option(help="What the key is for.")] = ""
) -> None:
    """Create an API key for a user (printed once)."""
    with open_metadata() as meta:
        secret = meta.admin.create_key(name, label)
    print(secret)


# -- teams -----------------------------------------------------------------------------
@teams_app.command("add")
def teams_add(name: str) -> None:
    with open_metadata() as meta:
        meta.admin.add_team(name)
    _console().print(f"added team {shown(name)}")


@teams_app.command("list")
def teams_list() -> None:
    with open_metadata() as meta:
        teams = meta.accounts.teams()
        owners = meta.catalog.owners()
    table = Table("team", "members", "collections")
    for team, members in teams.items():
        owned = [c for c, t in owners.items() if t == team]
        table.add_row(shown(team), shown(", ".join(members)), shown(", ".join(owned)))
    _console().print(table)


@teams_app.command("member")
def teams_member(
    team: str,
    user: str,
    remove: Annotated[bool, typer.Option("--remove", help="Take the user out.")] = False,
) -> None:
    """Put a user in a team (or take them out)."""
    with open_metadata() as meta:
        meta.admin.set_member(team, user, member=not remove)
    _console().print(f"{shown(user)} {'left' if remove else 'joined'} {shown(team)}")


# -- collections -----------------------------------------------------------------------
def assign(
    collection: str,
    team: Annotated[
        str | None, typer.Option("--team", "-t", help="Owning team; omit: admins only.")
    ] = None,
) -> None:
    """Give a collection to a team: its members read it (and upload to it)."""
    from rag.stores.base import validate_collection_name

    with open_metadata() as meta:
        meta.catalog.assign(validate_collection_name(collection), team)
        meta.audit.record(cli_actor(), "admin", collection, op="assign_collection", team=team)
    _console().print(f"{shown(collection)} belongs to {shown(team or 'administrators only')}")


def starters(
    collection: str,
    questions: Annotated[
        list[str] | None, typer.Argument(help="Questions; none: list them.")
    ] = None,
) -> None:
    """Set (or show) the starter questions offered for a collection in the web UI."""
    with open_metadata() as meta:
        if questions:
            saved = meta.catalog.set_starters(collection, questions)
            meta.audit.record(cli_actor(), "admin", collection, op="starters", count=len(saved))
        else:
            saved = meta.catalog.starters(collection)
    for q in saved:
        _console().print(f"- {shown(q)}")


# -- audit and feedback ----------------------------------------------------------------
def audit(
    limit: Annotated[int, typer.Option(help="Newest entries shown.")] = 50,
    user: Annotated[str | None, typer.Option(help="Only this user.")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action (ask, search, upload, login_failed...).")
    ] = None,
    since: Annotated[str | None, typer.Option(help="ISO date/time, e.g. 2026-11-01.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Read the audit log: who asked what, which documents were shown, uploads, deletions,
    logins and failed logins."""
    with open_metadata() as meta:
        entries = meta.audit.entries(limit, user, action, since)
    if as_json:
        for e in entries:
            print(json.dumps(e.to_json(), ensure_ascii=False))
        return
    table = Table("time", "user", "action", "collection", "detail")
    table.columns[4].overflow = "fold"
    for e in reversed(entries):
        detail = json.dumps(e.detail, ensure_ascii=False)
        table.add_row(e.at, shown(e.actor), e.action, shown(e.collection or ""), shown(detail))
    _console().print(table)


@feedback_app.command("export")
def feedback_export(
    out: Annotated[
        Path, typer.Argument(help="JSONL file to write (a `citadel eval` question set).")
    ],
) -> None:
    """Approved answers as a question set for `citadel eval`."""
    with open_metadata() as meta:
        items = meta.feedback.export_questions()
    out.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), "utf-8")
    _console().print(f"wrote {len(items)} questions to {shown(str(out))}")


@feedback_app.command("list")
def feedback_list() -> None:
    with open_metadata() as meta:
        entries = meta.feedback.entries()
    for e in entries:
        print(json.dumps(e.to_json(), ensure_ascii=False))


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(assign)
    app.command()(starters)
    app.command()(audit)
    app.add_typer(users_app, name="users")
    app.add_typer(teams_app, name="teams")
    app.add_typer(feedback_app, name="feedback")
