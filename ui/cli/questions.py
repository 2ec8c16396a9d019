"""Commands that ask: `search`, `ask`, `chat` and `eval`, on the data directory or through
a running server (`server.url`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rag.answering import refusal_notice
from rag.errors import CitadelError
from rag.types import Answer, Delta, Message, SearchFilter, Thinking
from rag.wiring import Services
from ui.cli.context import JsonOpt, cli, console
from ui.cli.render import print_eval, print_passages, print_sources, printed_json, shown
from ui.http.wire import AnswerOut, RetrievalOut

if TYPE_CHECKING:
    from rag.evaluation import ModelRun, ModelSpec
    from rag.ports import Generator
    from ui.cli.remote import RemoteCitadel

CollectionsOpt = Annotated[
    list[str] | None,
    typer.Option("--collection", "-c", help="Collection to search (repeat for several)."),
]
TypeOpt = Annotated[
    list[str] | None, typer.Option("--type", help="Only these file types (pdf, docx, ...).")
]
PathOpt = Annotated[str | None, typer.Option("--path", help="Only documents under this folder.")]
ThinkingOpt = Annotated[
    bool, typer.Option("--show-thinking", help="Show a reasoning model's reasoning (dimmed).")
]


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
        with remote:
            found = remote.search(question, collections, search_filter, top_k)
        if as_json:
            print(printed_json(found, indent=2))
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
        print(printed_json(RetrievalOut.of(retrieval).model_dump(), indent=2))
        return
    out = console()
    print_passages(out, retrieval.passages)
    absent = retrieval.evidence.absent_names
    verdict = (
        f" (an answer would be refused: {shown(refusal_notice(absent))})"
        if absent
        else " (weak: an answer would be refused)"
        if retrieval.weak_evidence
        else ""
    )
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
    show_thinking: bool = False,
) -> Answer:
    """Stream one answer to the terminal (or print it as JSON); return it. A reasoning
    model's reasoning is shown dimmed with `show_thinking`, else only said to exist."""
    out, err = console(), console(stderr=True)
    answer: Answer | None = None
    streamed = ""
    thinking = False
    asking = source.answers.ask if isinstance(source, Services) else source.ask
    for event in asking(question, collections, history, search_filter):
        if isinstance(event, Thinking):
            if not as_json and show_thinking:
                out.print(f"[dim]{shown(event.text)}[/]", end="")
                out.file.flush()
            thinking = True
        elif isinstance(event, Delta):
            if not as_json:
                if thinking and not streamed:
                    out.print(
                        "\n" if show_thinking else "[dim](reasoned first: --show-thinking)[/]"
                    )
                out.print(shown(event.text), end="")
                out.file.flush()
            streamed += event.text
        else:
            answer = event
    assert answer is not None
    if as_json:
        print(printed_json(AnswerOut.of(answer).json_body(), indent=2))
        return answer
    if not streamed:  # decided without the model (refusal on weak evidence)
        out.print(shown(answer.text), end="")
    out.print()
    if streamed and answer.text != streamed.strip() and "[~" in answer.text:
        # Citadel matched sentences the model left uncited to a source: [~n].
        out.print("[dim]Checked, with the sources Citadel matched as [~n]:[/]")
        out.print(shown(answer.text))
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
    show_thinking: ThinkingOpt = False,
) -> None:
    """Answer a question from the documents, streamed, with numbered sources."""
    collections, search_filter = _scope(collection, file_type, path)
    source = cli(ctx).remote() or cli(ctx).services()
    try:
        _answer(source, question, collections, [], search_filter, as_json, show_thinking)
    finally:
        source.close()


