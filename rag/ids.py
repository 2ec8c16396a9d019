"""Identifiers: collection names, and the deterministic ids of documents and chunks (re-running
any ingestion converges to the same points)."""

from __future__ import annotations

import re
import uuid

from rag.errors import StoreError

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

COLLECTION_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def validate_collection_name(name: str) -> str:
    """A name every store accepts as is (and a URL path segment without escaping)."""
    if not COLLECTION_NAME.match(name):
        raise StoreError(
            f"invalid collection name {name!r}: use 1-63 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name
