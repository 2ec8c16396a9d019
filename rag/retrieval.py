"""Question in, ranked passages out: dense and sparse searches, fused, reranked, diversified,
expanded.

Every search is confined to the collections the caller passes in; callers decide which
collections a user may read (the server, from the user's teams) and never pass others.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from rag.centring import QuestionCentres
from rag.citations import names_in
from rag.errors import (
    CollectionNotFound,
    EmbedderError,
    EmbeddingModelMismatch,
    InvalidQuestion,
    QuestionTooLong,
)
from rag.evidence import Evidence, assess, judge, strongest
from rag.fusion import demote_contents_lists, diversify, reciprocal_rank_fusion
from rag.ids import chunk_id
from rag.language import language_of
from rag.ports import Embedder, Reranker, SparseEncoder, VectorStore
from rag.settings import RetrievalSettings
from rag.sparse import names_identifier
from rag.types import Passage, Question, SearchFilter, SearchHit


@dataclass(frozen=True)
class Retrieval:
    question: str
    passages: list[Passage]  # best first, at most top_k
    evidence: Evidence
    latency_ms: float  # question in, ranked passages and refusal decision out

    @property
    def weak_evidence(self) -> bool:
        return not self.evidence.sufficient


@dataclass(frozen=True)
class _Searches:
    """The dense and sparse searches of one wording of a question."""

    dense_by: dict[str, list[SearchHit]]  # by collection
    dense_hits: list[SearchHit]  # all collections, best cosine first
    sparse_by: dict[str, list[SearchHit]]
    sparse_hits: list[SearchHit]
    ranked: list[list[SearchHit]]  # the rankings fused, with their `weights`
    weights: list[float]


class Retriever:
    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        sparse: SparseEncoder,
        settings: RetrievalSettings,
        reranker: Reranker | None = None,
        embedder_of_model: Callable[[str], Embedder] | None = None,
    ) -> None:
        """`embedder_of_model`: the embedder of a collection built with another model than
        `embedder`'s (until `citadel reindex` rebuilds it), or an EmbeddingModelMismatch."""
        self._store = store
        self._embedder = embedder
        self._embedder_of_model = embedder_of_model
        self._sparse = sparse
        self._settings = settings
        self._reranker = reranker
        self._centres = QuestionCentres(settings.question_centring)

    def warm_up(self) -> None:
        """Load the embedder, and fit its question centre (rag/centring.py), now rather
        than on the first question."""
        self._embedder.embed_query("warm up")
        self._centres.prepare(self._embedder)

    def retrieve(
        self,
        question: str | Question,
        collections: Sequence[str],
        search_filter: SearchFilter | None = None,
        top_k: int | None = None,
        also: str | None = None,
    ) -> Retrieval:
        """The best passages for `question`. `also`: the same question as the documents
        would word it (its translation into their language): its searches join the fusion,
        so a passage either wording finds is ranked, and the evidence is the stronger."""
        question = self.check_question(question).text
        phrasings = [question] + ([self.check_question(also).text] if also else [])
        by_model = self._embedders(collections)  # also loads the models: not in the latency
        for embedder, _ in by_model:
            self._centres.prepare(embedder)
        started = time.perf_counter()
        s = self._settings
        top_k = top_k or s.top_k
        searched = [self._search(text, by_model, collections, search_filter) for text in phrasings]
        fused = demote_contents_lists(
            reciprocal_rank_fusion(
                [ranked for found in searched for ranked in found.ranked],
                [weight for found in searched for weight in found.weights],
                s.rrf_k,
            ),
            s.contents_list_weight,
        )
        cosine: dict[str, float] = {}
        for found in searched:
            for hit in found.dense_hits:
                cosine[hit.id] = max(hit.score, cosine.get(hit.id, hit.score))
        passages = [Passage.from_hit(hit, score, cosine.get(hit.id)) for hit, score in fused]
        if self._reranker is not None and passages:
            passages = self._rerank(phrasings[-1], passages[: s.rerank_candidates])
        reranked_top = passages[0].score if self._reranker is not None and passages else None
        passages = diversify(passages, s.max_per_document, s.diverse_top)[:top_k]
        judged = []
        for text, found in zip(phrasings, searched, strict=True):
            if reranked_top is not None:
                judged.append(
                    assess(
                        found.dense_hits,
                        found.sparse_hits,
                        s.min_evidence,
                        s.candidates,
                        reranked_top,
                    )
                )
                continue
            judged.extend(
                self._evidence(name, embedder.model_name, text, found.dense_by[name], sparse)
                for embedder, names in by_model
                for name in names
                for sparse in [found.sparse_by[name]]
            )
        evidence = replace(
            strongest(judged), absent_names=self._absent_names(question, collections, search_filter)
        )
        if s.neighbours and passages:
            passages = self._with_neighbours(passages, s.neighbours)
        return Retrieval(
            question=question,
            passages=passages,
            evidence=evidence,
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def _search(
        self,
        question: str,
        by_model: list[tuple[Embedder, list[str]]],
        collections: Sequence[str],
        search_filter: SearchFilter | None,
    ) -> _Searches:
        s = self._settings
        # One dense search per embedding model (one, unless some collections still await
        # `citadel reindex`): cosines of two models are not comparable, ranks are. Each
        # collection is searched apart (as the store would): its evidence is its own.
        # The evidence is judged on the plain cosines (`dense_by`); a question in another
        # language than the passages it finds is ranked centred (rag/centring.py).
        dense_by: dict[str, list[SearchHit]] = {}
        plain_lists: list[list[SearchHit]] = []
        dense_lists: list[list[SearchHit]] = []
        for embedder, names in by_model:
            vector = embedder.embed_query(question)
            for name in names:
                dense_by[name] = self._store.search([name], vector, s.candidates, search_filter)
            plain = _merged([dense_by[n] for n in names], s.candidates)
            plain_lists.append(plain)
            found_in = _language_of_hits(plain[:_LANGUAGE_SAMPLE])
            centred = self._centres.centred(embedder, vector)
            if found_in in (None, language_of(question)) or centred is vector:
                dense_lists.append(plain)
                continue
            dense_lists.append(
                _merged(
                    [self._store.search([n], centred, s.candidates, search_filter) for n in names],
                    s.candidates,
                )
            )
        terms = self._sparse.encode_query(question)
        sparse_by = {
            n: self._store.search([n], terms, s.candidates, search_filter) for n in collections
        }
        sparse_hits = _merged(list(sparse_by.values()), s.candidates)
        sparse_weight = s.sparse_weight * (s.identifier_boost if names_identifier(question) else 1)
        return _Searches(
            dense_by=dense_by,
            dense_hits=sorted((h for hits in plain_lists for h in hits), key=lambda h: -h.score),
            sparse_by=sparse_by,
            sparse_hits=sparse_hits,
            ranked=[*dense_lists, sparse_hits],
            weights=[*(s.dense_weight for _ in dense_lists), sparse_weight],
        )

    @property
    def max_question_chars(self) -> int:
        return self._settings.max_query_chars

    def check_question(self, question: str | Question) -> Question:
        """The one check of a question: its whitespace collapsed, not empty, within the
        length limit (InvalidQuestion otherwise). A `Question` has passed it already: each
        stage after the first (the server, the answer service, retrieval) trusts it."""
        if isinstance(question, Question):
            return question
        text = " ".join(question.split())
        if not text:
            raise InvalidQuestion("the question is empty")
        if len(text) > self._settings.max_query_chars:
            raise QuestionTooLong(
                f"the question is {len(text)} characters long; the limit is "
                f"{self._settings.max_query_chars} (CITADEL_RETRIEVAL__MAX_QUERY_CHARS)"
            )
        return Question(text)

    def _embedders(self, collections: Sequence[str]) -> list[tuple[Embedder, list[str]]]:
        """The collections grouped by the model that built them, each with its embedder: a
        query embedded by another model than the collection's would rank at random."""
        groups: dict[str, list[str]] = defaultdict(list)
        for name in collections:
            spec = self._store.collection_spec(name)
            if spec is None:
                raise CollectionNotFound(f"no collection named {name!r}")
            groups[spec.embedding_model].append(name)
        found = []
        for model, names in groups.items():
            if model == self._embedder.model_name:
                embedder = self._embedder
            else:
                embedder = self._other_embedder(model, names[0])
            spec = self._store.collection_spec(names[0])
            assert spec is not None
            if spec.dimension != embedder.dimension:
                raise EmbeddingModelMismatch.between(names[0], model, embedder.model_name)
            found.append((embedder, names))
        return found

    def _other_embedder(self, model: str, collection: str) -> Embedder:
        mismatch = EmbeddingModelMismatch.between(collection, model, self._embedder.model_name)
        if self._embedder_of_model is None:
            raise mismatch
        try:
            return self._embedder_of_model(model)
        except EmbedderError as exc:
            raise EmbeddingModelMismatch(f"{mismatch} ({exc})") from exc

    def _evidence(
        self,
        name: str,
        model: str,
        question: str,
        dense: list[SearchHit],
        sparse: list[SearchHit],
    ) -> Evidence:
        """By the collection's own calibration; one never calibrated (or calibrated with
        the model it was built with before a reindex) is judged by the fixed constants."""
        fitted = self._store.calibration(name)
        if fitted is None or fitted.embedding_model != model:
            evidence = assess(dense, sparse, self._settings.min_evidence, self._settings.candidates)
        else:
            evidence = judge(fitted, question, dense, sparse)
        return replace(evidence, collection=name)

    def _absent_names(
        self, question: str, collections: Sequence[str], search_filter: SearchFilter | None
    ) -> tuple[str, ...]:
        """The names the question (as asked: a translation may invent some) holds that no
        document of `collections` within `search_filter` holds: one exact-word lookup each."""
        if not self._settings.refuse_absent_names:
            return ()
        absent = []
        for name in names_in(question):
            # Lower case: the name whole, not its CamelCase parts ("DataFrame": data, frame),
            # which any document may hold.
            term = self._sparse.encode_query(name.lower())
            if term.indices and not any(
                self._store.search([c], term, 1, search_filter) for c in collections
            ):
                absent.append(name)
        return tuple(absent)

    def _rerank(self, question: str, passages: list[Passage]) -> list[Passage]:
        assert self._reranker is not None
        scores = self._reranker.score(question, [_titled(p) for p in passages])
        rescored = [replace(p, score=sc) for p, sc in zip(passages, scores, strict=True)]
        return sorted(rescored, key=lambda p: p.score, reverse=True)

    def passage(self, collection: str, passage_id: str, reach: int) -> Passage | None:
        """One stored passage by its id, with up to `reach` chunks of its document on each
        side as `before` and `after`; None when `collection` holds no such passage."""
        hits = self._store.chunks_by_id(collection, [passage_id])
        if not hits:
            return None
        found = Passage.from_hit(hits[0], score=0.0)
        return self._with_neighbours([found], reach)[0] if reach else found

    def _with_neighbours(self, passages: list[Passage], reach: int) -> list[Passage]:
        """Each passage gets the text around it, fetched by the chunks' computed IDs in one
        call per collection; a neighbour that is itself a passage is not repeated."""
        shown = {p.chunk_id for p in passages}
        wanted: dict[str, list[str]] = defaultdict(list)
        owner: dict[str, str] = {}  # a chunk between two passages is given once, to the first
        for p in passages:
            for n in range(max(p.number - reach, 0), p.number + reach + 1):
                cid = chunk_id(p.document_id, n)
                if cid not in shown and cid not in owner:
                    owner[cid] = p.chunk_id
                    wanted[p.collection].append(cid)
        found: dict[str, SearchHit] = {}
        for collection, ids in wanted.items():
            found.update({h.id: h for h in self._store.chunks_by_id(collection, ids)})

        def around(p: Passage, numbers: range) -> str:
            texts = []
            for n in numbers:
                cid = chunk_id(p.document_id, n)
                hit = found.get(cid)
                if hit is not None and owner.get(cid) == p.chunk_id:
                    texts.append(hit.payload["text"])
            return "\n".join(texts)

        return [
            replace(
                p,
                before=around(p, range(max(p.number - reach, 0), p.number)),
                after=around(p, range(p.number + 1, p.number + reach + 1)),
            )
            for p in passages
        ]


_LANGUAGE_SAMPLE = 5


def _language_of_hits(hits: Sequence[SearchHit]) -> str | None:
    """The language most of these passages are in; None when none has a majority."""
    if not hits:
        return None
    counts = Counter(language_of(h.payload.get("text", "")) for h in hits)
    language, count = counts.most_common(1)[0]
    return language if 2 * count > len(hits) else None


def _merged(lists: Sequence[list[SearchHit]], limit: int) -> list[SearchHit]:
    return sorted((h for hits in lists for h in hits), key=lambda h: -h.score)[:limit]


def _titled(p: Passage) -> str:
    trail = " / ".join(x for x in (p.title, *p.headings) if x)
    return f"{trail}\n{p.text}" if trail else p.text
