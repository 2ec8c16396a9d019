"""What both Qdrant adapters share: the collection layout, documents, and their rules.

Layout of one collection: chunk points (dense vector `dense`, sparse vector `sparse` with
IDF applied by Qdrant), one vectorless `document` point per completely stored file, and
one vectorless `collection` point recording the embedding model and the evidence
calibration. Adapters only translate
the small primitives below into their library's calls.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rag.errors import CollectionNotFound, EmbeddingModelMismatch, StoreError
from rag.evidence import Calibration
from rag.ids import COLLECTION_META_ID, manifest_id, validate_collection_name
from rag.types import (
    Chunk,
    CollectionInfo,
    CollectionSpec,
    DocumentRecord,
    SearchFilter,
    SearchHit,
    SparseVector,
)

DENSE = "dense"
SPARSE = "sparse"
KEYWORD_FIELDS = ("kind", "document_id", "file_type", "folders", "source")


@dataclass(frozen=True)
class Match:
    """Payload `key` equals one of `values` (for an array field: contains one of them)."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class PointData:
    id: str
    payload: dict[str, object]
    dense: Sequence[float] | None = None
    sparse: SparseVector | None = None


def folders_of(source: str) -> list[str]:
    """Every ancestor folder of a source path, for path-prefix filters ('a/b/c.pdf' -> a, a/b)."""
    parts = source.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def hit_from_point(point: Any) -> SearchHit:
    """A scored point or record of either client library, as the port's SearchHit."""
    return SearchHit(
        id=str(point.id),
        score=float(getattr(point, "score", 0.0) or 0.0),
        payload=dict(point.payload or {}),
    )


def _is(kind: str) -> Match:
    return Match("kind", (kind,))


