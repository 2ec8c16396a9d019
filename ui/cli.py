"""The `citadel` command line. Exit codes: 0 done, 1 done but some files failed, 2 could not run."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from rag.answering import Answer, Delta
from rag.errors import CitadelError
from rag.settings import Settings, load_settings
from rag.types import Message, SearchFilter
from rag.wiring import Services
from ui.cli_admin import register as register_admin_commands
from ui.render import (
    answer_json,
    passage_from_json,
    print_eval,
    print_passages,
    print_sources,
    retrieval_json,
    shown,
)

if TYPE_CHECKING:
    from ingest.report import IngestReport
    from ui.remote import RemoteCitadel

AUDITED_NAMES = 1000  # file names an audit entry lists at most (counts are always complete)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Citadel: ask your company's documents, with citations, fully on premises.",
)


def _console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Piped into a file or grep: wide lines, so names are never folded or cut.
    width = None if stream.isatty() else 240
    return Console(stderr=stderr, highlight=False, emoji=False, soft_wrap=True, width=width)


CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


class _State:
    settings: Settings | None = None


def current_settings() -> Settings:
    assert _State.settings is not None
    return _State.settings


def console() -> Console:
    return _console()


def _services() -> Services:
    return Services(current_settings())


def _remote() -> RemoteCitadel | None:
    """The running server to go through, when `server.url` is configured."""
    server = current_settings().server
    if not server.url:
        return None
    from ui.remote import RemoteCitadel

    key = server.api_key.get_secret_value() if server.api_key else None
    return RemoteCitadel(server.url, key)


@app.callback()
def _configure(
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory (CITADEL_DATA_DIR).")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="YAML settings file (CITADEL_CONFIG).", envvar="CITADEL_CONFIG"),
    ] = None,
) -> None:
    overrides: dict[str, Any] = {"data_dir": data_dir} if data_dir else {}
    _State.settings = load_settings(config, overrides)


def _ingest(paths: list[Path], collection: str, prune: bool, as_json: bool, quiet: bool) -> None:
    from ingest.pipeline import IngestPipeline
    from ingest.progress import progress_for

    if (remote := _remote()) is not None:
        _ingest_remote(remote, paths, collection, prune, as_json, quiet)
        return
    services = _services()
    try:
        pipeline = IngestPipeline(
            services.store,
            services.embedder,
            services.sparse,
            services.settings.ingest,
            progress_for(sys.stderr, quiet),
        )
        report = pipeline.run(paths, collection, prune=prune)
    finally:
        services.close()
    _record_ingestion(collection, report, complete=prune)
    if as_json:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        _print_summary(report.to_json())
    if report.counts()["failed"]:
        raise typer.Exit(1)


def _record_ingestion(collection: str, report: IngestReport, complete: bool) -> None:
    """What the web UI and the audit log show of a command-line ingestion, as of an upload:
    the files that could not go in, and who changed the collection (cli:<os user>)."""
    from ui.cli_admin import cli_actor, open_metadata

    counts = report.counts()
    changed = {s: counts[s] for s in ("added", "updated", "removed") if counts[s]}
    with open_metadata() as meta:
        meta.failures.record(collection, report.files, complete)
        if changed or counts["failed"]:
            removed = [f.source for f in report.files if f.status == "removed"]
            meta.audit.record(
                cli_actor(),
                "ingest",
                collection,
                counts=counts,
                removed=removed[:AUDITED_NAMES],
            )


def _ingest_remote(
    remote: RemoteCitadel,
    paths: list[Path],
    collection: str,
    prune: bool,
    as_json: bool,
    quiet: bool,
) -> None:
    if prune:
        raise CitadelError("--prune (sync) works on the data directory, not through a server")
    err = _console(stderr=True)

    def on_file(outcome: dict[str, str]) -> None:
        if not quiet and not as_json:
            reason = f": {shown(outcome['reason'])}" if outcome.get("reason") else ""
            err.print(f"{outcome['status']:>9} {shown(outcome['source'])}{reason}")

    max_bytes = int(current_settings().server.max_upload_mb * 2**20)
    try:
        outcomes = remote.upload(paths, collection, max_bytes, on_file)
    finally:
        remote.close()
    failed = sum(o["status"] == "failed" for o in outcomes)
    if as_json:
        print(json.dumps({"collection": collection, "files": outcomes}, ensure_ascii=False))
    else:
        counts = Counter(o["status"] for o in outcomes)
        _console().print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    if failed:
        raise typer.Exit(1)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (recursive).")],
    collection: CollectionOpt = "default",
    prune: Annotated[bool, typer.Option(help="Remove documents whose files disappeared.")] = False,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Ingest files and folders into a collection; unchanged files are skipped."""
    _ingest(paths, collection, prune, as_json, quiet)


