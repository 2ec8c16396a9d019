"""`citadel sources`: folders attached to collections, which the server keeps in sync.

With `server.url` set every command goes through the running server (it owns the store,
and checks the API key's rights); otherwise they work on the data directory, as the
operating-system user (audited as `cli:<os user>`), like the other administration commands.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from rag.errors import CitadelError
from ui.cli.context import Cli, JsonOpt, cli, cli_actor, console
from ui.cli.render import printed_json, shown

if TYPE_CHECKING:
    from ui.metadata import Metadata
    from ui.metadata.folders import FolderSource

sources_app = typer.Typer(
    no_args_is_help=True, help="Folders (mounted shares) kept in sync with collections."
)
COUNTED = ("added", "updated", "unchanged", "removed", "failed", "skipped")


@sources_app.command("add")
def sources_add(
    ctx: typer.Context,
    collection: Annotated[str, typer.Argument(help="Collection kept in sync with the folder.")],
    path: Annotated[str, typer.Argument(help="Absolute path of the folder on the server.")],
    as_json: JsonOpt = False,
) -> None:
    """Attach a folder to a collection (administrators); `citadel sources sync` syncs it."""
    state = cli(ctx)
    if (remote := state.remote()) is not None:
        with remote:
            added = remote.attach_folder(collection, path)
    else:
        from ui.service.folder_sync import attach

        with state.metadata() as meta:
            meta.catalog.register(_collection(collection))
            source = attach(state.settings, meta.folders, meta.audit, cli_actor(), collection, path)
            added = source.to_json()
    if as_json:
        print(printed_json(added))
        return
    console().print(
        f"attached {shown(added['path'])} to {shown(collection)} (id {added['id']}): "
        "`citadel sources sync` syncs it now"
    )


@sources_app.command("list")
def sources_list(
    ctx: typer.Context,
    collection: Annotated[str | None, typer.Option("--collection", "-c")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The attached folders, with their last sync: when, how long, counts and failures."""
    state = cli(ctx)
    if (remote := state.remote()) is not None:
        with remote:
            rows = remote.folder_sources(collection)
    else:
        with state.metadata() as meta:
            rows = [s.to_json() for s in meta.folders.all()]
        rows = [r for r in rows if collection in (None, r["collection"])]
    _print(rows, as_json)


@sources_app.command("remove")
def sources_remove(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="The folder's id or path.")],
    keep_documents: Annotated[
        bool, typer.Option(help="Keep its documents in the collection.")
    ] = False,
) -> None:
    """Detach a folder; its documents leave the collection (unless --keep-documents)."""
    state = cli(ctx)
    if (remote := state.remote()) is not None:
        with remote:
            removed = remote.detach_folder(ref, keep_documents)
    else:
        removed = _remove_local(state, ref, keep_documents)
    console().print(f"detached {shown(ref)}; {removed} document(s) removed from the collection")


@sources_app.command("sync")
def sources_sync(
    ctx: typer.Context,
    collection: Annotated[
        str | None, typer.Argument(help="Only this collection's folders (default: all).")
    ] = None,
    source: Annotated[
        str | None, typer.Option("--source", "-s", help="Only this folder (id or path).")
    ] = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Sync now and wait: new and changed files in, files gone out. Exit 1 when a file or
    a folder failed."""
    state = cli(ctx)
    if (remote := state.remote()) is not None:
        with remote:
            remote.sync_folders(collection, source)  # waits for the syncs to end
            rows = [
                r
                for r in remote.folder_sources(collection)
                if source is None or source.strip() in (str(r["id"]), r["path"])
            ]
    else:
        rows = _sync_local(state, collection, source, quiet)
    _print(rows, as_json)
    if any(r["error"] or r["counts"].get("failed") for r in rows):
        raise typer.Exit(1)


def _collection(name: str) -> str:
    from rag.ids import validate_collection_name

    return validate_collection_name(name)


def _chosen(meta: Metadata, collection: str | None, ref: str | None) -> list[FolderSource]:
    from ui.service.folder_sync import named

    every = meta.folders.all()
    if ref is not None:
        return [named(every, ref)]
    chosen = [s for s in every if collection in (None, s.collection)]
    if not chosen:
        raise CitadelError(
            f"no folder is attached to {collection!r}" if collection else "no folder is attached"
        )
    return chosen


def _remove_local(state: Cli, ref: str, keep_documents: bool) -> int:
    from ingest.mirror import forget
    from ui.service.folder_sync import detach, named

    with state.metadata() as meta:
        source = named(meta.folders.all(), ref)
        if keep_documents:
            return detach(meta.folders, meta.audit, cli_actor(), source, None)
        services = state.services()
        try:
            return detach(
                meta.folders,
                meta.audit,
                cli_actor(),
                source,
                lambda collection, folder: forget(services.store, collection, folder),
            )
        finally:
            services.close()


def _sync_local(
    state: Cli, collection: str | None, ref: str | None, quiet: bool
) -> list[dict[str, Any]]:
    from ingest.mirror import mirror
    from ingest.report import IngestReport
    from ui.cli.documents import local_pipeline
    from ui.service.folder_sync import record_sync

    with state.metadata() as meta:
        chosen = _chosen(meta, collection, ref)
        services = state.services()
        try:
            for source in chosen:
                if not quiet:
                    console(stderr=True).print(f"syncing {shown(source.path)}...")
                pipeline = local_pipeline(services, quiet)
                started = time.monotonic()
                report: IngestReport | None = None
                error = ""
                try:
                    report = mirror(pipeline, services.store, Path(source.path), source.collection)
                except CitadelError as exc:  # this folder's sync: the next one still runs
                    error = str(exc)
                if report is not None:
                    meta.failures.record(source.collection, report.files)
                seconds = time.monotonic() - started
                record_sync(
                    state.settings,
                    meta.folders,
                    meta.audit,
                    source,
                    report,
                    error,
                    seconds,
                    cli_actor(),
                )
        finally:
            services.close()
        ids = {s.id for s in chosen}
        return [s.to_json() for s in meta.folders.all() if s.id in ids]


def _print(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print(printed_json(rows, indent=2))
        return
    if not rows:
        console().print("no folder is attached")
        return
    table = Table(title=f"{len(rows)} folder(s) kept in sync")
    table.add_column("id", no_wrap=True)
    table.add_column("collection")
    table.add_column("folder", overflow="fold")
    table.add_column("last sync (UTC)", no_wrap=True)
    table.add_column("took", no_wrap=True)
    for name in COUNTED:
        table.add_column(name, no_wrap=True)
    for r in rows:
        when = (r["synced_at"] or "never")[:19].replace("T", " ")
        took = f"{r['seconds']:.1f} s" if r["seconds"] is not None else "-"
        counts = [str(r["counts"].get(name, "-")) for name in COUNTED]
        table.add_row(str(r["id"]), shown(r["collection"]), shown(r["path"]), when, took, *counts)
    out = console()
    out.print(table)
    for r in rows:
        if r["error"]:
            out.print(f"[red]{shown(r['path'])}:[/] {shown(r['error'])}")
        for f in r["failures"]:
            out.print(f"  {f['status']:>7} {shown(f['source'])}: {shown(f['reason'])}")