def chat(
    ctx: typer.Context,
    collection: CollectionsOpt = None,
    file_type: TypeOpt = None,
    path: PathOpt = None,
    show_thinking: ThinkingOpt = False,
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
                answer = _answer(
                    services, question, collections, history, search_filter, False, show_thinking
                )
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
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="A model to compare (repeat): ollama:NAME, openai:NAME or a .gguf file. "
            "Default: the configured model.",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write one JSON line per question, as each is done.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write a self-contained HTML page comparing the models.")
    ] = None,
    no_generate: Annotated[
        bool, typer.Option("--no-generate", help="Retrieval and refusal only, no model.")
    ] = False,
    translate: Annotated[
        bool,
        typer.Option(
            "--translate",
            help="With --no-generate: still let the configured model translate a question "
            "in another language than its passages before searching it again, as `ask` "
            "does (when models answer, it is always done, by the first --model named).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Measure retrieval, answers, citations and refusals on a labelled question set, and
    compare models on the same retrieval."""
    from rag import evaluation
    from ui.cli.render import progress_line

    state = cli(ctx)
    if model and no_generate:
        raise CitadelError("--model and --no-generate contradict each other: choose one")
    specs = evaluation.model_specs(model or [], state.settings.llm)
    items = evaluation.load_questions(questions)
    collections, _ = _scope(collection, None, None)
    if report is not None and not report.parent.resolve().is_dir():
        raise CitadelError(f"cannot write the report to {report}: no folder {report.parent}")
    results_file = None
    if out is not None:
        try:  # before the run: a long evaluation must not end on "cannot write"
            results_file = out.open("w", encoding="utf-8")
        except OSError as exc:
            raise CitadelError(f"cannot write the results to {out}: {exc}") from exc
    services = state.services()
    generators: list[Generator] = []
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
        runs = _model_runs(services, specs, no_generate, generators)
        err = console(stderr=True)

        def progress(step: evaluation.Step) -> None:
            err.print(f"[dim]{shown(progress_line(step))}[/]")

        def record(outcome: evaluation.Outcome) -> None:
            if results_file is not None:
                results_file.write(printed_json(outcome.to_json()) + "\n")
                results_file.flush()

        services.retriever.retrieve("warm-up", collections)  # load the model before timing
        top_k = services.settings.retrieval.top_k
        # As `ask` would: the model that answers translates. Models named by --model share
        # one retrieval, translated by the first of them; without any, the configured one.
        translator = runs[0].answers if specs else services.answers
        has_model = services.generator is not None or bool(specs)
        translating = has_model and (translate or not no_generate)
        done = evaluation.run(
            items,
            services.retriever,
            collections,
            to_source,
            runs,
            progress,
            record,
            top_k=max(evaluation.MRR_CUTOFF, top_k),
            answer_top_k=top_k,
            translate=translator.translated if translating else None,
        )
    finally:
        for generator in generators:
            generator.close()
        services.close()
        if results_file is not None:
            results_file.close()
    result = evaluation.full_report(items, done)
    result["min_evidence"] = state.settings.retrieval.min_evidence
    if report is not None:
        from ui.cli.report import write_report

        write_report(report, items, done, result, f"{questions.name} on {', '.join(collections)}")
    if as_json:
        print(printed_json(result, indent=2))
        return
    print_eval(console(), result)


def _model_runs(
    services: Services,
    specs: list[ModelSpec],
    no_generate: bool,
    generators: list[Generator],
) -> list[ModelRun]:
    """The models that answer: those named (each checked before anything runs, the embedded
    one stopped after its questions), else the configured one, else none."""
    from rag.evaluation import ModelRun
    from rag.wiring import answers_with

    if no_generate:
        return []
    if not specs:
        label = services.generator.model if services.generator is not None else "search mode"
        return [ModelRun(label, services.answers)]
    runs = []
    for spec in specs:
        answers, generator = answers_with(services, spec.llm)
        assert generator is not None  # a spec always names a model
        generators.append(generator)
        if spec.llm.provider != "llamacpp":  # the embedded one starts when it first answers
            try:
                generator.check()
            except CitadelError as exc:
                raise CitadelError(f"model {spec.spec!r}: {exc}") from exc
        runs.append(ModelRun(spec.label, answers, generator.close))
    return runs
