"""Citations a reader can trust: markers checked against the sources actually given, and a
source lent to a sentence only when the source really says it.

- The model numbers its claims with [n] markers. A marker outside 1..len(passages) is
  removed (with the space before it), in the stream and in the final text alike; nothing
  else the model wrote is changed.
- A marker alone after the last sentence (on its own line, say) cites that sentence.
- A sentence the model left without a marker is given one by Citadel, written `[~n]` so
  that it never passes for the model's own, only when it is earned: the claim's specific
  content (numbers, identifiers, names, quoted values) is all in the passage, or, when the
  claim has none, the passage shares most of its words and its meaning. Otherwise the
  sentence is listed as unsupported.
- A sentence the model cited whose numbers or identifiers are absent from every source it
  cites is listed as unsupported too: the marker stays, the reader is told to check.
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from rag.code_spans import in_code
from rag.language import language_of, says_not_found
from rag.sparse import terms
from rag.types import Citation, Passage

# Whatever a model writes as a reference: [1], [1, 2], [1][2], [Source 1], [source 1; 3],
# [1-3], [1–3], [^2], [1 2], and Citadel's own [~1]. Anything of this shape is checked.
_MARKER = re.compile(
    r"\[\s*~?(?:sources?\s*)?\^?(\d{1,3}(?:\s*(?:[,;\-–]|\s)\s*(?:sources?\s*)?\d{1,3})*)\s*\]",
    re.I,
)
_MARKER_WITH_SPACE = re.compile(r"[ \t]?" + _MARKER.pattern, re.I)
_PARTIAL_MARKER = re.compile(r"\[\s*~?(?:sources?\s*)?\^?[\d\s,;\-–]*", re.I)
_RANGE = re.compile(r"(\d{1,3})\s*[-–]\s*(\d{1,3})")
_MAX_RANGE = 20
# A sentence ends at . ! ? (and any markers right after it) before a space or the end.
_SENTENCE = re.compile(r"[^\n]+?(?:[.!?](?:\s*\[[^\]\n]{1,40}\])*(?=\s|$)|$)", re.M)
_ONLY_MARKERS = re.compile(r"^\s*(?:\[[^\]\n]{1,40}\]\s*)+$")
_SNIPPET_CHARS = 280

# Specific content: what a claim must share with its source to be lent it.
_SPECIFIC = re.compile(
    r"""
    "([^"\n]{2,80})"  |  “([^”\n]{2,80})”  |  «\s?([^»\n]{2,80}?)\s?»  |  `([^`\n]{1,80})`
    | ((?<![\w-])--?[A-Za-z][\w-]+)                       # --long-option, -x
    | (/?\b\w+(?:[._/:@-]\w+)*[._/:@]\w+\b)              # dotted.names, /paths, a@b, 10:30
    | (\b[A-Za-z]\w*_\w+\b)                               # snake_case
    | (\b(?=[a-z]*\d)[a-z]+\d\w*\b)                        # local7, md5, ipv6
    | ((?<![\w.])\d+(?:[.,\u202f\u00a0 ]\d+)*(?![\w]))     # numbers: 25, 1,000, 1 000, 2.5
    | (\b[A-Z][a-z]*[A-Z]\w*\b | \b[A-Z]{2,}\d*\b)        # CamelCase, ACRONYMS
    """,
    re.VERBOSE,
)
# A call as an answer quotes it: a documentation page writes the same function with its
# parameters (`token_urlsafe()` against "token_urlsafe([nbytes=None])").
_CALL = re.compile(r"([A-Za-z_][\w.]*)\((.*)\)")
# A name: a capitalised word that does not start its sentence.
_CAPITALISED = re.compile(r"(?<=[^\s.!?:;«\"“(\[])\s+([A-ZÀ-Ý][a-zà-ÿ]{2,})(?![\w])")

# Without specific content, the claim and the passage must agree on both measures.
_ALIGN_LEXICAL = 0.5
# Set with all-MiniLM-L6-v2. e5's cosines between a claim and any passage are all 0.75-0.97,
# so with it the word test decides alone (and a claim with specifics needs only to find them
# stated together). Replaying 52 answers of Qwen2.5-Coder-1.5B (2026-12-06): of 20 claims
# without specifics, 1 passed the word test, at cosine 0.84.
# Labelled claim/passage pairs are needed to set an e5 threshold.
_ALIGN_COSINE = 0.6
_ALIGN_LEXICAL_ALONE = 0.75  # when there is no embedding to confirm the meaning
_MIN_CLAIM_WORDS = 4

Embed = Callable[[Sequence[str]], list[list[float]]]


@dataclass(frozen=True)
class CitedText:
    text: str  # the answer with only valid markers, and Citadel's [~n]
    citations: list[Citation]  # ordered by number
    unsupported: list[str]  # sentences no source supports, or that their source contradicts
    dropped_markers: list[str]  # invented or out-of-range markers removed from the text


def remove_invalid_markers(text: str, sources: int) -> tuple[str, list[str]]:
    """The text with each marker's out-of-range numbers removed (a marker left empty goes,
    with the space before it); the markers that lost something."""
    dropped: list[str] = []

    def keep_valid(match: re.Match[str]) -> str:
        if in_code(text[: match.start()]):  # items[0] in code is code
            return match.group(0)
        numbers = _numbers(match.group(1))
        valid = [n for n in dict.fromkeys(numbers) if 1 <= n <= sources]
        if len(valid) < len(numbers):
            dropped.append(match.group(0).lstrip(" \t"))
        if not valid:
            return ""
        space = match.group(0)[: len(match.group(0)) - len(match.group(0).lstrip(" \t"))]
        return space + "".join(f"[{n}]" for n in valid)

    return _MARKER_WITH_SPACE.sub(keep_valid, text), dropped


def cite(
    answer: str,
    passages: Sequence[Passage],
    embed: Embed | None = None,
    question: str = "",
    language: str | None = None,
) -> CitedText:
    """The answer's citations checked and earned (see the module's docstring). The
    question's own specifics are its subject: repeating them claims nothing.
    `language`: the answer's. A passage in another one (a French answer from an English
    page) shares no words with it: there a claim is earned by holding all its numbers,
    names and identifiers in the passage, and one without any cannot be checked."""
    text, dropped = remove_invalid_markers(answer, len(passages))
    claims = _claims(text)
    cited_by: dict[int, list[str]] = {}
    aligned_numbers: set[int] = set()
    written_by_model: set[int] = set()
    unsupported: list[str] = []
    orphans = [c for c in claims if not c.numbers and _is_claim(c.text)]
    support = _best_support([c.text for c in orphans], passages, embed, question, language)
    placed: dict[int, int] = {}  # claim end -> the number Citadel places there
    for claim in claims:
        if claim.numbers:
            written_by_model.update(claim.numbers)
            for n in claim.numbers:
                cited_by.setdefault(n, []).append(claim.text)
            wanted = specifics(claim.text, question)
            if _is_claim(claim.text) and not _specifics_in(
                wanted, [passages[n - 1] for n in claim.numbers]
            ):
                unsupported.append(claim.text)
        elif claim in orphans:
            number = support[orphans.index(claim)]
            if number is None:
                unsupported.append(claim.text)
            else:
                placed[claim.end] = number
                aligned_numbers.add(number)
                cited_by.setdefault(number, []).append(claim.text)
    citations = []
    for n in sorted(cited_by):
        snippet = _snippet(passages[n - 1].text, " ".join(cited_by[n]))
        citations.append(
            Citation(
                number=n,
                passage=passages[n - 1].at(snippet),  # cited at the page of its sentence
                snippet=snippet,
                aligned=n in aligned_numbers and n not in written_by_model,
            )
        )
    return CitedText(_with_placed_markers(text, placed), citations, unsupported, dropped)


@dataclass(frozen=True)
class _Claim:
    start: int
    end: int  # where a placed marker goes: before the sentence's final punctuation
    text: str  # without markers
    numbers: tuple[int, ...]  # the model's markers citing it


def _claims(text: str) -> list[_Claim]:
    """The sentences of the answer; a run of markers alone (after the last sentence, or on
    its own line) is part of the sentence before it."""
    found: list[_Claim] = []
    for match in _SENTENCE.finditer(text):
        sentence = match.group(0)
        if in_code(text[: match.start()]):
            continue  # a line of a code block claims nothing
        numbers = tuple(
            n
            for m in _MARKER.finditer(sentence)
            if not in_code(text[: match.start() + m.start()])
            for n in _numbers(m.group(1))
        )
        if _ONLY_MARKERS.match(sentence) and found:
            last = found[-1]
            found[-1] = _Claim(last.start, last.end, last.text, (*last.numbers, *numbers))
            continue
        if not sentence.strip():
            continue
        body = sentence.rstrip()
        end = match.start() + len(body)
        while end > match.start() and text[end - 1] in ".!?":
            end -= 1
        plain = " ".join(_MARKER_WITH_SPACE.sub("", sentence).split())
        found.append(_Claim(match.start(), end, plain, numbers))
    return found


def _with_placed_markers(text: str, placed: dict[int, int]) -> str:
    for end in sorted(placed, reverse=True):
        text = f"{text[:end]} [~{placed[end]}]{text[end:]}"
    return text


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
    if stripped.endswith(":") or says_not_found(stripped):
        return False
    return len(re.findall(r"\w+", stripped)) >= _MIN_CLAIM_WORDS


def _fold(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.casefold().replace("’", "'"))
    return "".join(ch for ch in folded if not unicodedata.combining(ch))


def specifics(claim: str, given: str = "") -> set[str]:
    """The numbers, identifiers, names and quoted values of a claim, folded for matching;
    those of `given` (the question: its subject, not a claim of the answer) left out."""
    if given:
        return specifics(claim) - specifics(given)
    found = set()
    for match in _SPECIFIC.finditer(claim):
        value = next(g for g in match.groups() if g)
        if re.fullmatch(r"[\d\s\u202f\u00a0.,]+", value):  # 1 000 / 1,000 -> 1000
            value = re.sub(r"[\s\u202f\u00a0,]", "", value).rstrip(".")
        call = _CALL.fullmatch(value.strip())
        if call:  # `token_urlsafe()`, `compress(data, level=9)`: the name, and what is passed
            found.add(_fold(call.group(1)))
            found |= specifics(call.group(2))
            continue
        found.add(_fold(value.strip()))
    found |= {_fold(m.group(1)) for m in _CAPITALISED.finditer(claim)}
    return {f for f in found if f}


def names_in(text: str) -> list[str]:
    """The names a text holds, as written, once each: the words among its specifics that
    are all letters (a proper noun inside a sentence, CamelCase, an acronym, a quoted
    word). Versions, numbers and identifiers are left out: they are written in too many
    ways ("DHCPv6", "dhcpd6.conf") to say a text lacks them."""
    wanted = specifics(text)
    found = [w for w in re.findall(r"[^\W\d_]+", text) if _fold(w) in wanted]
    return list(dict.fromkeys(found))


def _all_in(wanted: set[str], text: str) -> bool:
    folded = _fold(text)
    digits = re.sub(r"(?<=\d)[\s\u202f\u00a0,](?=\d{3}\b)", "", folded)  # 1 000 -> 1000
    return all(_contains(folded, w) or _contains(digits, w) for w in wanted)


def _specifics_in(wanted: set[str], passages: Sequence[Passage]) -> bool:
    """Every specific is in one of the passages (trivially, when there is none)."""
    return not wanted or _all_in(wanted, " ".join(_searchable(p) for p in passages))


def _stated_together(claim: str, wanted: set[str], passage: Passage) -> bool:
    """The specifics are all in the passage, and a sentence of it (or two in a row) holds
    one of them with at least a third of the claim's words: "X is 500" is not earned by a
    passage where 500 belongs to something else."""
    if not _specifics_in(wanted, [passage]):
        return False
    words = _words(claim)
    sentences = [s for s in re.split(r"(?<=[.!?;:])\s+|\n+", passage.text) if s.strip()]
    windows = sentences + [f"{a} {b}" for a, b in itertools.pairwise(sentences)]
    for window in windows:
        if any(_all_in({w}, window) for w in wanted):
            shared = len(words & _words(window)) / len(words) if words else 1.0
            if shared >= 1 / 3:
                return True
    return False


def _contains(haystack: str, value: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(value)}(?![\w])", haystack) is not None


def _searchable(p: Passage) -> str:
    return " ".join((p.title, *p.headings, p.before, p.text, p.after))


def _overlap(claim: str, passage: Passage) -> float:
    wanted = _words(claim)
    if not wanted:
        return 0.0
    have = _words(" ".join((passage.title, *passage.headings, passage.text)))
    return len(wanted & have) / len(wanted)


def _words(text: str) -> set[str]:
    """The text's words, plurals made singular: an answer says "a temporary directory"
    where its source says "temporary files and directories"."""
    return {_singular(w) for w in terms(text)}


def _singular(word: str) -> str:
    if len(word) <= 4 or not word.isalpha():
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def _best_support(
    claims: Sequence[str],
    passages: Sequence[Passage],
    embed: Embed | None,
    question: str,
    language: str | None = None,
) -> list[int | None]:
    """For each claim, the number of the passage that earns it, or None."""
    if not claims or not passages:
        return [None] * len(claims)
    foreign = [language is not None and language_of(p.text) != language for p in passages]
    vectors = embed([*claims, *(p.text for p in passages)]) if embed else None
    result: list[int | None] = []
    for i, claim in enumerate(claims):
        wanted = specifics(claim, question)
        best: tuple[float, int] | None = None
        for j, passage in enumerate(passages):
            lexical = _overlap(claim, passage)
            cosine = _cosine(vectors[i], vectors[len(claims) + j]) if vectors else 0.0
            if foreign[j]:
                # Words of two languages do not meet: what it names must be in the passage.
                earned = bool(wanted) and _specifics_in(wanted, [passage])
            elif wanted:
                # Everything specific it states is said together, in one place of the
                # passage that is about the same thing: "X is 500" is not earned by a
                # passage where 500 belongs to something else.
                earned = _stated_together(claim, wanted, passage) and (
                    lexical >= 0.3 or cosine >= _ALIGN_COSINE
                )
            elif vectors is not None:
                earned = lexical >= _ALIGN_LEXICAL and cosine >= _ALIGN_COSINE
            else:
                earned = lexical >= _ALIGN_LEXICAL_ALONE
            if earned and (best is None or lexical + cosine > best[0]):
                best = (lexical + cosine, j + 1)
        result.append(best[1] if best else None)
    return result


# A marker as the checked answer text has them: the model's [n], Citadel's [~n].
_CHECKED_MARKER = re.compile(r"\[~?(\d{1,3})\]")


def marker_support(text: str, passage_texts: Mapping[int, str]) -> list[str]:
    """For each marker of a checked answer, in the order of the text: the sentence of its
    source that supports the claim it follows ("" for a number not in `passage_texts`).
    Two claims citing the same source each get their own sentence, where a citation's
    snippet is the best match for all of them together."""
    support: list[str] = []
    claim = ""
    for match in _SENTENCE.finditer(text):
        sentence = match.group(0)
        if not _ONLY_MARKERS.match(sentence):  # markers alone belong to the claim before
            claim = _MARKER_WITH_SPACE.sub("", sentence)
        for marker in _CHECKED_MARKER.finditer(sentence):
            if in_code(text[: match.start() + marker.start()]):
                continue  # code, not a citation (the page shows no chip for it either)
            passage = passage_texts.get(int(marker.group(1)))
            support.append(_snippet(passage, claim) if passage is not None else "")
    return support


def shown_for(passage: Passage, question: str) -> Passage:
    """A passage shown for a question without an answer to cite it (search mode, the
    evaluation's page): at the page of its sentence that best matches the question."""
    if not passage.page_starts:  # on one page: nothing to choose
        return passage
    return passage.at(_snippet(passage.text, question))


def _snippet(passage_text: str, cited_by: str) -> str:
    """The passage sentence sharing the most with what cites it (its specifics first),
    kept short."""
    wanted = set(terms(cited_by))
    exact = specifics(cited_by)
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", passage_text) if s.strip()]
    if not sentences:
        return ""

    def score(sentence: str) -> tuple[int, int]:
        folded = _fold(sentence)
        return (sum(_contains(folded, e) for e in exact), len(wanted & set(terms(sentence))))

    best = max(sentences, key=score)
    if len(best) <= _SNIPPET_CHARS:
        return best
    return best[: _SNIPPET_CHARS - 1].rsplit(" ", 1)[0] + "…"


class MarkerFilter:
    """Streams text with invalid markers removed as it arrives, exactly as `cite` removes
    them from the final text: text from a '[' is held back until the bracket closes (or
    clearly is not a marker), and trailing spaces until what follows them is known (a
    removed marker takes the space before it)."""

    _LONGEST_MARKER = 40

    def __init__(self, sources: int) -> None:
        self._sources = sources
        self._held = ""
        self._shown = ""  # all the text given out so far: whether a bracket is code

    def feed(self, text: str) -> str:
        self._held += text
        out: list[str] = []
        while self._held:
            start = self._held.find("[")
            if start < 0:
                out.append(self._held)
                self._held = ""
                break
            out.append(self._held[:start])
            self._held = self._held[start:]
            if in_code(self._shown + "".join(out)):  # items[0] in code is code
                out.append("[")
                self._held = self._held[1:]
                continue
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
            kept = "".join(f"[{n}]" for n in dict.fromkeys(numbers) if 1 <= n <= self._sources)
            if kept:
                out.append(kept)
            else:  # the marker goes, with the space before it
                done = "".join(out)
                out = [done[:-1] if done.endswith((" ", "\t")) else done]
        shown = "".join(out)
        body = shown.rstrip(" \t")
        self._held = shown[len(body) :] + self._held
        self._shown += body
        return body

    def flush(self) -> str:
        """The text still held when the stream ends; a half-written marker is dropped
        (not in code: there it is the code's)."""
        held, self._held = self._held, ""
        partial = _PARTIAL_MARKER.fullmatch(held.lstrip(" \t"))
        return "" if partial and not in_code(self._shown) else held
