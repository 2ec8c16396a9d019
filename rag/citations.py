"""Citations a reader can trust: markers checked against the sources actually given.

The model numbers its claims with [n] markers. A marker outside 1..len(passages) is
dropped (never shown). Small local models often forget markers: a sentence left without
one is given the marker of the passage that supports it best (shared words and meaning),
or listed as unsupported when no passage does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rag.prompting import REFUSAL
from rag.sparse import terms
from rag.types import Citation, Passage

# Whatever a model writes as a reference: [1], [1, 2], [1][2], [Source 1], [source 1; 3],
# [1-3], [1–3], [^2], [1 2]. Anything of this shape is checked, never shown unchecked.
_MARKER = re.compile(
    r"\[\s*(?:sources?\s*)?\^?(\d{1,3}(?:\s*(?:[,;\-–]|\s)\s*(?:sources?\s*)?\d{1,3})*)\s*\]",
    re.I,
)
_PARTIAL_MARKER = re.compile(r"\[\s*(?:sources?\s*)?\^?[\d\s,;\-–]*", re.I)
_RANGE = re.compile(r"(\d{1,3})\s*[-–]\s*(\d{1,3})")
_MAX_RANGE = 20
# A sentence ends at . ! ? (and any markers right after it) before a space or the end.
_SENTENCE = re.compile(r"[^\n]+?(?:[.!?](?:\s*\[[^\]\n]{1,40}\])*(?=\s|$)|$)", re.M)
_SNIPPET_CHARS = 280

# Alignment thresholds: a sentence is attributed to a passage when most of its content
# words appear there, or when fewer do but the meaning is close.
_ALIGN_LEXICAL = 0.6
_ALIGN_MIXED = (0.3, 0.55)  # (shared words, cosine) both at least
_MIN_CLAIM_WORDS = 4

Embed = Callable[[Sequence[str]], list[list[float]]]


@dataclass(frozen=True)
class CitedText:
    text: str  # the answer with only valid markers
    citations: list[Citation]  # ordered by number
    unsupported: list[str]  # sentences no passage supports
    dropped_markers: list[str]  # invented or out-of-range markers removed from the text


def cite(answer: str, passages: Sequence[Passage], embed: Embed | None = None) -> CitedText:
    dropped: list[str] = []

    def keep_valid(match: re.Match[str]) -> str:
        numbers = _numbers(match.group(1))
        valid = [n for n in dict.fromkeys(numbers) if 1 <= n <= len(passages)]
        if len(valid) < len(numbers):
            dropped.append(match.group(0))
        return "".join(f"[{n}]" for n in valid)

    text = _MARKER.sub(keep_valid, answer)
    text = re.sub(r"[ \t]+([.,;:!?])", r"\1", text)  # "word [9]." with [9] dropped -> "word."
    cited_by: dict[int, list[str]] = {}
    aligned_numbers: set[int] = set()
    written_by_model: set[int] = set()
    unsupported: list[str] = []
    pieces: list[str] = []
    position = 0
    claims = [(m.start(), m.end(), m.group(0)) for m in _SENTENCE.finditer(text)]
    orphans = [c for c in claims if not _markers(c[2]) and _is_claim(c[2])]
    support = _best_support([c[2] for c in orphans], passages, embed)
    for start, end, sentence in claims:
        pieces.append(text[position:start])
        position = end
        numbers = _markers(sentence)
        written_by_model.update(numbers)
        if not numbers and (start, end, sentence) in orphans:
            number = support[orphans.index((start, end, sentence))]
            if number is None:
                unsupported.append(sentence.strip())
            else:
                numbers = [number]
                aligned_numbers.add(number)
                sentence = _append_marker(sentence, number)
        for n in numbers:
            cited_by.setdefault(n, []).append(_MARKER.sub("", sentence))
        pieces.append(sentence)
    pieces.append(text[position:])
    citations = [
        Citation(
            number=n,
            passage=passages[n - 1],
            snippet=_snippet(passages[n - 1].text, " ".join(cited_by[n])),
            aligned=n in aligned_numbers and n not in written_by_model,
        )
        for n in sorted(cited_by)
    ]
    return CitedText("".join(pieces), citations, unsupported, dropped)


def _markers(sentence: str) -> list[int]:
    return [n for m in _MARKER.finditer(sentence) for n in _numbers(m.group(1))]


def _numbers(body: str) -> list[int]:
    """The source numbers of a marker's body, ranges expanded ("1-3" -> 1, 2, 3)."""
    numbers: list[int] = []
    for a, b in _RANGE.findall(body):
        low, high = int(a), int(b)
        numbers.extend(range(low, high + 1) if 0 < high - low < _MAX_RANGE else (low, high))
    rest = _RANGE.sub(" ", body)
    numbers.extend(int(n) for n in re.findall(r"\d+", rest))
    return numbers


