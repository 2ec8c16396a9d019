"""Qdrant Edge: the real Qdrant engine in-process, one shard per collection on local disk."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe

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
from rag.settings import MIN_FREE_MB, SEARCH_EF
from rag.types import SearchHit, SparseVector

_SCROLL_PAGE = 512
_CONFIG_FILE = "edge_config.json"


def _size(folder: Path) -> int:
    """Bytes the files under `folder` take on disk (sparse files count what they use)."""
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def _condition(match: Match) -> qe.FieldCondition:
    if len(match.values) == 1:
        return qe.FieldCondition(key=match.key, match=qe.MatchValue(match.values[0]))
    return qe.FieldCondition(key=match.key, match=qe.MatchAny(list(match.values)))


def _filter(must: Sequence[Match], must_not: Sequence[Match] = ()) -> qe.Filter:
    return qe.Filter(
        must=[_condition(m) for m in must] or None,
        must_not=[_condition(m) for m in must_not] or None,
    )


class EdgeStore(QdrantStore):
    """Collections are folders under `root`; a shard stays open until `close()`.

    Qdrant Edge locks a shard's write-ahead log: a second process opening the same data
    directory gets StoreUnavailable instead of corrupting it.
    """

    def __init__(
        self, root: Path, search_ef: int = SEARCH_EF, min_free_mb: int = MIN_FREE_MB
    ) -> None:
        self._root = root
        self._min_free = min_free_mb * 2**20
        self._search_params = qe.SearchParams(hnsw_ef=search_ef)
        self._shards: dict[str, qe.EdgeShard] = {}
        # A server opens shards from several request threads: two threads loading the same
        # shard would lock each other out of its write-ahead log.
        self._opening = threading.Lock()

    def _path(self, name: str) -> Path:
        return self._root / name

    def _shard(self, name: str) -> qe.EdgeShard:
        shard = self._shards.get(name)
        if shard is not None:
            return shard
        with self._opening:
            shard = self._shards.get(name)
            if shard is None:
                try:
                    shard = qe.EdgeShard.load(str(self._path(name)))
                except Exception as exc:
                    raise self._unavailable(name, exc) from exc
                self._shards[name] = shard
        return shard

    def _unavailable(self, name: str, exc: Exception) -> StoreUnavailable:
        if "WouldBlock" in str(exc):
            return StoreUnavailable(
                f"the store of collection {name!r} under {self._root} is in use by another "
                "Citadel process (a server or an ingestion); wait for it or stop it"
            )
        if self._read_only():
            return StoreUnavailable(
                f"the data directory's store {self._root} is read-only: Citadel writes to it "
                "even to search (each collection's lock and write-ahead log); make it "
                "writable by this user"
            )
        return StoreUnavailable(f"cannot open the store of collection {name!r}: {exc}")

    def _existing_folder(self) -> Path:
        folder = self._root
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        return folder

    def _read_only(self) -> bool:
        folder = self._existing_folder()
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY) or not os.access(folder, os.W_OK)

    def _check_room(self, writing: int = 0) -> None:
        """Refuses a write when the disk is nearly full: the shard writes through mapped
        memory, and a process writing that way to a full disk is killed (SIGBUS) before
        any error can be reported. `writing`: bytes the write itself may take beyond the
        floor (an index rebuilt)."""
        if self._min_free == 0:
            return
        free = shutil.disk_usage(self._existing_folder()).free
        if free < self._min_free + writing:
            raise StoreUnavailable(
                f"the disk holding {self._root} has {free / 2**20:.0f} MB free, less than "
                f"the {(self._min_free + writing) / 2**20:.0f} MB the store keeps free "
                "(qdrant.min_free_mb): nothing more was written. Free some space and run "
                "the command again: what was stored is kept, and an ingestion resumes "
                "where it stopped"
            )

    def _exists(self, name: str) -> bool:
        return name in self._shards or (self._path(name) / _CONFIG_FILE).is_file()

    def _create(self, name: str, dimension: int) -> None:
        # Built under a temporary name and renamed into place: a crash never leaves a
        # half-configured shard (missing payload indexes) that looks like a real one.
        self._check_room()
        path = self._path(name)
        building = path.with_name(f".{name}.creating")
        try:
            for leftover in (path, building):
                if leftover.exists():
                    shutil.rmtree(leftover)
            building.mkdir(parents=True)
        except OSError as exc:
            raise self._unavailable(name, exc) from exc
        config = qe.EdgeConfig(
            vectors={DENSE: qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)},
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            on_disk_payload=True,
        )
        try:
            shard = qe.EdgeShard.create(str(building), config)
            for field in KEYWORD_FIELDS:
                shard.update(
                    qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword)
                )
            shard.flush()
            shard.close()
        except Exception as exc:
            shutil.rmtree(building, ignore_errors=True)
            raise self._unavailable(name, exc) from exc
        building.rename(path)
        self._shard(name)

    def _names(self) -> list[str]:
        if not self._root.is_dir():
            return []
        # Hidden folders are collections being built (`.name.creating`), not collections.
        return [
            p.name
            for p in self._root.iterdir()
            if not p.name.startswith(".") and (p / _CONFIG_FILE).is_file()
        ]

    def _upsert(self, name: str, points: Sequence[PointData]) -> None:
        converted = []
        for p in points:
            vector: dict[str, Any] = {}
            if p.dense is not None:
                vector[DENSE] = [float(x) for x in p.dense]
            if p.sparse is not None:
                vector[SPARSE] = qe.SparseVector(p.sparse.indices, p.sparse.values)
            converted.append(qe.Point(p.id, vector, p.payload))
        self._check_room()
        self._shard(name).update(qe.UpdateOperation.upsert_points(converted))

    def _scroll(self, name: str, must: Sequence[Match]) -> list[SearchHit]:
        shard, offset = self._shard(name), None
        hits: list[SearchHit] = []
        while True:
            records, offset = shard.scroll(
                qe.ScrollRequest(
                    offset=offset,
                    limit=_SCROLL_PAGE,
                    filter=_filter(must),
                    with_payload=True,
                    with_vector=False,
                )
            )
            hits.extend(hit_from_point(r) for r in records)
            if offset is None:
                return hits

    def _count(self, name: str, must: Sequence[Match]) -> int:
        return int(self._shard(name).count(qe.CountRequest(exact=True, filter=_filter(must))))

    def _delete(self, name: str, must: Sequence[Match], must_not: Sequence[Match] = ()) -> None:
        # Not refused on a nearly full disk: a deletion writes little (within the floor the
        # writes keep), and refusing the one that follows an upsert would leave a
        # document's old and new chunks side by side.
        self._shard(name).update(
            qe.UpdateOperation.delete_points_by_filter(_filter(must, must_not))
        )

    def _retrieve(self, name: str, ids: Sequence[str]) -> list[SearchHit]:
        records = self._shard(name).retrieve(list(ids), with_payload=True, with_vector=False)
        return [hit_from_point(r) for r in records]

    def _nearest(
        self, name: str, query: Sequence[float] | SparseVector, limit: int, must: Sequence[Match]
    ) -> list[SearchHit]:
        params = None  # a sparse search reads its inverted index; the beam is the graph's
        if isinstance(query, SparseVector):
            nearest = qe.Query.Nearest(qe.SparseVector(query.indices, query.values), using=SPARSE)
        else:
            nearest = qe.Query.Nearest([float(x) for x in query], using=DENSE)
            params = self._search_params
        points = self._shard(name).query(
            qe.QueryRequest(
                limit=limit,
                query=nearest,
                filter=_filter(must),
                with_payload=True,
                with_vector=False,
                params=params,
            )
        )
        return [hit_from_point(p) for p in points]

    def _drop(self, name: str) -> None:
        shard = self._shards.pop(name, None)
        if shard is not None:
            shard.close()
        shutil.rmtree(self._path(name))

    def optimize(self, collection: str) -> None:
        self._require(collection)
        # Rebuilding segments may rewrite the whole shard, through mapped memory too.
        self._check_room(writing=_size(self._path(collection)))
        self._shard(collection).optimize()

    def flush(self) -> None:
        for shard in self._shards.values():
            shard.flush()

    def close(self) -> None:
        for shard in self._shards.values():
            shard.flush()
            shard.close()
        self._shards.clear()