@app.command()
def sync(
    paths: Annotated[list[Path], typer.Argument(help="Folders the collection mirrors.")],
    collection: CollectionOpt = "default",
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Make the collection mirror the folders: ingest --prune."""
    _ingest(paths, collection, True, as_json, quiet)


@app.command()
def documents(collection: CollectionOpt = "default", as_json: JsonOpt = False) -> None:
    """List the documents indexed in a collection."""
    if (remote := _remote()) is not None:
        try:
            rows = remote.documents(collection)
        finally:
            remote.close()
    else:
        services = _services()
        try:
            docs = services.store.documents(collection)
        finally:
            services.close()
        rows = [d.payload() | {"id": d.id} for d in docs]
        for row in rows:
            row.pop("kind")
            row.pop("document_id")
    if as_json:
        print(
            json.dumps({"collection": collection, "documents": rows}, ensure_ascii=False, indent=2)
        )
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
    _console().print(table)


@app.command()
def remove(
    target: Annotated[str, typer.Argument(help="Document ID, its source path, or a file path.")],
    collection: CollectionOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Delete a document's chunks from a collection (through the server, when one is
    configured: then the file is named by its ID, its source or its file name)."""
    if (remote := _remote()) is not None:
        try:
            docs = remote.documents(collection)
            name = Path(target).name
            matches = [d for d in docs if target in (d["id"], d["source"])] or [
                d for d in docs if d["source"] == name
            ]
            if not matches:
                raise CitadelError(f"no document in {collection!r} matches {target!r}")
            removed = [(d["id"], d["source"], remote.delete(d["id"])) for d in matches]
        finally:
            remote.close()
    else:
        removed = _remove_local(target, collection)
    if as_json:
        print(
            json.dumps(
                {
                    "collection": collection,
                    "removed": [{"id": i, "source": src, "chunks": n} for i, src, n in removed],
                },
                ensure_ascii=False,
            )
        )
        return
    for _, source, n in removed:
        _console().print(f"removed {shown(source)} ({n} chunks)")


def _remove_local(target: str, collection: str) -> list[tuple[str, str, int]]:
    from ui.cli_admin import cli_actor, open_metadata

    services = _services()
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
    with open_metadata() as meta:
        for _, source, chunks in removed:
            meta.audit.record(cli_actor(), "delete", collection, source=source, chunks=chunks)
    return removed


@app.command()
def collections(as_json: JsonOpt = False) -> None:
    """List collections with their counts and embedding model (through a server: the
    collections your teams may read, with their team)."""
    if (remote := _remote()) is not None:
        try:
            readable = remote.collections()
        finally:
            remote.close()
        if as_json:
            print(json.dumps({"collections": readable}, ensure_ascii=False, indent=2))
            return
        listing = Table("collection", "team", "documents", "chunks")
        for c in readable:
            listing.add_row(
                shown(c["name"]), shown(c["team"] or "-"), str(c["documents"]), str(c["chunks"])
            )
        _console().print(listing)
        return
    services = _services()
    try:
        infos = services.store.collections()
    finally:
        services.close()
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
        print(json.dumps({"collections": rows}, ensure_ascii=False, indent=2))
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
    _console().print(table)


CollectionsOpt = Annotated[
    list[str] | None,
    typer.Option("--collection", "-c", help="Collection to search (repeat for several)."),
]
TypeOpt = Annotated[
    list[str] | None, typer.Option("--type", help="Only these file types (pdf, docx, ...).")
]
PathOpt = Annotated[str | None, typer.Option("--path", help="Only documents under this folder.")]


def _scope(
    collections: list[str] | None, types: list[str] | None, path: str | None
) -> tuple[list[str], SearchFilter | None]:
    """What a command searches: the collections given (or `default`) and its filter."""
    return collections or ["default"], _filter(types, path)


def _filter(types: list[str] | None, path: str | None) -> SearchFilter | None:
    if not types and not path:
        return None
    folder = (path or "").replace("\\", "/").strip()
    while folder.startswith("./"):
        folder = folder[2:]
    return SearchFilter(
        file_types=tuple(t.lower().lstrip(".") for t in types or ()),
        source_prefix=folder.strip("/") or None,
    )


@app.command()
def search(
    question: Annotated[str, typer.Argument(help="What to look for.")],
    collection: CollectionsOpt = None,
    top_k: Annotated[
        int | None,
        typer.Option("--top-k", "-k", min=1, max=100, help="Passages (default: retrieval.top_k)."),
    ] = None,
    file_type: TypeOpt = None,
    path: PathOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the ranked passages for a question, without a model: the answers' retrieval."""
    collections, search_filter = _scope(collection, file_type, path)
    if (remote := _remote()) is not None:
        try:
            found = remote.search(question, collections, search_filter, top_k)
        finally:
            remote.close()
        if as_json:
            print(json.dumps(found, ensure_ascii=False, indent=2))
        else:
            print_passages(_console(), [passage_from_json(p) for p in found["passages"]])
        return
    services = _services()
    try:
        retrieval = services.retriever.retrieve(question, collections, search_filter, top_k)
    finally:
        services.close()
    if as_json:
        print(json.dumps(retrieval_json(retrieval), ensure_ascii=False, indent=2))
        return
    out = _console()
    print_passages(out, retrieval.passages)
    verdict = " (weak: an answer would be refused)" if retrieval.weak_evidence else ""
    out.print(
        f"[dim]evidence {retrieval.evidence.score:.2f}{verdict}; {retrieval.latency_ms:.0f} ms[/]"
    )


def _answer(
    source: Services | RemoteCitadel,
    question: str,
    collections: list[str],
    history: list[Message],
    search_filter: SearchFilter | None,
    as_json: bool,
) -> Answer:
    """Stream one answer to the terminal (or print it as JSON); return it."""
    out, err = _console(), _console(stderr=True)
    answer: Answer | None = None
    streamed = False
    asking = source.answers.ask if isinstance(source, Services) else source.ask
    for event in asking(question, collections, history, search_filter):
        if isinstance(event, Delta):
            streamed = True
            if not as_json:
                out.print(shown(event.text), end="")
                out.file.flush()
        else:
            answer = event
    assert answer is not None
    if as_json:
        print(json.dumps(answer_json(answer), ensure_ascii=False, indent=2))
        return answer
    if not streamed:  # decided without the model (refusal on weak evidence)
        out.print(shown(answer.text), end="")
    out.print()
    if answer.notice:
        style = "yellow" if answer.search_mode or answer.refused else "red"
        err.print(f"[{style}]{shown(answer.notice)}[/]")
    print_sources(out, answer)
    return answer


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="Your question.")],
    collection: CollectionsOpt = None,
    file_type: TypeOpt = None,
    path: PathOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question from the documents, streamed, with numbered sources."""
    collections, search_filter = _scope(collection, file_type, path)
    source = _remote() or _services()
    try:
        _answer(source, question, collections, [], search_filter, as_json)
    finally:
        source.close()


@app.command()
def chat(
    collection: CollectionsOpt = None,
    file_type: TypeOpt = None,
    path: PathOpt = None,
) -> None:
    """A conversation: follow-up questions are understood with the history. Ctrl-D ends."""
    collections, search_filter = _scope(collection, file_type, path)
    services = _remote() or _services()
    history: list[Message] = []
    out = _console()
    out.print("[dim]Ask a question; follow-ups may refer to earlier answers. Ctrl-D to quit.[/]")
    try:
        while True:
            try:
                question = input("\nyou> ").strip()
            except EOFError:
                out.print()
                break
            if not question:
                continue
            if question in {"/exit", "/quit"}:
                break
            try:
                answer = _answer(services, question, collections, history, search_filter, False)
            except CitadelError as exc:
                _console(stderr=True).print(f"[red]error:[/] {shown(str(exc))}")
                continue
            history += [Message("user", question), Message("assistant", answer.text)]
    finally:
        services.close()


@app.command(name="eval")
def evaluate_command(
    questions: Annotated[Path, typer.Argument(help="Labelled questions, one JSON per line.")],
    root: Annotated[
        Path, typer.Option(help="Corpus root the questions' `sources` are relative to.")
    ],
    collection: CollectionsOpt = None,
    out: Annotated[Path | None, typer.Option(help="Write one JSON line per question.")] = None,
    no_generate: Annotated[
        bool, typer.Option("--no-generate", help="Retrieval and refusal only, no model.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Measure retrieval, citations and refusals on a labelled question set."""
    from rag import evaluation

    items = evaluation.load_questions(questions)
    collections, _ = _scope(collection, None, None)
    results_file = None
    if out is not None:
        try:  # before the run: a long evaluation must not end on "cannot write"
            results_file = out.open("w", encoding="utf-8")
        except OSError as exc:
            raise CitadelError(f"cannot write the results to {out}: {exc}") from exc
    services = _services()
    try:
        documents = [
            (d.id, d.root, d.source) for c in collections for d in services.store.documents(c)
        ]
        to_source = evaluation.source_mapper(documents, root)
        under_root = [d for d in documents if not Path(to_source(d[0])).is_absolute()]
        if not under_root:
            raise CitadelError(
                f"no document of {', '.join(collections)} was ingested from {root}: run "
                f"`citadel ingest {root} -c {collections[0]}` first"
            )
        answers = None if no_generate else services.answers
        err = _console(stderr=True)

        def progress(n: int, total: int, item: evaluation.QaItem) -> None:
            if err.is_terminal or n == total or n % 10 == 0:
                err.print(f"[dim]{n}/{total} {shown(item.id)}[/]")

        services.retriever.retrieve("warm-up", collections)  # load the model before timing
        outcomes = evaluation.evaluate(
            items, services.retriever, collections, to_source, answers, progress
        )
    finally:
        services.close()
    if results_file is not None:
        with results_file:
            for item in items:
                line = json.dumps(outcomes[item.id].to_json(), ensure_ascii=False)
                results_file.write(line + "\n")
    result = evaluation.report(items, outcomes)
    result["refusal_sweep"] = evaluation.refusal_sweep(items, outcomes)
    result["min_evidence"] = _State.settings.retrieval.min_evidence if _State.settings else None
    if as_json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return
    print_eval(_console(), result)


def _print_summary(report: dict[str, Any]) -> None:
    counts = report["counts"]
    out = _console()
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
        _console().print(table)


register_admin_commands(app)


def main() -> None:
    try:
        app()
    except CitadelError as exc:
        _console(stderr=True).print(f"[red]error:[/] {shown(str(exc))}")
        sys.exit(2)
