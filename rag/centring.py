"""The direction every question shares, taken out of a question before the dense search.

A dense model puts all questions in one region of its space, whatever they ask, and some
passages near that region's centre (a page's author line, a list of section names, a
code example) come close to any question: they are hubs, and they crowd the first places,
worst for a question in another language than the documents (its own words match nothing,
only that shared region). Measured as the mean cosine of a passage to unrelated
questions, this closeness to any question can be subtracted from its cosine to the
question asked (the idea of CSLS, Conneau et al. 2018). Since the passage vectors are
unit length, that mean is the passage's dot product with the mean of those questions'
unit vectors, so the correction is one subtraction on the question's side:

    cos(q, p) - w * mean_i cos(o_i, p) = p · (q - w * mean_i o_i)

and the store ranks by the centred question as it would by the corrected cosine (the
search's own normalisation scales every score of one question alike). The unrelated
questions are the off-topic list the calibration asks (rag/offtopic-questions.txt), in
English and French, so the centre is fitted to no collection. The cosines that judge the
evidence stay the plain ones: only the order of the dense ranking changes.

The retriever centres only a question in another language than the passages it finds
first: there the hubs take the first places. A question in the documents' own language
meets them by its words too, and centring it cost the English questions of the Python docs
more places than it won (README, Retrieval).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

from rag.calibration import offtopic_questions
from rag.ports import Embedder


class QuestionCentres:
    """Each embedding model's mean unit question vector, embedded once (~90 questions,
    a second or two on a CPU) the first time a collection of that model is searched."""

    def __init__(self, weight: float) -> None:
        self._weight = weight
        self._centres: dict[str, list[float]] = {}
        self._fitting = threading.Lock()  # a server's request threads share one

    def prepare(self, embedder: Embedder) -> None:
        if self._weight == 0 or embedder.model_name in self._centres:
            return
        with self._fitting:
            if embedder.model_name not in self._centres:
                self._centres[embedder.model_name] = _mean_unit(
                    [embedder.embed_query(q) for q in offtopic_questions()]
                )

    def centred(self, embedder: Embedder, vector: list[float]) -> list[float]:
        """`vector` less `weight` times its model's centre; `vector` itself when off."""
        if self._weight == 0:
            return vector
        self.prepare(embedder)
        centre = self._centres[embedder.model_name]
        unit = _unit(vector)
        return [x - self._weight * c for x, c in zip(unit, centre, strict=True)]


def _unit(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def _mean_unit(vectors: Sequence[Sequence[float]]) -> list[float]:
    units = [_unit(v) for v in vectors]
    return [sum(column) / len(units) for column in zip(*units, strict=True)]
