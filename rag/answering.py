"""The answer service: question (+ history) in, streamed text and a cited Answer out.

    condense a follow-up (only a follow-up) -> retrieve -> a question in another language
    than the passages found? the model translates it, both wordings are searched -> weak
    evidence? refuse without calling the model -> pack sources into the token budget
    -> stream from the model -> check citations

When the model server is unreachable or no model is configured, the answer is the best
passages with their citations (search mode) and a one-line notice saying why.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence

from rag.citations import Embed, MarkerFilter, cite, shown_for
from rag.errors import GeneratorError
from rag.followup import depends_on_history
from rag.language import LANGUAGE_NAMES, language_of, refusal_for, says_not_found
from rag.output import OutputGuard, neutralise
from rag.ports import Generator
from rag.prompting import context_size, pack
from rag.retrieval import Retrieval, Retriever
from rag.settings import LlmSettings
from rag.text import shorten
from rag.types import (
    Answer,
    AnswerEvent,
    AnswerOptions,
    Citation,
    Delta,
    Message,
    Passage,
    Question,
    SearchFilter,
    Thinking,
    Usage,
)

HISTORY_TURNS = 6  # messages of history used to rewrite a follow-up question
TRANSLATION_TOKENS = 128  # a question's translation: as long as the question, give or take
HISTORY_CHARS = 2000  # of each of them: the subject is in their first lines, not in long answers
# Why an answer was refused, in the question's language (the refusal sentence is in it too).
REFUSAL_NOTICES = {
    "en": "The documents you can search do not seem to cover this; the closest passages are "
    "listed.",
    "fr": "Les documents que vous pouvez consulter ne semblent pas traiter de cette question ; "
    "voici les passages les plus proches.",
}
REFUSAL_NOTICE = REFUSAL_NOTICES["en"]
_ABSENT_NAMES_NOTICES = {
    "en": ("No document you can search mentions {names}; the closest passages are listed.", "or"),
    "fr": (
        "Aucun document que vous pouvez consulter ne mentionne {names} ; voici les passages "
        "les plus proches.",
        "ni",
    ),
}
CLOSEST_DOCUMENTS = 3  # a refusal lists this many documents, one passage each
# An answer with no sentence any source supports, and at least this many unsupported, is
# taken for a refusal (3: on the dev set, unanswerable questions answered anyway had 7-14;
# answerable ones left with no citation had at most 2).
UNGROUNDED_SENTENCES = 3
_SEARCH_MODE_SNIPPET = 280


class AnswerService:
    def __init__(
        self,
        retriever: Retriever,
        generator: Generator | None,
        settings: LlmSettings,
        embed: Embed | None = None,
    ) -> None:
        self._retriever = retriever
        self._generator = generator
        self._settings = settings
        self._embed = embed

    def ask(
        self,
        question: str | Question,
        collections: Sequence[str],
        history: Sequence[Message] = (),
        search_filter: SearchFilter | None = None,
        options: AnswerOptions | None = None,
    ) -> Iterator[AnswerEvent]:
        """Deltas while the model writes (its reasoning apart, as Thinking), then exactly
        one Answer."""
        # Checked before condensing (the follow-up goes into a prompt too), unless the
        # caller already did.
        checked = self._retriever.check_question(question)
        standalone = self.condense(checked.text, history)
        query = checked if standalone == checked.text else standalone
        retrieval = self._retriever.retrieve(query, collections, search_filter)
        translated = self.translated(standalone, retrieval)
        if translated:  # searched in both wordings; the model is asked the one written
            retrieval = self._retriever.retrieve(query, collections, search_filter, also=translated)
        yield from self.answer(retrieval, checked.text, standalone, options)

    def answer(
        self,
        retrieval: Retrieval,
        question: str,
        standalone: str | None = None,
        options: AnswerOptions | None = None,
    ) -> Iterator[AnswerEvent]:
        """The answer to a question already retrieved for (an evaluation retrieves once and
        answers with several models)."""
        base = {
            "question": question,
            "standalone_question": standalone or question,
            "evidence": retrieval.evidence.score,
            "retrieval_ms": retrieval.latency_ms,
        }
        if retrieval.weak_evidence:
            yield Answer(
                **base,  # type: ignore[arg-type]
                text=refusal_for(question),
                citations=[],
                passages=closest_documents(retrieval.passages),
                refused=True,
                notice=refusal_notice(retrieval.evidence.absent_names, language_of(question)),
                absent_names=retrieval.evidence.absent_names,
            )
            return
        if self._generator is None:
            yield self._search_mode(base, retrieval, "No model is configured (CITADEL_LLM__MODEL).")
            return
        yield from self._generate(base, retrieval, self._generator, options or AnswerOptions())

    def translated(self, question: str, retrieval: Retrieval) -> str | None:
        """The question in the language of the passages it found, when it is in another
        one and a model can translate it; None otherwise. The embedding model matches a
        question across languages far less well than within one (French questions over the
        English Python docs: hit@5 0.71 against 0.96 for English ones), and its words cannot
        meet the documents' in the exact-word search at all. Both wordings are searched
        (`Retriever.retrieve(also=...)`); the answer is written for the question as asked."""
        if self._generator is None or not self._settings.translate_questions:
            return None
        theirs = passages_language(retrieval.passages)
        if theirs is None or theirs == language_of(question):
            return None
        prompt = _translation_prompt(question, LANGUAGE_NAMES[theirs])
        try:
            limit = self._generator.context_limit()
            needed = self._generator.count_tokens(prompt) + TRANSLATION_TOKENS
            reply = self._generator.complete(
                [Message("user", prompt)], context_size(needed, limit)
            ).strip()
        except GeneratorError:
            return None  # searched as asked
        lines = [line.strip().strip('"') for line in reply.splitlines() if line.strip()]
        if not lines or len(lines[0]) > 2 * len(question) + 40 or language_of(lines[0]) != theirs:
            return None  # not a translation of it
        return self._retriever.check_question(lines[0][: self._retriever.max_question_chars]).text

    def condense(self, question: str, history: Sequence[Message]) -> str:
        """A follow-up ("and for replicas?") rewritten as a standalone question, with
        llama-index's condense-question prompt; without a model, the previous question is
        prepended so retrieval still sees the subject. A question that stands alone is
        searched as it is: the history would only pull in the previous subject."""
        turns = [
            Message(m.role, shorten(m.content, HISTORY_CHARS))
            for m in history
            if m.role in ("user", "assistant")
        ][-HISTORY_TURNS:]
        if not depends_on_history(question, turns):
            return question
        if self._generator is not None:
            prompt = _condense_prompt(question, turns)
            try:
                limit = self._generator.context_limit()
                reply = self._settings.max_answer_tokens + self._generator.reasoning_room()
                needed = self._generator.count_tokens(prompt) + reply
                rewritten = self._generator.complete(
                    [Message("user", prompt)], context_size(needed, limit)
                ).strip()
            except GeneratorError:
                rewritten = ""
            if rewritten:
                return rewritten.splitlines()[0].strip().strip('"')
        previous = [m.content for m in turns if m.role == "user"]
        if not previous:
            return question
        # Within the retriever's limit: the question itself, then as much of the last one.
        room = self._retriever.max_question_chars - len(question) - 1
        return f"{previous[-1][:room]} {question}" if room > 0 else question

    def _generate(
        self,
        base: dict[str, object],
        retrieval: Retrieval,
        generator: Generator,
        options: AnswerOptions,
    ) -> Iterator[AnswerEvent]:
        s = self._settings
        answer_tokens = options.answer_tokens(s.max_answer_tokens)
        try:
            limit = generator.context_limit()
            packed = pack(
                str(base["standalone_question"]),  # as asked: a translation only searched
                retrieval.passages,
                limit,
                answer_tokens + generator.reasoning_room(),
                generator.count_tokens,
                s.prompt_passages,
                s.prompt_neighbours,
                s.prompt_passage_tokens,
                options.style,
            )
        except GeneratorError as exc:
            yield self._search_mode(base, retrieval, _notice(exc))
            return
        if not packed.passages:
            yield self._search_mode(
                base, retrieval, f"The model's context ({limit} tokens) cannot hold any passage."
            )
            return
        parts: list[str] = []
        thoughts: list[str] = []
        usage: Usage | None = None
        failure: GeneratorError | None = None
        started = time.monotonic()
        first_token: float | None = None
        markers, guard = MarkerFilter(len(packed.passages)), OutputGuard()
        try:
            for item in generator.stream(packed.messages, packed.num_ctx, answer_tokens):
                if isinstance(item, Usage):
                    usage = item
                    continue
                first_token = first_token or time.monotonic() - started
                if isinstance(item, Thinking):
                    thoughts.append(item.text)
                    yield item
                    continue
                parts.append(item)
                if visible := guard.feed(markers.feed(item)):
                    yield Delta(visible)
        except GeneratorError as exc:
            failure = exc
        if rest := guard.feed(markers.flush()) + guard.flush():
            yield Delta(rest)
        finished = time.monotonic() - started
        if failure is not None and not parts:
            yield self._search_mode(base, retrieval, _notice(failure))
            return
        text = neutralise("".join(parts).strip())
        notices = []
        if failure is not None:
            after = f" (after {finished:.0f} s)" if finished >= 1 else ""
            notices.append(f"The answer is incomplete: {failure}{after}.")
        if usage is not None and usage.done_reason == "length":
            if thoughts and not text:
                notices.append(
                    "The model spent its whole length limit reasoning and wrote no answer: "
                    "raise CITADEL_LLM__REASONING_TOKENS, or lower CITADEL_LLM__THINK."
                )
            else:
                cap = (
                    f"{answer_tokens} tokens, as asked"
                    if answer_tokens < s.max_answer_tokens
                    else f"{answer_tokens} tokens, CITADEL_LLM__MAX_ANSWER_TOKENS"
                )
                notices.append(f"The answer reached its length limit ({cap}) and was cut.")
        if packed.dropped:
            notices.append(
                f"{packed.dropped} retrieved passage(s) did not fit the model's context "
                f"({packed.num_ctx} tokens) and were left out."
            )
        num_ctx = (usage.num_ctx if usage else None) or packed.num_ctx
        truncated = bool(
            usage
            and usage.prompt_tokens is not None
            and usage.prompt_tokens + (usage.output_tokens or 0) >= num_ctx
        )
        if truncated:
            notices.append("The model server reports a full context: part of the prompt was cut.")
        refused = _is_refusal(text)
        cited = (
            None
            if refused
            else cite(text, packed.passages, self._embed, retrieval.question, language_of(text))
        )
        if cited and not cited.citations and len(cited.unsupported) >= UNGROUNDED_SENTENCES:
            # Judged with the model, end to end: an answer none of whose sentences any
            # source supports is the model's own knowledge (small models write one rather
            # than refuse): the documents do not answer.
            notices.append(
                f"The model wrote an answer that none of your documents supports "
                f"({len(cited.unsupported)} sentences); it is not shown."
            )
            refused, text = True, refusal_for(str(base["question"]))
            unsupported_kept = cited.unsupported
            cited = None
        else:
            unsupported_kept = cited.unsupported if cited else []
        if cited and cited.unsupported and _other_language(text, packed.passages):
            notices.append(
                "The answer is not in the sources' language: Citadel could check only its "
                "numbers, names and identifiers against them, so some sentences are shown as "
                "unsupported."
            )
        yield Answer(
            **base,  # type: ignore[arg-type]
            text=cited.text if cited else text,
            citations=cited.citations if cited else [],
            passages=packed.passages,
            refused=refused,
            notice=" ".join(notices)
            or (refusal_notice((), language_of(str(base["question"]))) if refused else None),
            dropped_passages=packed.dropped,
            truncated=truncated,
            incomplete=failure is not None or bool(usage and usage.done_reason == "length"),
            unsupported=unsupported_kept,
            model=generator.model,
            num_ctx=num_ctx,
            prompt_tokens=usage.prompt_tokens if usage else None,
            thinking="".join(thoughts).strip(),
            output_tokens=usage.output_tokens if usage else None,
            first_token_s=first_token,
            generation_s=finished,
        )

    def _search_mode(self, base: dict[str, object], retrieval: Retrieval, why: str) -> Answer:
        passages = retrieval.passages
        return Answer(
            **base,  # type: ignore[arg-type]
            text="",
            citations=[
                Citation(i, shown_for(p, retrieval.question), _lead(p.text), aligned=False)
                for i, p in enumerate(passages, start=1)
            ],
            passages=passages,
            search_mode=True,
            notice=f"Search mode: {why} Showing the best passages instead of an answer.",
        )


def _condense_prompt(question: str, turns: Sequence[Message]) -> str:
    """llama-index's condense-question prompt. Imported here, not at the top: llama-index
    takes over a second to import, which commands that never condense should not pay."""
    from llama_index.core.base.llms.generic_utils import messages_to_history_str
    from llama_index.core.base.llms.types import ChatMessage
    from llama_index.core.chat_engine.condense_question import DEFAULT_PROMPT

    history = messages_to_history_str([ChatMessage(role=m.role, content=m.content) for m in turns])
    return str(DEFAULT_PROMPT.format(chat_history=history, question=question))


def passages_language(passages: Sequence[Passage], first: int = 5) -> str | None:
    """The language of the best passage when most of the first ones share it; None without
    passages or when they disagree. A best passage in the question's language means the
    search works as asked (a bilingual collection); an English page quoting a French
    example does not make a collection French."""
    if not passages:
        return None
    found = Counter(_language_in_context(p) for p in passages[:first])
    best = _language_in_context(passages[0])
    return best if 2 * found[best] > sum(found.values()) else None


def refusal_notice(absent_names: Sequence[str], language: str = "en") -> str:
    """Why a question was refused before any model was asked, in `language` ("en", "fr";
    English for any other): the names no document mentions, when that is why (the reader
    can check the spelling, or ask otherwise)."""
    if not absent_names:
        return REFUSAL_NOTICES.get(language, REFUSAL_NOTICE)
    template, last = _ABSENT_NAMES_NOTICES.get(language, _ABSENT_NAMES_NOTICES["en"])
    quoted = [f"“{name}”" for name in absent_names]
    names = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} {last} {quoted[-1]}"
    return template.format(names=names)


def _language_in_context(passage: Passage) -> str:
    """The passage's language read with its neighbouring chunks: French words quoted in an
    English page's example do not make the page French."""
    return language_of(f"{passage.before}\n{passage.text}\n{passage.after}")


