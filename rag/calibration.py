"""Per-collection calibration of the evidence gate, fitted at ingestion.

A threshold on signals standardised on one corpus does not carry to another: cosines
depend on the embedder (e5 puts everything at 0.75-0.9), and both signals on the size,
vocabulary and subject of the collection. So each collection measures itself:

- answerable pseudo-questions: from a deterministic sample of its own chunks, a sentence
  with half of its content words dropped, or a clause of one: question-like, sharing some
  but not all of the passage's words, never the passage itself;
- unanswerable questions: a bundled list of off-topic questions in English and French
  (cooking, sport, astronomy, car repair, ...: rag/offtopic-questions.txt).

Both are scored with the real retrieval signals (rag/evidence.py), each signal is
standardised between the two groups' medians, and the cut is placed low in the
pseudo-questions' distribution: real questions paraphrase more than pseudo-questions,
so the cut sits `_MARGIN` below the pseudo-questions' `_QUANTILE` quantile, measured in
their own spread. What share of the off-topic questions it refuses is recorded beside it.

The fit costs ~150 query embeddings and twice as many searches, once per ingestion that
changed the collection by more than `ingest.recalibrate_change` (or on demand); a
question pays nothing.
"""

from __future__ import annotations

import bisect
import itertools
import random
import re
import statistics
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from importlib import resources

from rag.errors import CitadelError
from rag.evidence import Calibration, Signals, signals
from rag.ids import chunk_id
from rag.ports import Embedder, SparseEncoder, VectorStore
from rag.settings import IngestSettings
from rag.sparse import terms

METHOD = 4  # 2: meaning alone across languages; 3: cut <= 0; 4: its cut from those questions
CANDIDATES = 50  # the lexical candidate list of the standout; the retriever's default
_QUANTILE = 0.1
_MARGIN = 0.5  # in robust standard deviations of the pseudo-questions' combined signal
_SEED = 20261205
_MIN_POSITIVES = 5
# The meaning alone carries a question in another language than the collection once it is
# closer than this share of the off-topic questions in the same situation came (English
# ones over French documents, French ones over English documents), when there are enough
# of them to have a quantile; otherwise once closer than any off-topic question came.
_OTHER_LANGUAGE_QUANTILE = 0.9
_MIN_OTHER_LANGUAGE = 10
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+|\n+")
_WORD = re.compile(r"\w[\w'’-]*", re.UNICODE)
# Neither too short to say anything nor so long that it is the passage itself.
_MIN_WORDS, _MAX_WORDS = 6, 40


class NotEnoughText(CitadelError):
    """Too few sentences in the collection to draw pseudo-questions from."""


