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
from rag.settings import EmbeddingSettings, LlmSettings, Settings
from rag.sparse import Bm25Encoder


def build_store(settings: Settings) -> VectorStore:
    if settings.qdrant.url:
        from rag.adapters.qdrant.server import ServerStore

        return ServerStore.connect(settings.qdrant)
    from rag.adapters.qdrant.edge import EdgeStore

    return EdgeStore(settings.edge_path, settings.qdrant.search_ef, settings.qdrant.min_free_mb)


def build_generator(settings: LlmSettings) -> Generator | None:
    """The model server of the settings' provider; None when no model is configured (search
    mode). The embedded llama.cpp needs only its file."""
    if settings.provider == "llamacpp":
        from rag.adapters.llamacpp import EmbeddedLlamaCpp

        return EmbeddedLlamaCpp(settings)
    if not settings.model:
        return None
    if settings.provider == "openai":
        from rag.adapters.openai_compat import OpenAICompatibleGenerator

        return OpenAICompatibleGenerator(settings, settings.model)
    from rag.adapters.ollama import OllamaGenerator

    return OllamaGenerator(settings)


def build_embedder(settings: EmbeddingSettings) -> Embedder:
    if settings.backend == "onnx-int8":
        from rag.adapters.onnx_embedder import OnnxInt8Embedder

        return OnnxInt8Embedder(settings)
    from rag.adapters.embedder import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(settings)


@dataclass
class Services:
    """Lazily built adapters: listing documents must not pay for loading the embedder."""

    settings: Settings
    # A loaded embedder may be handed in (tests share one; loading costs ~10 s).
    preloaded_embedder: Embedder | None = None
    _store: VectorStore | None = field(default=None, init=False)
    _other_embedders: dict[str, Embedder] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        enforce_offline()

    @property
    def store(self) -> VectorStore:
        if self._store is None:
            self._store = build_store(self.settings)
        return self._store

    @cached_property
    def embedder(self) -> Embedder:
        return self.preloaded_embedder or build_embedder(self.settings.embedding)

    def embedder_of_model(self, model: str) -> Embedder:
        """The embedder of a collection built with an earlier default (all-MiniLM-L6-v2)
        or another model, loaded once: such a collection keeps answering until `citadel
        reindex` rebuilds it. EmbedderError when that model cannot be loaded."""
        from rag.adapters.embedder import SentenceTransformerEmbedder

        embedder = self._other_embedders.get(model)
        if embedder is None:
            settings = self.settings.embedding.model_copy(update={"model": model})
            embedder = SentenceTransformerEmbedder(settings)
            embedder.dimension  # noqa: B018 - loads it now: a missing model fails here
            self._other_embedders[model] = embedder
        return embedder

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
            self.store,
            self.embedder,
            self.sparse,
            self.settings.retrieval,
            self.reranker,
            self.embedder_of_model,
        )

    @cached_property
    def generator(self) -> Generator | None:
        """None when no model is configured: answers are given in search mode."""
        return build_generator(self.settings.llm)

    @cached_property
    def answers(self) -> AnswerService:
        return AnswerService(
            self.retriever, self.generator, self.settings.llm, self.embedder.embed_documents
        )

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        generator = self.__dict__.pop("generator", None)
        if generator is not None:
            generator.close()  # the embedded model server's process stops with Citadel


def answers_with(services: Services, llm: LlmSettings) -> tuple[AnswerService, Generator | None]:
    """Answers written by the model of `llm` (not the configured one) from the services'
    retrieval and embedder, with the generator to check and close: an evaluation compares
    several models on one retrieval."""
    generator = build_generator(llm)
    answers = AnswerService(services.retriever, generator, llm, services.embedder.embed_documents)
    return answers, generator
