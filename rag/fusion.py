"""Rank fusion: one ranking from the dense and the sparse rankings of the same question,
contents lists moved down, then diversified so that one document does not fill the top of
the list.

Reciprocal rank fusion uses ranks only, so cosine similarities and BM25 scores, which live
on unrelated scales, need no calibration against each other.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from rag.types import Passage, SearchHit


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[SearchHit]], weights: Sequence[float], k: int = 60
) -> list[tuple[SearchHit, float]]:
    """Hits of every ranking, best first, scored sum(weight / (k + rank)), ranks from 1.

    Ranks tie often: a passage first by meaning and second by words scores what the one
    second by meaning and first by words does, and which of the two comes first decides the
    page cited for a PDF (its passages are often one page apart). Ties go to the one whose
    scores stand higher above the rest of their ranking: each ranking's scores mapped onto
    0..1 between its lowest and highest hit, summed with the same weights."""
    if len(rankings) != len(weights):
        raise ValueError("one weight per ranking")
    scores: dict[str, float] = {}
    above_rest: dict[str, float] = {}
    first_seen: dict[str, SearchHit] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        low = min((hit.score for hit in ranking), default=0.0)
        spread = max((hit.score for hit in ranking), default=0.0) - low
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.id] = scores.get(hit.id, 0.0) + weight / (k + rank)
            share = (hit.score - low) / spread if spread > 0 else 1.0
            above_rest[hit.id] = above_rest.get(hit.id, 0.0) + weight * share
            first_seen.setdefault(hit.id, hit)
    # Rounded: the same ranks summed in another order differ in the last bits.
    ordered = sorted(scores, key=lambda i: (round(scores[i], 12), above_rest[i]), reverse=True)
    return [(first_seen[i], scores[i]) for i in ordered]


# A line of a contents list: a few words, a name or a `name.method()`, nothing of a sentence
# or of code (no = : , ; quotes, brackets or prompt signs).
_LABEL = re.compile(r"\w[\w .’'&/—–-]*(?:\(\))?", re.UNICODE)
_LABEL_WORDS = 8
_WORD = re.compile(r"\w+", re.UNICODE)
_MIN_LIST_LINES = 6
_LIST_SHARE = 0.8


def is_contents_list(text: str) -> bool:
    """The passage is a contents list: a chapter's index of modules, a page's table of
    contents, the members of a class one per line. Its words name every subject of the
    chapter, so it matches many questions (closely, for an embedder), and answers none."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) < _MIN_LIST_LINES:
        return False
    labels = sum(
        1
        for line in lines
        if len(_WORD.findall(line)) <= _LABEL_WORDS
        and not line.endswith(".")
        and _LABEL.fullmatch(line) is not None
    )
    return labels >= _LIST_SHARE * len(lines)


def demote_contents_lists(
    fused: Sequence[tuple[SearchHit, float]], weight: float
) -> list[tuple[SearchHit, float]]:
    """The fused hits with the score of each contents list times `weight` (1: unchanged),
    best first again: a list that both searches rank first stays in play, one that only
    the embedder liked moves below the prose."""
    if weight == 1:
        return list(fused)
    scored = [
        (hit, score * weight if is_contents_list(str(hit.payload.get("text", ""))) else score)
        for hit, score in fused
    ]
    return sorted(scored, key=lambda pair: pair[1], reverse=True)


def diversify(passages: Sequence[Passage], per_document: int, within: int) -> list[Passage]:
    """The first `within` passages hold at most `per_document` of any one document; the
    passages moved out of them follow, all in their order. The best passage stays first."""
    taken: Counter[str] = Counter()
    head: list[Passage] = []
    for p in passages:
        if len(head) == within:
            break
        if taken[p.document_id] < per_document:
            taken[p.document_id] += 1
            head.append(p)
    chosen = {id(p) for p in head}
    return head + [p for p in passages if id(p) not in chosen]
