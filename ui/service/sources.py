"""Which sources go with an answer, decided once for every front end (web UI, REST, /v1,
the command line), the audit log and feedback.

    shown_sources   what a person is shown under the answer: the citations, or for a
                    refusal the closest documents (one passage each, numbered from 1)
    drawn_on        the passages the answer rests on, as the audit log and feedback keep
                    them: the cited ones, else every passage the model or the reader got
"""

from __future__ import annotations

from dataclasses import dataclass

from rag.answering import closest_documents
from rag.types import Answer, Passage


@dataclass(frozen=True)
class ShownSource:
    number: int  # the [number] that opens it
    passage: Passage
    snippet: str  # the sentence that supports the claim ("" for a refusal's closest document)
    aligned: bool = False  # the marker was placed by Citadel, not written by the model


def shown_sources(answer: Answer) -> list[ShownSource]:
    if answer.refused:
        closest = closest_documents(answer.passages)
        return [ShownSource(i, p, "") for i, p in enumerate(closest, start=1)]
    return [ShownSource(c.number, c.passage, c.snippet, c.aligned) for c in answer.citations]


def drawn_on(answer: Answer) -> list[Passage]:
    return [c.passage for c in answer.citations] or list(answer.passages)