def _translation_prompt(question: str, language: str) -> str:
    return (
        f"Translate the question below into {language}, to search documents written in "
        f"{language}. Keep names, code, commands, file names and numbers exactly as they are "
        "written. Reply with the translated question only, on one line.\n\n"
        f"Question: {question}"
    )


def _notice(exc: GeneratorError) -> str:
    text = str(exc)
    text = text[0].upper() + text[1:] if text else type(exc).__name__
    return text if text.endswith(".") else f"{text}."


def _is_refusal(text: str) -> bool:
    """The model said the sources do not answer (in any language it was told), and cited
    nothing: an answer that cites a source and adds "I could not find this..." about a
    detail is still an answer."""
    return says_not_found(text) and not re.search(r"\[\s*~?\d", text)


def _other_language(text: str, passages: Sequence[Passage]) -> bool:
    sources = " ".join(p.text for p in passages)
    return language_of(text) != language_of(sources)


def closest_documents(passages: Sequence[Passage]) -> list[Passage]:
    """What a refusal points to: the first passage of each of the best few documents."""
    seen: set[str] = set()
    kept = []
    for p in passages:
        if p.document_id not in seen:
            seen.add(p.document_id)
            kept.append(p)
    return kept[:CLOSEST_DOCUMENTS]


def _lead(text: str) -> str:
    if len(text) <= _SEARCH_MODE_SNIPPET:
        return text
    return text[: _SEARCH_MODE_SNIPPET - 1].rsplit(" ", 1)[0] + "…"
