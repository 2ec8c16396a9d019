"""The seams: the only places where a concrete technology is swapped."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from rag.evidence import Calibration
from rag.types import (
    Chunk,
    CollectionInfo,
    CollectionSpec,
    DocumentRecord,
    Message,
    SearchFilter,
    SearchHit,
    SparseVector,
    Thinking,
    Usage,
)


class Embedder(Protocol):
    @property
    def model_name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int:
        """Longest input, in the model's tokens, special tokens included."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens the model would see for `text`, special tokens included."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...

    def use_threads(self, threads: int) -> None:
        """Cores the embedder may use from now on (others are busy parsing)."""
        ...

    @property
    def backend(self) -> str:
        """What runs the model ("torch", "onnx-int8"): recorded with a collection, not
        compared (the same model's vectors whichever runs it)."""
        ...


class SparseEncoder(Protocol):
    def encode_document(self, text: str) -> SparseVector: ...

    def encode_query(self, text: str) -> SparseVector: ...


class VectorStore(Protocol):
    """Collections of chunks with dense and sparse vectors, plus one record per document."""

    def ensure_collection(self, name: str, spec: CollectionSpec) -> None:
        """Create the collection, or check that it was built with the same embedding model."""
        ...

    def collection_spec(self, name: str) -> CollectionSpec | None: ...

    def collections(self) -> list[CollectionInfo]: ...

    def calibration(self, name: str) -> Calibration | None:
        """Where the collection's evidence lies, as last fitted (None: never fitted)."""
        ...

    def put_calibration(self, name: str, calibration: Calibration) -> None: ...

    def upsert_chunks(
        self,
        collection: str,
        chunks: Sequence[Chunk],
        dense: Sequence[Sequence[float]],
        sparse: Sequence[SparseVector],
    ) -> None: ...

    def put_stored_chunks(
        self,
        collection: str,
        chunks: Sequence[SearchHit],
        dense: Sequence[Sequence[float]],
        sparse: Sequence[SparseVector],
    ) -> None:
        """Chunks as `chunks()` returned them (id and payload), with new vectors: a
        collection re-embedded without parsing its files again."""
        ...

    def drop_collection(self, name: str) -> None:
        """Remove the collection and everything in it (nothing when it does not exist)."""
        ...

    def delete_stale_chunks(self, collection: str, document_id: str, keep_sha256: str) -> None:
        """Remove the chunks of other versions of the document."""
        ...

    def put_document(self, record: DocumentRecord) -> None: ...

    def documents(self, collection: str) -> list[DocumentRecord]: ...

    def delete_document(self, collection: str, document_id: str) -> int:
        """Remove the document's record and chunks; returns the number of chunks removed."""
        ...

    def chunks(self, collection: str, document_id: str | None = None) -> list[SearchHit]:
        """Every chunk (id and payload), ordered by document and position."""
        ...

    def count_chunks(self, collection: str, document_id: str | None = None) -> int: ...

    def search(
        self,
        collections: Sequence[str],
        query: Sequence[float] | SparseVector,
        limit: int,
        search_filter: SearchFilter | None = None,
    ) -> list[SearchHit]:
        """Chunks nearest to one query vector, dense (cosine) or sparse (BM25), best first,
        only from `collections` and within `search_filter`. Fusion is the retriever's job."""
        ...

    def chunks_by_id(self, collection: str, ids: Sequence[str]) -> list[SearchHit]:
        """The chunks among `ids` that exist (neighbour expansion asks for computed IDs)."""
        ...

    def optimize(self, collection: str) -> None:
        """Bring the collection's search index up to date after writes (may take minutes
        on millions of chunks; a no-op where the store does it by itself)."""
        ...

    def close(self) -> None: ...


class Reranker(Protocol):
    """Re-scores (question, passage) pairs, reading them together (a cross-encoder)."""

    def score(self, question: str, passages: Sequence[str]) -> list[float]:
        """One relevance per passage, on a 0..1 scale."""
        ...


class Generator(Protocol):
    """Writes answers: a model behind a server (Ollama, an OpenAI-compatible server, or the
    embedded llama.cpp). One error family (GeneratorError); an unreachable server is
    GeneratorUnavailable, and answers fall back to search mode."""

    @property
    def model(self) -> str: ...

    @property
    def provider(self) -> str:
        """Who serves the model, for people: "Ollama", "the embedded llama.cpp"..."""
        ...

    def check(self) -> None:
        """Raise a GeneratorError unless the server answers and has the model."""
        ...

    def context_limit(self) -> int:
        """Largest context (prompt + answer, in the model's tokens) to ask for."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` as one message of a chat, by the model's tokenizer where the
        server offers one, else estimated (erring long) from what it reported before."""
        ...

    def stream(
        self, messages: Sequence[Message], num_ctx: int, answer_tokens: int | None = None
    ) -> Iterator[str | Thinking | Usage]:
        """Answer text as the model writes it, its reasoning apart (Thinking), then one
        Usage. `answer_tokens`: the answer's cap (None: llm.max_answer_tokens)."""
        ...

    def complete(self, messages: Sequence[Message], num_ctx: int) -> str:
        """The whole answer, without its reasoning."""
        ...

    def reasoning_room(self) -> int:
        """Tokens of the context kept for the model's reasoning (0: it does not reason)."""
        ...

    def close(self) -> None:
        """Let go of the server (the embedded one stops)."""
        ...
