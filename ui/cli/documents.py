"""Commands on documents and collections: `ingest`, `sync`, `documents`, `remove`,
`collections`, `reindex` and `calibrate`. They work on the data directory, or through a
running server when `server.url` is set (the server owns the store while it runs)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from rag.calibration import recalibrate_if_needed
from rag.errors import CitadelError
from ui.cli.context import Cli, CollectionOpt, JsonOpt, cli, cli_actor, console
from ui.cli.render import printed_json, shown

if TYPE_CHECKING:
    from ingest.pipeline import IngestPipeline
    from rag.evidence import Calibration
    from rag.wiring import Services
    from ui.cli.remote import RemoteCitadel


def _ingest(
    state: Cli, paths: list[Path], collection: str, prune: bool, as_json: bool, quiet: bool
) -> None:
    from ui.service.ingestion import record_ingestion

    if (remote := state.remote()) is not None:
        max_bytes = int(state.settings.server.max_upload_mb * 2**20)
        _ingest_remote(remote, paths, collection, prune, as_json, quiet, max_bytes)
        return
    services = state.services()
    try:
        report = local_pipeline(services, quiet).run(paths, collection, prune=prune)
    finally:
        services.close()
    with state.metadata() as meta:
        record_ingestion(meta.failures, meta.audit, cli_actor(), collection, report, prune)
    if as_json:
        print(printed_json(report.to_json(), indent=2))
    else:
        _print_summary(report.to_json())
    if report.counts()["failed"]:
        raise typer.Exit(1)


def local_pipeline(services: Services, quiet: bool) -> IngestPipeline:
    """The ingestion pipeline on the data directory, its progress on stderr."""
    from ingest.pipeline import IngestPipeline
    from ingest.progress import progress_for

    return IngestPipeline(
        services.store,
        services.embedder,
        services.sparse,
        services.settings.ingest,
        progress_for(sys.stderr, quiet),
    )


def _ingest_remote(
    remote: RemoteCitadel,
    paths: list[Path],
    collection: str,
    prune: bool,
    as_json: bool,
    quiet: bool,
    max_bytes: int,
) -> None:
    if prune:
        raise CitadelError("--prune (sync) works on the data directory, not through a server")
    err = console(stderr=True)

    def on_file(outcome: dict[str, str]) -> None:
        if not quiet and not as_json:
            reason = f": {shown(outcome['reason'])}" if outcome.get("reason") else ""
            err.print(f"{outcome['status']:>9} {shown(outcome['source'])}{reason}")

    with remote:
        outcomes = remote.upload(paths, collection, max_bytes, on_file)
    failed = sum(o["status"] == "failed" for o in outcomes)
    if as_json:
        print(printed_json({"collection": collection, "files": outcomes}))
    else:
        counts = Counter(o["status"] for o in outcomes)
        console().print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    if failed:
        raise typer.Exit(1)


def ingest(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (recursive).")],
    collection: CollectionOpt = "default",
    prune: Annotated[bool, typer.Option(help="Remove documents whose files disappeared.")] = False,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Ingest files and folders into a collection; unchanged files are skipped."""
    _ingest(cli(ctx), paths, collection, prune, as_json, quiet)