def _is_claim(sentence: str) -> bool:
    """Worth a source: not a lead-in ("Here is how:"), not the refusal, not a fragment."""
    stripped = sentence.strip()
    if stripped.endswith(":") or REFUSAL.rstrip(".").lower() in stripped.lower():
        return False
    return len(re.findall(r"\w+", stripped)) >= _MIN_CLAIM_WORDS


def _append_marker(sentence: str, number: int) -> str:
    body = sentence.rstrip()
    trailing = sentence[len(body) :]
    if body and body[-1] in ".!?":
        return f"{body[:-1]} [{number}]{body[-1]}{trailing}"
    return f"{body} [{number}]{trailing}"


def _overlap(claim: str, passage: Passage) -> float:
    wanted = set(terms(claim))
    if not wanted:
        return 0.0
    have = set(terms(" ".join((passage.title, *passage.headings, passage.text))))
    return len(wanted & have) / len(wanted)


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def _best_support(
    claims: Sequence[str], passages: Sequence[Passage], embed: Embed | None
) -> list[int | None]:
    """For each claim, the number of the passage that supports it, or None."""
    if not claims or not passages:
        return [None] * len(claims)
    vectors = embed([*claims, *(p.text for p in passages)]) if embed else None
    result: list[int | None] = []
    for i, claim in enumerate(claims):
        best: tuple[float, int] | None = None
        for j, passage in enumerate(passages):
            lexical = _overlap(claim, passage)
            cosine = _cosine(vectors[i], vectors[len(claims) + j]) if vectors else 0.0
            supported = lexical >= _ALIGN_LEXICAL or (
                lexical >= _ALIGN_MIXED[0] and cosine >= _ALIGN_MIXED[1]
            )
            if supported and (best is None or lexical + cosine > best[0]):
                best = (lexical + cosine, j + 1)
        result.append(best[1] if best else None)
    return result


def _snippet(passage_text: str, cited_by: str) -> str:
    """The passage sentence sharing the most words with what cites it, kept short."""
    wanted = set(terms(cited_by))
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", passage_text) if s.strip()]
    if not sentences:
        return ""
    best = max(sentences, key=lambda s: len(wanted & set(terms(s))))
    if len(best) <= _SNIPPET_CHARS:
        return best
    return best[: _SNIPPET_CHARS - 1].rsplit(" ", 1)[0] + "…"


class MarkerFilter:
    """Streams text with invalid markers removed as it arrives: text from a '[' is held
    back until the bracket closes (or clearly is not a marker), then let through only if
    every number in it is a source that was given."""

    _LONGEST_MARKER = 40

    def __init__(self, sources: int) -> None:
        self._sources = sources
        self._held = ""

    def feed(self, text: str) -> str:
        self._held += text
        out = []
        while self._held:
            start = self._held.find("[")
            if start < 0:
                out.append(self._held)
                self._held = ""
                break
            out.append(self._held[:start])
            self._held = self._held[start:]
            end = self._held.find("]")
            if end < 0:
                if len(self._held) > self._LONGEST_MARKER or "\n" in self._held:
                    out.append(self._held[0])  # a plain bracket, not a marker
                    self._held = self._held[1:]
                    continue
                break  # wait for more text
            inner = self._held.find("[", 1)
            if 0 < inner < end:  # "[[9]]", "[see [7]]": the outer bracket is plain text
                out.append(self._held[:inner])
                self._held = self._held[inner:]
                continue
            candidate = self._held[: end + 1]
            self._held = self._held[end + 1 :]
            match = _MARKER.fullmatch(candidate)
            if match is None:
                out.append(candidate)
                continue
            numbers = _numbers(match.group(1))
            out.append("".join(f"[{n}]" for n in numbers if 1 <= n <= self._sources))
        return "".join(out)

    def flush(self) -> str:
        """The text still held when the stream ends; a half-written marker is dropped."""
        held, self._held = self._held, ""
        return "" if _PARTIAL_MARKER.fullmatch(held) else held
