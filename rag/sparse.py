"""Sparse lexical vectors: BM25 term-frequency weights, IDF applied by Qdrant at query time.

A term's index is a stable hash of its normalised form, so documents and queries agree
without a vocabulary to store. Accents are folded and case is dropped, so "Clé" finds "cle".
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections import Counter

from rag.types import SparseVector

_WORD = re.compile(r"\w+", re.UNICODE)
# Frequent function words of the languages customers write in (English, French): they
# carry no meaning for retrieval and only dilute the weights.
_ENGLISH_STOPWORDS = (
    "a an and are as at be been but by can do does for from has have how i if in into is it "
    "its may more no not of on or our so such than that the their then there these they this "
    "to was we were what when where which who why will with would you your"
)
_FRENCH_STOPWORDS = (
    "au aux avec ce ces cette dans de des du elle en est et il ils je la le les leur lui mais "
    "me ne nous on ou par pas pour qu que qui sa se ses son sont sur ta te tu un une vous y"
)
_STOPWORDS = frozenset(f"{_ENGLISH_STOPWORDS} {_FRENCH_STOPWORDS}".split())


def terms(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", text.casefold())
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch))
    return [w for w in _WORD.findall(folded) if w not in _STOPWORDS and len(w) < 64]


def _index(term: str) -> int:
    return zlib.crc32(term.encode("utf-8"))


class Bm25Encoder:
    """The SparseEncoder port: BM25 saturation (k1, b) against an assumed average length."""

    def __init__(self, avg_doc_tokens: float = 120.0, k1: float = 1.2, b: float = 0.75) -> None:
        self._avg = avg_doc_tokens
        self._k1 = k1
        self._b = b

    def encode_document(self, text: str) -> SparseVector:
        words = terms(text)
        counts = Counter(_index(w) for w in words)
        norm = self._k1 * (1 - self._b + self._b * len(words) / self._avg)
        items = sorted(counts.items())
        return SparseVector(
            indices=[i for i, _ in items],
            values=[tf * (self._k1 + 1) / (tf + norm) for _, tf in items],
        )

    def encode_query(self, text: str) -> SparseVector:
        indices = sorted({_index(w) for w in terms(text)})
        return SparseVector(indices=indices, values=[1.0] * len(indices))