def offtopic_questions() -> list[str]:
    text = resources.files("rag").joinpath("offtopic-questions.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def pseudo_question(text: str, rng: random.Random) -> str | None:
    """A question-like query drawn from one passage, or None if it has no usable sentence."""
    sentences = [
        s for s in _SENTENCE.split(text) if _MIN_WORDS <= len(_WORD.findall(s)) <= _MAX_WORDS
    ]
    if not sentences:
        return None
    words = _WORD.findall(rng.choice(sentences))
    if rng.random() < 0.5:
        # Half of the content words dropped: the question names the subject in part.
        kept = [w for w in words if not (_content(w) and rng.random() < 0.5)]
    else:
        # A clause: 6-12 consecutive words.
        n = min(len(words), rng.randint(6, 12))
        start = rng.randint(0, len(words) - n)
        kept = words[start : start + n]
    if sum(_content(w) for w in kept) < 2:
        return None
    return " ".join(kept) + "?"


def _content(word: str) -> bool:
    return len(word) > 2 and not word.isdigit() and bool(terms(word))


def sample_passages(store: VectorStore, collection: str, count: int, seed: int) -> list[str]:
    """Texts of `count` chunks drawn uniformly (without replacement) over the collection,
    fetched by their computed IDs: no scroll through a large collection."""
    documents = sorted(store.documents(collection), key=lambda d: d.source)
    ends = list(itertools.accumulate(d.chunks for d in documents))
    total = ends[-1] if ends else 0
    rng = random.Random(seed)  # noqa: S311 - a reproducible sample, not a secret
    chosen = []
    for slot in rng.sample(range(total), min(count, total)):
        at = bisect.bisect_right(ends, slot)
        chosen.append((documents[at].id, slot - (ends[at - 1] if at else 0)))
    hits = store.chunks_by_id(collection, [chunk_id(doc, n) for doc, n in chosen])
    texts = {h.id: str(h.payload.get("text") or "") for h in hits}
    return [texts[chunk_id(doc, n)] for doc, n in chosen if chunk_id(doc, n) in texts]


def calibrate(
    store: VectorStore,
    embedder: Embedder,
    sparse: SparseEncoder,
    collection: str,
    questions: int = 80,
) -> Calibration:
    """Fit the collection's evidence calibration and store it with the collection."""
    chunks = store.count_chunks(collection)
    rng = random.Random(_SEED)  # noqa: S311 - reproducible pseudo-questions
    positives = [
        q
        for text in sample_passages(store, collection, questions, _SEED)
        if (q := pseudo_question(text, rng)) is not None
    ]
    if len(positives) < _MIN_POSITIVES:
        raise NotEnoughText(f"collection {collection!r} has too little text to calibrate")
    negatives = offtopic_questions()

    def measured(question: str) -> Signals:
        dense = store.search([collection], embedder.embed_query(question), 1)
        lexical = store.search([collection], sparse.encode_query(question), CANDIDATES)
        return signals(question, dense, lexical, CANDIDATES, chunks)

    pos = [measured(q) for q in positives]
    neg = [measured(q) for q in negatives]
    cos_centre, cos_scale = _between([p.cosine for p in pos], [n.cosine for n in neg])
    lex_centre, lex_scale = _between([p.lexical_z for p in pos], [n.lexical_z for n in neg])
    bm25_centre, bm25_scale = _between([p.bm25 for p in pos], [n.bm25 for n in neg])
    fitted = Calibration(
        method=METHOD,
        embedding_model=embedder.model_name,
        chunks=chunks,
        candidates=CANDIDATES,
        cosine_centre=cos_centre,
        cosine_scale=cos_scale,
        lexical_centre=lex_centre,
        lexical_scale=lex_scale,
        bm25_centre=bm25_centre,
        bm25_scale=bm25_scale,
        cut=0.0,
        meaning_cut=0.0,
        positives=len(pos),
        positives_refused=0.0,
        negatives=len(neg),
        negatives_refused=0.0,
        fitted_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    averages = sorted(fitted.average(p) for p in pos)
    # Never above 0, the point half-way between the off-topic and the answerable medians:
    # pseudo-questions are easier than real ones, so in a small collection (a dozen of
    # them) their low quantile alone sat above real questions ("What does the security
    # policy say about passwords?" over the handbook and the security policy).
    cut = min(0.0, _quantile(averages, _QUANTILE) - _MARGIN * _robust_spread(averages))
    fitted = replace(fitted, cut=cut, meaning_cut=_meaning_cut(fitted, neg))
    pos_combined = [fitted.combined(p) for p in pos]
    neg_combined = [fitted.combined(n) for n in neg]
    fitted = replace(
        fitted,
        positives_refused=sum(x < cut for x in pos_combined) / len(pos_combined),
        negatives_refused=sum(x < cut for x in neg_combined) / len(neg_combined),
    )
    store.put_calibration(collection, fitted)
    return fitted


def _meaning_cut(fitted: Calibration, negatives: Sequence[Signals]) -> float:
    """Where the meaning alone starts to carry a question in another language.

    Taken from the off-topic questions that were themselves in another language than their
    closest passage, not from all of them: a question crossing languages loses cosine (on
    the Python documentation e5 put French questions a whole unit below English ones, and
    French off-topic questions a quarter of a unit below English off-topic ones), so the
    closest English off-topic question ("Why does my car engine knock...", close to
    technical prose) set a cut above most answerable French questions. A high quantile,
    not the maximum: one stray off-topic question near a technical corpus otherwise
    decides for every French question asked of it."""
    crossing = sorted(fitted.meaning(n) for n in negatives if n.other_language)
    if len(crossing) >= _MIN_OTHER_LANGUAGE:
        return _quantile(crossing, _OTHER_LANGUAGE_QUANTILE)
    return max(fitted.meaning(n) for n in negatives)


def stale(fitted: Calibration | None, model: str, chunks: int, change: float) -> str | None:
    """Why the collection should be calibrated again (None: the calibration holds)."""
    if fitted is None:
        return "never calibrated"
    if fitted.method != METHOD or fitted.embedding_model != model:
        return "calibrated by another method or model"
    if abs(chunks - fitted.chunks) > change * max(fitted.chunks, 1):
        return f"{fitted.chunks} chunks when calibrated, {chunks} now"
    return None


def _between(positives: Sequence[float], negatives: Sequence[float]) -> tuple[float, float]:
    """Centre and scale putting the two medians at +1 and -1. When they barely differ
    (the signal does not separate them here) the scale is the signal's own spread, so
    the signal weighs little instead of amplifying noise."""
    hi, lo = statistics.median(positives), statistics.median(negatives)
    spread = statistics.pstdev([*positives, *negatives]) or 1.0
    return (hi + lo) / 2, max((hi - lo) / 2, spread)


def _quantile(ordered: Sequence[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _robust_spread(values: Sequence[float]) -> float:
    """The standard deviation estimated from the median absolute deviation."""
    centre = statistics.median(values)
    return 1.4826 * statistics.median(abs(v - centre) for v in values)


def recalibrate_if_needed(
    store: VectorStore,
    embedder: Embedder,
    sparse: SparseEncoder,
    collection: str,
    settings: IngestSettings,
    force: bool = False,
) -> Calibration | None:
    """After an ingestion: fit again when never fitted or when the collection changed by
    more than `settings.recalibrate_change` (a share of its chunks), or when `force`d;
    None when nothing was (or could be) done."""
    chunks = store.count_chunks(collection)
    fitted = store.calibration(collection)
    change = settings.recalibrate_change
    if not chunks or not (force or stale(fitted, embedder.model_name, chunks, change)):
        return None
    try:
        return calibrate(store, embedder, sparse, collection, settings.calibration_questions)
    except NotEnoughText:
        return None  # a few lines of text: the fixed constants judge it
