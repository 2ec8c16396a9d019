"""Is there enough evidence to answer? Decided before any model is called.

Signals, read in each searched collection apart:
- how close in meaning the best passage is (cosine of the top dense hit),
- how much the best lexical match stands out from the other lexical candidates (z-score
  of the top BM25 score among the candidates): a question whose specific words the
  documents lack only matches common words, spread evenly over many passages, and
  (calibrated collections) how strong that best match is (its BM25 score: the question's
  words that the passage holds, weighted by their rarity in the collection).

Where these signals lie depends on the embedder (e5's cosines are all 0.75-0.9, MiniLM's
0.1-0.7) and on the collection (its size, vocabulary and subject), so each collection is
calibrated at ingestion (rag/calibration.py): each signal is standardised between where
the collection's own pseudo-questions and off-topic questions put it, their mean goes
through a logistic, and the threshold is the collection's own. A question is answered
when any searched collection holds enough evidence by its own calibration.

Whatever the signals, a question that names something (a proper noun, a product, an
acronym) that no searched document holds anywhere is refused, and the name said: passages
on a neighbouring subject score as well as answers do ("publish with Poetry" finds the
packaging pages), and neither score tells them apart.

A collection never calibrated (built before calibration existed) keeps the fixed means
and spreads of the handbook dev set with MiniLM and the `retrieval.min_evidence`
threshold. With a cross-encoder configured, its top score is the evidence instead.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from rag.language import language_of
from rag.types import SearchHit

# Means and spreads of the two signals over the dev set's 50 questions, with all-MiniLM-L6-v2
# and 50 sparse candidates: the evidence of collections that were never calibrated.
_COSINE_MEAN, _COSINE_SPREAD = 0.63, 0.084
_LEXICAL_Z_MEAN, _LEXICAL_Z_SPREAD = 4.1, 1.07
_SMALL_COLLECTION_SUPPORT = 0.5


@dataclass(frozen=True)
class Evidence:
    score: float  # 0..1
    threshold: float
    top_similarity: float  # cosine of the closest passage (or the reranker's top score)
    lexical_z: float | None  # how far the best BM25 match stands above the other candidates
    collection: str | None = None  # the collection whose evidence decided
    calibrated: bool = False  # judged by that collection's own calibration
    # Names the question asks about that no searched document holds anywhere: the
    # documents cannot answer about what they never mention, however close the rest is.
    absent_names: tuple[str, ...] = ()

    @property
    def sufficient(self) -> bool:
        return self.score >= self.threshold and not self.absent_names


@dataclass(frozen=True)
class Calibration:
    """Where one collection's evidence lies, fitted on its own pseudo-questions and on
    off-topic questions (rag/calibration.py), stored with the collection."""

    method: int  # version of the fitting procedure: another one means fit again
    embedding_model: str
    chunks: int  # chunks in the collection when fitted
    candidates: int  # length of the lexical candidate list the standout is computed over
    cosine_centre: float
    cosine_scale: float
    lexical_centre: float
    lexical_scale: float
    bm25_centre: float
    bm25_scale: float
    cut: float  # on the combined, standardised signal
    meaning_cut: float  # the meaning alone answers above it (rag.calibration._meaning_cut)
    positives: int  # pseudo-questions it was fitted on
    positives_refused: float  # share of them the cut refuses
    negatives: int  # off-topic questions
    negatives_refused: float  # share of them the cut refuses
    fitted_at: str

    @property
    def threshold(self) -> float:
        return _logistic(self.cut)

    def meaning(self, measured: Signals) -> float:
        return (measured.cosine - self.cosine_centre) / self.cosine_scale

    def average(self, measured: Signals) -> float:
        """Each signal standardised (0 half-way between the collection's off-topic and
        answerable questions, +-1 at their medians), averaged."""
        return (
            self.meaning(measured)
            + (measured.lexical_z - self.lexical_centre) / self.lexical_scale
            + (measured.bm25 - self.bm25_centre) / self.bm25_scale
        ) / 3

    def combined(self, measured: Signals) -> float:
        """The average of the signals; for a question in another language than its closest
        passage (French over English documents), which shares no word with it, the meaning
        alone may carry it instead, once it is closer than nearly all off-topic questions in
        the same situation came (`meaning_cut`): the two lexical signals would otherwise
        outvote a close match in meaning. Only then: in the documents' own language, the
        words missing are evidence of a question they do not answer."""
        if not measured.other_language:
            return self.average(measured)
        alone = self.meaning(measured) - self.meaning_cut + self.cut
        return max(self.average(measured), alone)

    def payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Calibration | None:
        """None for a record this version cannot read (it is fitted again)."""
        try:
            return cls(**{name: payload[name] for name in cls.__dataclass_fields__})
        except (KeyError, TypeError):
            return None


def lexical_standout(sparse_hits: Sequence[SearchHit], candidates: int) -> float | None:
    """None when the candidate list is not full: in a small collection every passage that
    shares a word is a candidate, and the spread says nothing about the best match."""
    scores = [h.score for h in sparse_hits]
    if len(scores) < candidates:
        return None
    return _standout(scores)


def padded_standout(sparse_hits: Sequence[SearchHit], candidates: int, chunks: int) -> float:
    """The standout of the top BM25 score among `candidates` scores, the chunks that share
    no word with the question counting as zeros: defined in a collection of any size (in
    one smaller than the list, among all its chunks)."""
    scores = [h.score for h in sparse_hits[:candidates]]
    size = max(len(scores), min(candidates, chunks))
    return _standout(scores + [0.0] * (size - len(scores))) if size > 1 else 0.0


def _standout(scores: Sequence[float]) -> float:
    if not scores:
        return 0.0
    spread = statistics.pstdev(scores)
    return (scores[0] - statistics.fmean(scores)) / spread if spread else 0.0


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, x))))


@dataclass(frozen=True)
class Signals:
    cosine: float  # of the top dense hit
    lexical_z: float  # padded standout of the top BM25 score
    bm25: float  # the top BM25 score
    other_language: bool = False  # the question is not in its closest passage's language


def signals(
    question: str,
    dense_hits: Sequence[SearchHit],
    sparse_hits: Sequence[SearchHit],
    candidates: int,
    chunks: int,
) -> Signals:
    """What one collection's hits say about the question."""
    closest = str(dense_hits[0].payload.get("text") or "") if dense_hits else ""
    return Signals(
        cosine=dense_hits[0].score if dense_hits else 0.0,
        lexical_z=padded_standout(sparse_hits, candidates, chunks),
        bm25=sparse_hits[0].score if sparse_hits else 0.0,
        other_language=bool(closest) and language_of(question) != language_of(closest),
    )


def judge(
    calibration: Calibration,
    question: str,
    dense_hits: Sequence[SearchHit],
    sparse_hits: Sequence[SearchHit],
) -> Evidence:
    """The evidence of one calibrated collection, from its own hits."""
    measured = signals(
        question, dense_hits, sparse_hits, calibration.candidates, calibration.chunks
    )
    score = _logistic(calibration.combined(measured))
    return Evidence(
        score, calibration.threshold, measured.cosine, measured.lexical_z, calibrated=True
    )


def assess(
    dense_hits: Sequence[SearchHit],
    sparse_hits: Sequence[SearchHit],
    threshold: float,
    candidates: int,
    reranked_top: float | None = None,
) -> Evidence:
    """The evidence by the fixed dev-set constants (a collection never calibrated)."""
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
    score = _logistic(semantic + lexical)
    return Evidence(score, threshold, top, z)


def strongest(judged: Sequence[Evidence]) -> Evidence:
    """Several collections searched: the question is answerable if any of them holds
    enough evidence by its own measure; the one with the widest margin speaks."""
    return max(judged, key=lambda e: (e.sufficient, e.score - e.threshold))
