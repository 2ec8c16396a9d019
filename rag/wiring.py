"""The composition root: concrete adapters built from the settings, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from rag.embedder import SentenceTransformerEmbedder
from rag.offline import enforce_offline
from rag.ports import Embedder, SparseEncoder, VectorStore
from rag.settings import Settings
from rag.sparse import Bm25Encoder


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
        return SentenceTransformerEmbedder(self.settings.embedding)

    @cached_property
    def sparse(self) -> SparseEncoder:
        return Bm25Encoder(self.settings.ingest.bm25_avg_doc_tokens)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
