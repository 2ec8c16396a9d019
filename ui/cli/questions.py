"""Commands that ask: `search`, `ask`, `chat` and `eval`, on the data directory or through
a running server (`server.url`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rag.errors import CitadelError
from rag.types import Answer, Delta, Message, SearchFilter
from rag.wiring import Services
from ui.cli.context import JsonOpt, cli, console
from ui.cli.render import print_eval, print_passages, print_sources, shown
from ui.http.wire import AnswerOut, RetrievalOut

if TYPE_CHECKING:
    from ui.cli.remote import RemoteCitadel

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


def search(
    ctx: typer.Context,
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
    if (remote := cli(ctx).remote()) is not None:
        try:
            found = remote.search(question, collections, search_filter, top_k)
        finally:
            remote.close()
        if as_json:
            print(json.dumps(found, ensure_ascii=False, indent=2))
        else:
            passages = RetrievalOut.model_validate(found).passages
            print_passages(console(), [p.passage() for p in passages])
        return
    services = cli(ctx).services()
    try:
        retrieval = services.retriever.retrieve(question, collections, search_filter, top_k)
    finally:
        services.close()
    if as_json:
        print(json.dumps(RetrievalOut.of(retrieval).model_dump(), ensure_ascii=False, indent=2))
        return
    out = console()
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
    out, err = console(), console(stderr=True)
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
        print(json.dumps(AnswerOut.of(answer).json_body(), ensure_ascii=False, indent=2))
        return answer
    if not streamed:  # decided without the model (refusal on weak evidence)
        out.print(shown(answer.text), end="")
    out.print()
    if answer.notice:
        style = "yellow" if answer.search_mode or answer.refused else "red"
        err.print(f"[{style}]{shown(answer.notice)}[/]")
    print_sources(out, answer)
    return answer


def ask(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="Your question.")],
    collection: CollectionsOpt = None,
    file_type: TypeOpt = None,
    path: PathOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question from the documents, streamed, with numbered sources."""
    collections, search_filter = _scope(collection, file_type, path)
    source = cli(ctx).remote() or cli(ctx).services()
    try:
        _answer(source, question, collections, [], search_filter, as_json)
    finally:
        source.close()


def chat(
    ctx: typer.Context,
    collection: CollectionsOpt = None,
    file_type: TypeOpt = None,
    path: PathOpt = None,
) -> None:
    """A conversation: follow-up questions are understood with the history. Ctrl-D ends."""
    collections, search_filter = _scope(collection, file_type, path)
    services = cli(ctx).remote() or cli(ctx).services()
    history: list[Message] = []
    out = console()
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
                console(stderr=True).print(f"[red]error:[/] {shown(str(exc))}")
                continue
            history += [Message("user", question), Message("assistant", answer.text)]
    finally:
        services.close()


def evaluate_command(
    ctx: typer.Context,
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
    state = cli(ctx)
    services = state.services()
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
        err = console(stderr=True)

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
    result["min_evidence"] = state.settings.retrieval.min_evidence
    if as_json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return
    print_eval(console(), result)
