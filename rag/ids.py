"""Deterministic identifiers: re-running any ingestion converges to the same points."""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("6f1c7a52-3c1e-5d39-9f55-3a0f0f1c1d7e")


def document_id(collection: str, source: str) -> str:
    """A document is its path (relative to the ingested folder) within a collection."""
    return str(uuid.uuid5(_NAMESPACE, f"{collection}\x00{source}"))


def chunk_id(document: str, number: int) -> str:
    return str(uuid.uuid5(uuid.UUID(document), f"chunk:{number}"))


def manifest_id(document: str) -> str:
    """The point that records a document as completely stored."""
    return str(uuid.uuid5(uuid.UUID(document), "manifest"))


COLLECTION_META_ID = str(uuid.uuid5(_NAMESPACE, "collection-metadata"))