class QdrantStore(ABC):
    """The VectorStore port on top of a few Qdrant primitives."""

    # -- primitives, one implementation per adapter -------------------------------------
    @abstractmethod
    def _exists(self, name: str) -> bool: ...

    @abstractmethod
    def _create(self, name: str, dimension: int) -> None: ...

    @abstractmethod
    def _names(self) -> list[str]: ...

    @abstractmethod
    def _upsert(self, name: str, points: Sequence[PointData]) -> None: ...

    @abstractmethod
    def _scroll(self, name: str, must: Sequence[Match]) -> list[SearchHit]: ...

    @abstractmethod
    def _count(self, name: str, must: Sequence[Match]) -> int: ...

    @abstractmethod
    def _delete(self, name: str, must: Sequence[Match], must_not: Sequence[Match] = ()) -> None: ...

    @abstractmethod
    def _retrieve(self, name: str, ids: Sequence[str]) -> list[SearchHit]: ...

    @abstractmethod
    def _nearest(
        self, name: str, query: Sequence[float] | SparseVector, limit: int, must: Sequence[Match]
    ) -> list[SearchHit]:
        """Points nearest to a dense (cosine) or sparse (BM25, IDF applied) query vector."""

    @abstractmethod
    def _drop(self, name: str) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    # -- the port ---------------------------------------------------------------------
    def ensure_collection(self, name: str, spec: CollectionSpec) -> None:
        validate_collection_name(name)
        existing = self.collection_spec(name)
        if existing is None:
            if not self._exists(name):
                self._create(name, spec.dimension)
            meta = {
                "kind": "collection",
                "embedding_model": spec.embedding_model,
                "dimension": spec.dimension,
                "embedding_backend": spec.backend,
            }
            self._upsert(name, [PointData(COLLECTION_META_ID, meta)])
        elif existing.embedding_model != spec.embedding_model:
            raise EmbeddingModelMismatch.between(
                name, existing.embedding_model, spec.embedding_model
            )
        elif existing.dimension != spec.dimension:
            raise EmbeddingModelMismatch(
                f"collection {name!r} holds {existing.dimension}-dimension vectors; the model "
                f"{spec.embedding_model!r} now gives {spec.dimension}"
            )

    def collection_spec(self, name: str) -> CollectionSpec | None:
        validate_collection_name(name)
        if not self._exists(name):
            return None
        found = self._retrieve(name, [COLLECTION_META_ID])
        if not found:
            return None
        payload = found[0].payload
        return CollectionSpec(
            str(payload["embedding_model"]),
            int(payload["dimension"]),
            str(payload.get("embedding_backend") or ""),
        )

    def calibration(self, name: str) -> Calibration | None:
        self._require(name)
        found = self._retrieve(name, [COLLECTION_META_ID])
        fitted = found[0].payload.get("calibration") if found else None
        return Calibration.from_payload(fitted) if isinstance(fitted, dict) else None

    def put_calibration(self, name: str, calibration: Calibration) -> None:
        self._require(name)
        found = self._retrieve(name, [COLLECTION_META_ID])
        if not found:
            raise CollectionNotFound(f"collection {name!r} has no record of its embedding model")
        meta = {**found[0].payload, "calibration": calibration.payload()}
        self._upsert(name, [PointData(COLLECTION_META_ID, meta)])

    def collections(self) -> list[CollectionInfo]:
        infos = []
        for name in sorted(self._names()):
            spec = self.collection_spec(name)
            if spec is None:
                continue  # a foreign or half-created collection: not Citadel's
            infos.append(
                CollectionInfo(
                    name=name,
                    spec=spec,
                    documents=self._count(name, [_is("document")]),
                    chunks=self._count(name, [_is("chunk")]),
                )
            )
        return infos

    def upsert_chunks(
        self,
        collection: str,
        chunks: Sequence[Chunk],
        dense: Sequence[Sequence[float]],
        sparse: Sequence[SparseVector],
    ) -> None:
        stored = [
            SearchHit(c.id, 0.0, {**c.payload(), "folders": folders_of(c.source)}) for c in chunks
        ]
        self.put_stored_chunks(collection, stored, dense, sparse)

    def put_stored_chunks(
        self,
        collection: str,
        chunks: Sequence[SearchHit],
        dense: Sequence[Sequence[float]],
        sparse: Sequence[SparseVector],
    ) -> None:
        if not (len(chunks) == len(dense) == len(sparse)):
            raise ValueError("chunks, dense and sparse vectors must have the same length")
        self._require(collection)
        points = [
            PointData(c.id, c.payload, d, s) for c, d, s in zip(chunks, dense, sparse, strict=True)
        ]
        self._upsert(collection, points)

    def drop_collection(self, name: str) -> None:
        validate_collection_name(name)
        if self._exists(name):
            self._drop(name)

    def delete_stale_chunks(self, collection: str, document_id: str, keep_sha256: str) -> None:
        self._require(collection)
        self._delete(
            collection,
            must=[_is("chunk"), Match("document_id", (document_id,))],
            must_not=[Match("sha256", (keep_sha256,))],
        )

    def put_document(self, record: DocumentRecord) -> None:
        self._require(record.collection)
        self._upsert(record.collection, [PointData(manifest_id(record.id), record.payload())])

    def documents(self, collection: str) -> list[DocumentRecord]:
        self._require(collection)
        hits = self._scroll(collection, [_is("document")])
        return sorted(
            (DocumentRecord.from_payload(h.payload) for h in hits), key=lambda d: d.source
        )

    def delete_document(self, collection: str, document_id: str) -> int:
        self._require(collection)
        removed = self.count_chunks(collection, document_id)
        # The record goes first: a crash in between leaves chunks without a record, which
        # the next ingestion of the file replaces, never a record pointing at nothing.
        self._delete(collection, must=[_is("document"), Match("document_id", (document_id,))])
        self._delete(collection, must=[Match("document_id", (document_id,))])
        return removed

    def chunks(self, collection: str, document_id: str | None = None) -> list[SearchHit]:
        self._require(collection)
        must = [_is("chunk")]
        if document_id is not None:
            must.append(Match("document_id", (document_id,)))
        hits = self._scroll(collection, must)
        return sorted(hits, key=lambda h: (h.payload["source"], h.payload["chunk"]))

    def count_chunks(self, collection: str, document_id: str | None = None) -> int:
        self._require(collection)
        must = [_is("chunk")]
        if document_id is not None:
            must.append(Match("document_id", (document_id,)))
        return self._count(collection, must)

    def search(
        self,
        collections: Sequence[str],
        query: Sequence[float] | SparseVector,
        limit: int,
        search_filter: SearchFilter | None = None,
    ) -> list[SearchHit]:
        if not collections:
            raise StoreError("a search needs at least one collection")
        if isinstance(query, SparseVector) and not query.indices:
            return []  # a question made only of stop words has no lexical evidence
        must = [_is("chunk"), *self._filter_conditions(search_filter or SearchFilter())]
        hits: list[SearchHit] = []
        for name in collections:
            self._require(name)
            hits.extend(self._nearest(name, query, limit, must))
        return sorted(hits, key=lambda h: h.score, reverse=True)[:limit]

    def chunks_by_id(self, collection: str, ids: Sequence[str]) -> list[SearchHit]:
        self._require(collection)
        return [h for h in self._retrieve(collection, ids) if h.payload.get("kind") == "chunk"]

    # -- helpers ------------------------------------------------------------------------
    @staticmethod
    def _filter_conditions(search_filter: SearchFilter) -> list[Match]:
        must = []
        if search_filter.document_ids:
            must.append(Match("document_id", tuple(search_filter.document_ids)))
        if search_filter.file_types:
            must.append(Match("file_type", tuple(search_filter.file_types)))
        if search_filter.source_prefix:
            must.append(Match("folders", (search_filter.source_prefix.strip("/"),)))
        return must

    def _require(self, name: str) -> None:
        validate_collection_name(name)
        if not self._exists(name):
            raise CollectionNotFound(f"no collection named {name!r}")
