"""Rank fusion: one ranking from the dense and the sparse rankings of the same question,
then diversified so that one document does not fill the top of the list.

Reciprocal rank fusion uses ranks only, so cosine similarities and BM25 scores, which live
on unrelated scales, need no calibration against each other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rag.types import Passage, SearchHit


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[SearchHit]], weights: Sequence[float], k: int = 60
) -> list[tuple[SearchHit, float]]:
    """Hits of every ranking, best first, scored sum(weight / (k + rank)), ranks from 1."""
    if len(rankings) != len(weights):
        raise ValueError("one weight per ranking")
    scores: dict[str, float] = {}
    first_seen: dict[str, SearchHit] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.id] = scores.get(hit.id, 0.0) + weight / (k + rank)
            first_seen.setdefault(hit.id, hit)
    ordered = sorted(scores, key=lambda i: scores[i], reverse=True)
    return [(first_seen[i], scores[i]) for i in ordered]


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