def sync(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Folders the collection mirrors.")],
    collection: CollectionOpt = "default",
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Make the collection mirror the folders: ingest --prune."""
    _ingest(cli(ctx), paths, collection, True, as_json, quiet)


def documents(
    ctx: typer.Context, collection: CollectionOpt = "default", as_json: JsonOpt = False
) -> None:
    """List the documents indexed in a collection."""
    if (remote := cli(ctx).remote()) is not None:
        with remote:
            rows = remote.documents(collection)
    else:
        services = cli(ctx).services()
        try:
            docs = services.store.documents(collection)
        finally:
            services.close()
        rows = [d.payload() | {"id": d.id} for d in docs]
        for row in rows:
            row.pop("kind")
            row.pop("document_id")
    if as_json:
        print(printed_json({"collection": collection, "documents": rows}, indent=2))
        return
    table = Table(title=f"{len(rows)} document(s) in {collection!r}")
    table.add_column("source", overflow="fold")  # wrap long names, never cut them
    for name in ("type", "pages", "chunks", "ingested at (UTC)", "sha256"):
        table.add_column(name, no_wrap=True)
    for d in rows:
        table.add_row(
            shown(d["source"]),
            d["file_type"],
            str(d["pages"] or ""),
            str(d["chunks"]),
            d["ingested_at"][:16].replace("T", " "),
            d["sha256"][:12],
        )
    console().print(table)


def remove(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="Document ID, its source path, or a file path.")],
    collection: CollectionOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Delete a document's chunks from a collection (through the server, when one is
    configured: then the file is named by its ID, its source or its file name)."""
    if (remote := cli(ctx).remote()) is not None:
        with remote:
            docs = remote.documents(collection)
            name = Path(target).name
            matches = [d for d in docs if target in (d["id"], d["source"])] or [
                d for d in docs if d["source"] == name
            ]
            if not matches:
                raise CitadelError(f"no document in {collection!r} matches {target!r}")
            removed = [(d["id"], d["source"], remote.delete(d["id"])) for d in matches]
    else:
        removed = _remove_local(cli(ctx), target, collection)
    if as_json:
        print(
            printed_json(
                {
                    "collection": collection,
                    "removed": [{"id": i, "source": src, "chunks": n} for i, src, n in removed],
                }
            )
        )
        return
    for _, source, n in removed:
        console().print(f"removed {shown(source)} ({n} chunks)")


def _remove_local(state: Cli, target: str, collection: str) -> list[tuple[str, str, int]]:
    services = state.services()
    try:
        docs = services.store.documents(collection)
        absolute = str(Path(target).absolute())
        matches = [
            d
            for d in docs
            if target in (d.id, d.source) or absolute == str(Path(d.root) / d.source)
        ]
        if not matches:
            raise CitadelError(f"no document in {collection!r} matches {target!r}")
        removed = [
            (d.id, d.source, services.store.delete_document(collection, d.id)) for d in matches
        ]
    finally:
        services.close()
    with state.metadata() as meta:
        for _, source, chunks in removed:
            meta.audit.record(cli_actor(), "delete", collection, source=source, chunks=chunks)
    return removed


def reindex(
    ctx: typer.Context,
    collection: Annotated[str, typer.Argument(help="The collection to rebuild.")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Re-embed a collection with the configured embedding model, from its stored chunks
    (no file is read again). An interrupted run is resumed by running it again."""
    from ingest.reindex import reindex as rebuild

    state = cli(ctx)
    if state.remote() is not None:
        raise CitadelError("reindex works on the data directory: stop the server first")
    err = console(stderr=True)

    def progress(done: int, total: int) -> None:
        if not quiet:
            err.print(f"re-embedded {done}/{total} chunks", end="\r" if done < total else "\n")

    services = state.services()
    try:
        report = rebuild(
            services.store,
            services.embedder,
            services.sparse,
            services.settings.ingest,
            collection,
            services.settings.data_dir,
            progress,
        )
        # Cosines of the new model lie elsewhere: the evidence gate is fitted to it now.
        fitted = _fit(services, collection, force=False)
    finally:
        services.close()
    with state.metadata() as meta:
        meta.audit.record(
            cli_actor(),
            "reindex",
            collection,
            built_with=report.built_with,
            model=report.model,
            chunks=report.chunks,
        )
    resumed = " (an interrupted run resumed)" if report.resumed else ""
    console().print(
        f"[bold]{shown(collection)}[/]: {report.documents} documents, {report.chunks} chunks "
        f"re-embedded with {shown(report.model)} (was {shown(report.built_with)}){resumed}"
        + (f"; {report.cut_chunks} longer than its window" if report.cut_chunks else "")
    )
    if fitted is not None:
        console().print(_calibration_line(collection, fitted))


def calibrate(
    ctx: typer.Context,
    collection: Annotated[str, typer.Argument(help="The collection to calibrate.")],
) -> None:
    """Fit the collection's evidence gate again now: where its own pseudo-questions and
    off-topic questions lie decides when a question is refused without calling the model.
    Ingestion does it by itself for a new collection or after a large change."""
    state = cli(ctx)
    if state.remote() is not None:
        raise CitadelError("calibrate works on the data directory: stop the server first")
    services = state.services()
    try:
        fitted = _fit(services, collection, force=True)
    finally:
        services.close()
    if fitted is None:
        raise CitadelError(f"collection {collection!r} has too little text to calibrate")
    console().print(_calibration_line(collection, fitted))


def _fit(services: Services, collection: str, force: bool) -> Calibration | None:
    return recalibrate_if_needed(
        services.store,
        services.embedder,
        services.sparse,
        collection,
        services.settings.ingest,
        force,
    )


def _calibration_line(collection: str, fitted: Calibration) -> str:
    return (
        f"[bold]{shown(collection)}[/]: evidence threshold {fitted.threshold:.2f} fitted on "
        f"{fitted.chunks} chunks; it refuses {fitted.positives_refused:.0%} of "
        f"{fitted.positives} questions drawn from the collection and "
        f"{fitted.negatives_refused:.0%} of {fitted.negatives} off-topic questions"
    )


def collections(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List collections with their counts and embedding model (through a server: the
    collections your teams may read, with their team)."""
    if (remote := cli(ctx).remote()) is not None:
        with remote:
            readable = remote.collections()
        if as_json:
            print(printed_json({"collections": readable}, indent=2))
            return
        listing = Table("collection", "team", "documents", "chunks")
        for c in readable:
            listing.add_row(
                shown(c["name"]), shown(c["team"] or "-"), str(c["documents"]), str(c["chunks"])
            )
        console().print(listing)
        return
    services = cli(ctx).services()
    try:
        infos = services.store.collections()
    finally:
        services.close()
    current = services.settings.embedding.model
    rows = [
        {
            "name": c.name,
            "documents": c.documents,
            "chunks": c.chunks,
            "embedding_model": c.spec.embedding_model,
            "dimension": c.spec.dimension,
        }
        for c in infos
    ]
    if as_json:
        print(printed_json({"collections": rows}, indent=2))
        return
    table = Table("collection", "documents", "chunks", "embedding model", "dimension")
    for r in rows:
        table.add_row(
            str(r["name"]),
            str(r["documents"]),
            str(r["chunks"]),
            shown(str(r["embedding_model"])),
            str(r["dimension"]),
        )
    console().print(table)
    for r in rows:
        if r["embedding_model"] != current:
            console(stderr=True).print(
                f"{shown(str(r['name']))} was built with {shown(str(r['embedding_model']))}; "
                f"new collections use {shown(current)}. To move it: citadel reindex "
                f"{shown(str(r['name']))}"
            )


def _print_summary(report: dict[str, Any]) -> None:
    counts = report["counts"]
    out = console()
    out.print(
        f"[bold]{report['collection']}[/]: "
        + ", ".join(f"{n} {s}" for s, n in counts.items())
        + f"; {report['chunks_written']} chunks written, {report['truncated_chunks']} truncated;"
        f" {report['seconds']:.1f} s"
    )
    problems = [f for f in report["files"] if f["status"] in {"failed", "skipped"}]
    if problems:
        table = Table("status")
        table.add_column("file", overflow="fold")
        table.add_column("reason", overflow="fold")
        for f in problems:
            style = "red" if f["status"] == "failed" else "yellow"
            table.add_row(f"[{style}]{f['status']}[/]", shown(f["source"]), shown(f["reason"]))
        console().print(table)
