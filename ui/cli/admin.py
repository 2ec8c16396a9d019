"""Server and administration commands: `citadel serve`, `users`, `teams`, `assign`,
`starters`, `audit` and `feedback`. They work on the metadata database directly (SQLite
allows it while the server runs); account changes are audited as `cli:<os user>`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from rag.errors import CitadelError
from rag.ids import validate_collection_name
from ui.cli.context import cli, cli_actor, console
from ui.cli.render import printed_json, shown

if TYPE_CHECKING:
    from ui.metadata.administration import Administration

users_app = typer.Typer(no_args_is_help=True, help="Users of the server (admins only).")
teams_app = typer.Typer(no_args_is_help=True, help="Teams and their members.")
feedback_app = typer.Typer(no_args_is_help=True, help="Thumbs up/down given on answers.")


@contextmanager
def administration(ctx: typer.Context) -> Iterator[Administration]:
    """Audited changes to accounts, as the operating-system user running the command."""
    from ui.metadata.administration import Administration  # argon2: only where it is used

    with cli(ctx).metadata() as meta:
        yield Administration(meta.accounts, meta.audit, cli_actor())


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


# -- serve -----------------------------------------------------------------------------
def serve(
    ctx: typer.Context,
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
    from ui.http.app import check_bind
    from ui.http.app import serve as run
    from ui.service.workspace import Workspace

    settings = cli(ctx).settings
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
        out = console()
        out.print("loading the embedding model...")
        workspace.warm_up()
        url = f"http://{server.host}:{server.port}/"
        mode = "login required" if server.auth else "no login: local administrator"
        out.print(f"Citadel is serving on {url} ({mode}); API docs at {url}api/docs")
        run(workspace, server.host, server.port)
    finally:
        workspace.close()


# -- users -----------------------------------------------------------------------------
@users_app.command("add")
def users_add(
    ctx: typer.Context,
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
    with administration(ctx) as accounts:
        password = _password(password_stdin)
        accounts.add_user(name, password, "admin" if admin else "member", team or [])
    console().print(f"added {'administrator' if admin else 'user'} {shown(name)}")


@users_app.command("list")
def users_list(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    with cli(ctx).metadata() as meta:
        users = meta.accounts.users()
    if as_json:
        from ui.http.wire import UserOut

        print(printed_json([UserOut.of(u).model_dump() for u in users], indent=2))
        return
    table = Table("user", "role", "teams", "disabled", "created", "from")
    for u in users:
        table.add_row(
            shown(u.name),
            u.role,
            shown(", ".join(u.teams)),
            str(u.disabled),
            u.created_at,
            u.source,
        )
    console().print(table)


@users_app.command("passwd")
def users_passwd(
    ctx: typer.Context,
    name: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
) -> None:
    """Set a user's password."""
    with administration(ctx) as admin:
        admin.set_password(name, _password(password_stdin))
    console().print(f"password of {shown(name)} changed")


@users_app.command("remove")
def users_remove(ctx: typer.Context, name: str) -> None:
    with administration(ctx) as admin:
        admin.remove_user(name)
    console().print(f"removed {shown(name)}")


@users_app.command("disable")
def users_disable(ctx: typer.Context, name: str) -> None:
    """No login (password or single sign-on) and no API key until enabled; open sessions end."""
    with administration(ctx) as admin:
        admin.set_disabled(name, True)
    console().print(f"disabled {shown(name)}")


@users_app.command("enable")
def users_enable(ctx: typer.Context, name: str) -> None:
    with administration(ctx) as admin:
        admin.set_disabled(name, False)
    console().print(f"enabled {shown(name)}")


@users_app.command("key")
def users_key(
    ctx: typer.Context,
    name: str,
    label: Annotated[str, typer.Option(help="What the key is for.")] = "",
) -> None:
    """Create an API key for a user (printed once)."""
    with administration(ctx) as admin:
        secret = admin.create_key(name, label)
    print(secret)


# -- teams -----------------------------------------------------------------------------
@teams_app.command("add")
def teams_add(ctx: typer.Context, name: str) -> None:
    with administration(ctx) as admin:
        admin.add_team(name)
    console().print(f"added team {shown(name)}")


@teams_app.command("list")
def teams_list(ctx: typer.Context) -> None:
    with cli(ctx).metadata() as meta:
        teams = meta.accounts.teams()
        owners = meta.catalog.owners()
    table = Table("team", "members", "collections")
    for team, members in teams.items():
        owned = [c for c, t in owners.items() if t == team]
        table.add_row(shown(team), shown(", ".join(members)), shown(", ".join(owned)))
    console().print(table)


@teams_app.command("member")
def teams_member(
    ctx: typer.Context,
    team: str,
    user: str,
    remove: Annotated[bool, typer.Option("--remove", help="Take the user out.")] = False,
) -> None:
    """Put a user in a team (or take them out)."""
    with administration(ctx) as admin:
        admin.set_member(team, user, member=not remove)
    console().print(f"{shown(user)} {'left' if remove else 'joined'} {shown(team)}")


# -- collections -----------------------------------------------------------------------
def assign(
    ctx: typer.Context,
    collection: str,
    team: Annotated[
        str | None, typer.Option("--team", "-t", help="Owning team; omit: admins only.")
    ] = None,
) -> None:
    """Give a collection to a team: its members read it (and upload to it)."""
    with cli(ctx).metadata() as meta:
        meta.catalog.assign(validate_collection_name(collection), team)
        meta.audit.record(cli_actor(), "admin", collection, op="assign_collection", team=team)
    console().print(f"{shown(collection)} belongs to {shown(team or 'administrators only')}")


def starters(
    ctx: typer.Context,
    collection: str,
    questions: Annotated[
        list[str] | None, typer.Argument(help="Questions; none: list them.")
    ] = None,
) -> None:
    """Set (or show) the starter questions offered for a collection in the web UI."""
    with cli(ctx).metadata() as meta:
        if questions:
            saved = meta.catalog.set_starters(collection, questions)
            meta.audit.record(cli_actor(), "admin", collection, op="starters", count=len(saved))
        else:
            saved = meta.catalog.starters(collection)
    for q in saved:
        console().print(f"- {shown(q)}")


# -- audit and feedback ----------------------------------------------------------------
def audit(
    ctx: typer.Context,
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
    with cli(ctx).metadata() as meta:
        entries = meta.audit.entries(limit, user, action, since)
    if as_json:
        for e in entries:
            print(printed_json(e.to_json()))
        return
    table = Table("time", "user", "action", "collection", "detail")
    table.columns[4].overflow = "fold"
    for e in reversed(entries):
        detail = printed_json(e.detail)
        table.add_row(e.at, shown(e.actor), e.action, shown(e.collection or ""), shown(detail))
    console().print(table)


@feedback_app.command("export")
def feedback_export(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Argument(help="JSONL file to write (a `citadel eval` question set).")
    ],
) -> None:
    """Approved answers as a question set for `citadel eval`."""
    with cli(ctx).metadata() as meta:
        items = meta.feedback.export_questions()
    out.write_text("".join(printed_json(i) + "\n" for i in items), "utf-8")
    console().print(f"wrote {len(items)} questions to {shown(str(out))}")


@feedback_app.command("list")
def feedback_list(ctx: typer.Context) -> None:
    with cli(ctx).metadata() as meta:
        entries = meta.feedback.entries()
    for e in entries:
        print(printed_json(e.to_json()))


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(assign)
    app.command()(starters)
    app.command()(audit)
    app.add_typer(users_app, name="users")
    app.add_typer(teams_app, name="teams")
    app.add_typer(feedback_app, name="feedback")
