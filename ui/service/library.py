"""The library of a collection as people browse it: filtered by name or title, sorted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from rag.types import DocumentRecord

SortField = Literal["source", "ingested_at", "size", "chunks"]


def library(
    records: Sequence[DocumentRecord],
    text: str | None = None,
    sort: SortField = "source",
    descending: bool = False,
) -> list[DocumentRecord]:
    """The documents whose file name or title contains `text` (any case), sorted."""
    wanted = (text or "").strip().lower()
    shown = [r for r in records if wanted in f"{r.source} {r.title}".lower()]
    return sorted(shown, key=lambda r: getattr(r, sort), reverse=descending)
