"""Qdrant server through qdrant-client (docker-compose, clusters); local mode in tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from rag.adapters.qdrant.base import (
    DENSE,
    KEYWORD_FIELDS,
    SPARSE,
    Match,
    PointData,
    QdrantStore,
    hit_from_point,
)
from rag.errors import StoreUnavailable
from rag.settings import SEARCH_EF, QdrantSettings
from rag.types import SearchHit, SparseVector

_SCROLL_PAGE = 512


def _condition(match: Match) -> qm.FieldCondition:
    if len(match.values) == 1:
        return qm.FieldCondition(key=match.key, match=qm.MatchValue(value=match.values[0]))
    return qm.FieldCondition(key=match.key, match=qm.MatchAny(any=list(match.values)))


def _filter(must: Sequence[Match], must_not: Sequence[Match] = ()) -> qm.Filter:
    return qm.Filter(
        must=[_condition(m) for m in must] or None,
        must_not=[_condition(m) for m in must_not] or None,
    )


class ServerStore(QdrantStore):
    """Each Citadel collection is the Qdrant collection `<prefix><name>`."""

    def __init__(
        self,
        client: QdrantClient,
        prefix: str = "citadel-",
        search_ef: int = SEARCH_EF,
        url: str = "",
    ) -> None:
        self._client = client
        self._where = f"the Qdrant server at {url}" if url else "the Qdrant server"
        self._prefix = prefix
        self._search_params = qm.SearchParams(hnsw_ef=search_ef)

    @classmethod
    def connect(cls, settings: QdrantSettings) -> ServerStore:
        """The store on the Qdrant server the settings name."""
        assert settings.url, "a Qdrant server URL is configured"
        api_key = settings.api_key.get_secret_value() if settings.api_key else None
        client = QdrantClient(url=settings.url, api_key=api_key, timeout=int(settings.timeout_s))
        return cls(client, settings.collection_prefix, settings.search_ef, settings.url)

    def _qname(self, name: str) -> str:
        return f"{self._prefix}{name}"

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ResponseHandlingException, UnexpectedResponse, ConnectionError) as exc:
            # Not reached at all (refused, timed out, no route): say where it was looked for.
            unreached = not isinstance(exc, UnexpectedResponse)
            hint = ": is it running, and is qdrant.url right?" if unreached else ""
            raise StoreUnavailable(f"{self._where} failed to {what} ({exc}){hint}") from exc

    def _exists(self, name: str) -> bool:
        return bool(
            self._call("look up a collection", self._client.collection_exists, self._qname(name))
        )

    def _create(self, name: str, dimension: int) -> None:
        qname = self._qname(name)
        self._call(
            "create a collection",
            self._client.create_collection,
            qname,
            vectors_config={DENSE: qm.VectorParams(size=dimension, distance=qm.Distance.COSINE)},
            sparse_vectors_config={SPARSE: qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
            on_disk_payload=True,
        )
        for field in KEYWORD_FIELDS:
            self._call(
                "index a payload field",
                self._client.create_payload_index,
                qname,
                field,
                field_schema=qm.PayloadSchemaType.KEYWORD,
            )

    def _names(self) -> list[str]:
        response = self._call("list collections", self._client.get_collections)
        return [
            c.name[len(self._prefix) :]
            for c in response.collections
            if c.name.startswith(self._prefix)
        ]

    def _upsert(self, name: str, points: Sequence[PointData]) -> None:
        structs = []
        for p in points:
            vector: dict[str, Any] = {}
            if p.dense is not None:
                vector[DENSE] = [float(x) for x in p.dense]
            if p.sparse is not None:
                vector[SPARSE] = qm.SparseVector(indices=p.sparse.indices, values=p.sparse.values)
            structs.append(qm.PointStruct(id=p.id, vector=vector, payload=p.payload))
        self._call("store points", self._client.upsert, self._qname(name), structs, wait=True)

    def _scroll(self, name: str, must: Sequence[Match]) -> list[SearchHit]:
        hits: list[SearchHit] = []
        offset = None
        while True:
            records, offset = self._call(
                "read points",
                self._client.scroll,
                self._qname(name),
                scroll_filter=_filter(must),
                limit=_SCROLL_PAGE,
                offset=offset,
                with_payload=True,
                with_vectors=False,
            )
            hits.extend(hit_from_point(r) for r in records)
            if offset is None:
                return hits

    def _count(self, name: str, must: Sequence[Match]) -> int:
        result = self._call(
            "count points",
            self._client.count,
            self._qname(name),
            count_filter=_filter(must),
            exact=True,
        )
        return int(result.count)

    def _delete(self, name: str, must: Sequence[Match], must_not: Sequence[Match] = ()) -> None:
        self._call(
            "delete points",
            self._client.delete,
            self._qname(name),
            points_selector=qm.FilterSelector(filter=_filter(must, must_not)),
            wait=True,
        )

    def _retrieve(self, name: str, ids: Sequence[str]) -> list[SearchHit]:
        records = self._call(
            "read points",
            self._client.retrieve,
            self._qname(name),
            list(ids),
            with_payload=True,
            with_vectors=False,
        )
        return [hit_from_point(r) for r in records]

    def _nearest(
        self, name: str, query: Sequence[float] | SparseVector, limit: int, must: Sequence[Match]
    ) -> list[SearchHit]:
        vector: Any
        if isinstance(query, SparseVector):
            vector, using = qm.SparseVector(indices=query.indices, values=query.values), SPARSE
        else:
            vector, using = [float(x) for x in query], DENSE
        response = self._call(
            "search",
            self._client.query_points,
            self._qname(name),
            query=vector,
            using=using,
            query_filter=_filter(must),
            limit=limit,
            # The HNSW beam is for the dense graph; a sparse search reads its inverted index.
            search_params=None if using == SPARSE else self._search_params,
            with_payload=True,
            with_vectors=False,
        )
        return [hit_from_point(p) for p in response.points]

    def _drop(self, name: str) -> None:
        self._call("delete a collection", self._client.delete_collection, self._qname(name))

    def optimize(self, collection: str) -> None:
        """A Qdrant server runs its optimizers in the background: nothing to do."""
        self._require(collection)

    def close(self) -> None:
        self._client.close()
