"""Is there enough evidence to answer? Decided before any model is called.

Two signals, each standardised on the dev set of ../shared/eval (README, "Refusals"):
- how close in meaning the best passage is (cosine of the top dense hit), and
- how much the best lexical match stands out from the other lexical candidates (z-score of
  the top BM25 score among the candidates): a question whose specific words the documents
  lack only matches common words, spread evenly over many passages.
Their sum goes through a logistic, so the evidence is a 0..1 score; with a cross-encoder
configured, its top score is the evidence instead.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from rag.types import SearchHit

# Means and spreads of the two signals over the dev set's 50 questions, with the default
# embedder (all-MiniLM-L6-v2) and 50 sparse candidates.
_COSINE_MEAN, _COSINE_SPREAD = 0.63, 0.084
_LEXICAL_Z_MEAN, _LEXICAL_Z_SPREAD = 4.1, 1.07
_SMALL_COLLECTION_SUPPORT = 0.5


@dataclass(frozen=True)
class Evidence:
    score: float  # 0..1
    threshold: float
    top_similarity: float  # cosine of the closest passage (or the reranker's top score)
    lexical_z: float | None  # how far the best BM25 match stands above the other candidates

    @property
    def sufficient(self) -> bool:
        return self.score >= self.threshold


def lexical_standout(sparse_hits: Sequence[SearchHit], candidates: int) -> float | None:
    """None when the candidate list is not full: in a small collection every passage that
    shares a word is a candidate, and the spread says nothing about the best match."""
    scores = [h.score for h in sparse_hits]
    if len(scores) < candidates:
        return None
    spread = statistics.pstdev(scores)
    return (scores[0] - statistics.fmean(scores)) / spread if spread else 0.0


def assess(
    dense_hits: Sequence[SearchHit],
    sparse_hits: Sequence[SearchHit],
    threshold: float,
    candidates: int,
    reranked_top: float | None = None,
) -> Evidence:
    top = dense_hits[0].score if dense_hits else 0.0
    z = lexical_standout(sparse_hits, candidates)
    if reranked_top is not None:
        return Evidence(reranked_top, threshold, reranked_top, z)
    semantic = (top - _COSINE_MEAN) / _COSINE_SPREAD
    if z is not None:
        lexical = (z - _LEXICAL_Z_MEAN) / _LEXICAL_Z_SPREAD
    else:
        # A small collection: every passage sharing a word was a candidate, so the spread
        # means nothing. Shared words count as half a unit of support, none as strong doubt.
        lexical = _SMALL_COLLECTION_SUPPORT if sparse_hits else -2.0
    combined = semantic + lexical
    score = 1.0 / (1.0 + math.exp(-combined))
    return Evidence(score, threshold, top, z)
