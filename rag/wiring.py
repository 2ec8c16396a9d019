"""The composition root of the core: concrete adapters built from the settings, in one place.

Each adapter is built on first use and imported there: a command that only lists documents
never loads the embedder, and never imports torch, llama-index or the ollama client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from rag.answering import AnswerService
from rag.offline import enforce_offline
from rag.ports import Embedder, Generator, Reranker, SparseEncoder, VectorStore
from rag.retrieval import Retriever
from rag.settings import Settings
from rag.sparse import Bm25Encoder


def build_store(settings: Settings) -> VectorStore:
    if settings.qdrant.url:
        from rag.adapters.qdrant.server import ServerStore

        return ServerStore.connect(settings.qdrant)
    from rag.adapters.qdrant.edge import EdgeStore

    return EdgeStore(settings.edge_path)


@dataclass
class Services:
    """Lazily built adapters: listing documents must not pay for loading the embedder."""

    settings: Settings
    # A loaded embedder may be handed in (tests share one; loading costs ~10 s).
    preloaded_embedder: Embedder | None = None
    _store: VectorStore | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        enforce_offline()

    @property
    def store(self) -> VectorStore:
        if self._store is None:
            self._store = build_store(self.settings)
        return self._store

    @cached_property
    def embedder(self) -> Embedder:
        from rag.adapters.embedder import SentenceTransformerEmbedder

        return self.preloaded_embedder or SentenceTransformerEmbedder(self.settings.embedding)

    @property
    def embedder_loaded(self) -> bool:
        return "embedder" in self.__dict__ or self.preloaded_embedder is not None

    @cached_property
    def sparse(self) -> SparseEncoder:
        return Bm25Encoder(self.settings.ingest.bm25_avg_doc_tokens)

    @cached_property
    def reranker(self) -> Reranker | None:
        """None unless a cross-encoder is configured."""
        model = self.settings.retrieval.rerank_model
        if not model:
            return None
        from rag.adapters.reranker import CrossEncoderReranker

        return CrossEncoderReranker(model, self.settings.embedding.device)

    @cached_property
    def retriever(self) -> Retriever:
        return Retriever(
            self.store, self.embedder, self.sparse, self.settings.retrieval, self.reranker
        )

    @cached_property
    def generator(self) -> Generator | None:
        """None when no model is configured: answers are given in search mode."""
        if not self.settings.llm.model:
            return None
        from rag.adapters.ollama import OllamaGenerator

        return OllamaGenerator(self.settings.llm)

    @cached_property
    def answers(self) -> AnswerService:
        return AnswerService(
            self.retriever, self.generator, self.settings.llm, self.embedder.embed_documents
        )

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
