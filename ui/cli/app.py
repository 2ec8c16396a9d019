"""The `citadel` command line: the app, its settings callback, and where each command lives.

    documents.py   ingest, sync, documents, remove, collections, reindex, calibrate
    questions.py   search, ask, chat, eval
    admin.py       serve, users, teams, assign, starters, audit, feedback
    sources.py     sources add, list, remove, sync: folders kept in sync

Exit codes: 0 done, 1 done but some files failed, 2 could not run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from rag.errors import CitadelError
from rag.settings import load_settings
from ui.cli import admin, documents, questions, sources
from ui.cli.context import Cli, console
from ui.cli.render import shown

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Citadel: ask your company's documents, with citations, fully on premises.",
)


@app.callback()
def _configure(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory (CITADEL_DATA_DIR).")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="YAML settings file (CITADEL_CONFIG).", envvar="CITADEL_CONFIG"),
    ] = None,
) -> None:
    overrides: dict[str, Any] = {"data_dir": data_dir} if data_dir else {}
    ctx.obj = Cli(load_settings(config, overrides))


for command in (
    documents.ingest,
    documents.sync,
    documents.documents,
    documents.remove,
    documents.collections,
    documents.reindex,
    documents.calibrate,
    questions.search,
    questions.ask,
    questions.chat,
):
    app.command()(command)
app.command(name="eval")(questions.evaluate_command)
admin.register(app)
app.add_typer(sources.sources_app, name="sources")


def main() -> None:
    try:
        app()
    except CitadelError as exc:
        console(stderr=True).print(f"[red]error:[/] {shown(str(exc))}")
        sys.exit(2)
