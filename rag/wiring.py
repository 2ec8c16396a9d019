"""The composition root: concrete adapters built from the settings, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from rag.answering import AnswerService
from rag.embedder import SentenceTransformerEmbedder
from rag.generation import OllamaGenerator
from rag.offline import enforce_offline
from rag.ports import Embedder, Generator, SparseEncoder, VectorStore
from rag.rerank import CrossEncoderReranker
from rag.retrieval import Retriever
from rag.settings import Settings
from rag.sparse import Bm25Encoder

if TYPE_CHECKING:
    from rag.answering import AnswerService


def build_store(settings: Settings) -> VectorStore:
    if settings.qdrant.url:
        from qdrant_client import QdrantClient

        from rag.stores.server import ServerStore

        api_key = settings.qdrant.api_key.get_secret_value() if settings.qdrant.api_key else None
        client = QdrantClient(
            url=settings.qdrant.url, api_key=api_key, timeout=int(settings.qdrant.timeout_s)
        )
        return ServerStore(client, settings.qdrant.collection_prefix)
    from rag.stores.edge import EdgeStore

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
        return self.preloaded_embedder or SentenceTransformerEmbedder(self.settings.embedding)

    @property
    def embedder_loaded(self) -> bool:
        return "embedder" in self.__dict__ or self.preloaded_embedder is not None

    @cached_property
    def sparse(self) -> SparseEncoder:
        return Bm25Encoder(self.settings.ingest.bm25_avg_doc_tokens)

    @cached_property
    def retriever(self) -> Retriever:
        settings = self.settings.retrieval
        reranker = (
            CrossEncoderReranker(settings.rerank_model, self.settings.embedding.device)
            if settings.rerank_model
            else None
        )
        return Retriever(self.store, self.embedder, self.sparse, settings, reranker)

    @cached_property
    def generator(self) -> Generator | None:
        """None when no model is configured: answers are given in search mode."""
        # Imported here: llama-index and the ollama client cost a second to import, which
        # commands that never generate (documents, ingest) should not pay.

        return OllamaGenerator(self.settings.llm) if self.settings.llm.model else None

    @cached_property
    def answers(self) -> AnswerService:
        from rag.answering import AnswerService

        return AnswerService(
            self.retriever, self.generator, self.settings.llm, self.embedder.embed_documents
        )

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
