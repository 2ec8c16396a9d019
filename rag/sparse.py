"""Sparse lexical vectors: BM25 term-frequency weights, IDF applied by Qdrant at query time.

A term's index is a stable hash of its normalised form, so documents and queries agree
without a vocabulary to store. Accents are folded and case is dropped, so "Clé" finds "cle".

Identifiers (`snake_case_setting`, `--long-option`, `resolv.conf`, `os.path.join`,
`getLogger`) are terms whole and in parts: the whole is rare, so its IDF makes the passage
that holds it exactly win; the parts let "snake case setting" find it. A query's parts
weigh together half of its whole, so a passage with only the parts stays below.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections import Counter

from rag.language import DEFAULT_LANGUAGE, function_words, language_of
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


# Raised whenever the encoding changes the terms of a document: its stored vectors no longer
# meet the queries, so the next ingestion re-indexes it even if its file is unchanged.
# 2: identifiers whole and in parts; French elisions dropped (l'heure -> heure).
SPARSE_VERSION = 2
_MAX_TERM = 64
# A word, or words joined by . _ - / or :: with no space (an identifier), options' dashes
# ahead. The apostrophe is no joiner: "l'heure" is an elision, "IT's" a possessive.
_IDENTIFIER = re.compile(r"-{0,2}\w+(?:(?:::|[._/-])\w+)*")
_JOINERS = re.compile(r"::|[._/-]+")
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_ELISION = re.compile(r"\b(?:[cdjlmnst]|qu|jusqu|lorsqu|puisqu)['’](?=\w)|['’]s\b", re.I)
PART_SHARE = 0.5  # of the whole's query weight, shared by an identifier's parts


# What only code, configuration and file names write: an option's dashes, a joiner inside a
# word (os.path, max_size, std::vector, etc/hosts), a capital inside a word (getLogger).
_NAMED = re.compile(r"(?<![\w-])--?[^\W\d]|[^\W_](?:::|[._/])[^\W_]|_[^\W_]|[a-z][A-Z]")


def names_identifier(text: str) -> bool:
    """The text names an identifier, which a dense model knows little of: its exact words
    are the better guide."""
    return _NAMED.search(text) is not None


def _fold(text: str) -> str:
    """Accents folded, case kept (camelCase is split before case is dropped)."""
    folded = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in folded if not unicodedata.combining(ch))


def terms(text: str) -> list[str]:
    folded = _fold(text).casefold()
    return [w for w in _WORD.findall(folded) if w not in _STOPWORDS and len(w) < _MAX_TERM]


def _kept(term: str) -> bool:
    return term not in _STOPWORDS and len(term) < _MAX_TERM


def _kept_part(part: str) -> bool:
    return len(part) > 1 and _kept(part)  # "3.5.1" gives no "3", "5", "1" of its own


def lexical_terms(text: str) -> list[tuple[str, list[str]]]:
    """Each word or identifier as written (folded) with its parts, which an ordinary word
    has none of: [("resolv.conf", ["resolv", "conf"]), ("heure", [])]."""
    found = []
    for token in _IDENTIFIER.findall(_ELISION.sub("", _fold(text))):
        pieces = [p for p in _JOINERS.split(token) if p]
        words = [w.casefold() for p in pieces for w in (_CAMEL.findall(p) or [p])]
        whole = token.lstrip("-").casefold()
        parts = [w for w in words if _kept_part(w)] if len(words) > 1 else []
        if _whole_kept(whole, parts):
            found.append((whole, parts))
        else:
            found.extend((p, []) for p in parts)
        # "/etc/resolv.conf" holds "resolv.conf" whole: a question naming the file finds it.
        segments = [s.casefold() for s in token.split("/") if _JOINERS.search(s)]
        found.extend((s, []) for s in segments if "/" in token and _kept(s))
    return found


def _whole_kept(whole: str, parts: list[str]) -> bool:
    """Words joined by hyphens only are a term of their own with two words of substance
    ("full-time", "dry-run"), not in French inversions ("est-ce", "présentez-vous")."""
    hyphens_only = "-" in whole and not re.search(r"[._/]|::", whole)
    return _kept(whole) and (not hyphens_only or len(parts) >= 2)


def _query_terms(text: str) -> list[tuple[str, list[str]]]:
    """The terms of a question to search for. A question not in English loses its question
    and function words too: the stopwords of documents must keep words that are English
    ones of substance ("comment", "pour"), and a French question's "Comment ..." would
    otherwise rank every passage about code comments first (seen on the Python docs)."""
    found = lexical_terms(text)
    language = language_of(text)
    if language == DEFAULT_LANGUAGE:
        return found
    asked = {_fold(w).casefold() for w in function_words(language)}
    return [(whole, parts) for whole, parts in found if whole not in asked]


def _index(term: str) -> int:
    return zlib.crc32(term.encode("utf-8"))


class Bm25Encoder:
    """The SparseEncoder port: BM25 saturation (k1, b) against an assumed average length."""

    def __init__(self, avg_doc_tokens: float = 120.0, k1: float = 1.2, b: float = 0.75) -> None:
        self._avg = avg_doc_tokens
        self._k1 = k1
        self._b = b

    def encode_document(self, text: str) -> SparseVector:
        found = lexical_terms(text)
        counts = Counter(_index(t) for whole, parts in found for t in (whole, *parts))
        # The length is in words as written: an identifier's parts do not make it longer.
        norm = self._k1 * (1 - self._b + self._b * len(found) / self._avg)
        items = sorted(counts.items())
        return SparseVector(
            indices=[i for i, _ in items],
            values=[tf * (self._k1 + 1) / (tf + norm) for _, tf in items],
        )

    def encode_query(self, text: str) -> SparseVector:
        weights: dict[int, float] = {}
        for whole, parts in _query_terms(text):
            weights[_index(whole)] = 1.0
            for part in parts:
                index = _index(part)
                weights[index] = max(weights.get(index, 0.0), PART_SHARE / len(parts))
        items = sorted(weights.items())
        return SparseVector(indices=[i for i, _ in items], values=[w for _, w in items])
