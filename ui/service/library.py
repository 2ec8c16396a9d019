"""The library of a collection as people browse it: filtered by name or title, sorted, a
page at a time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class LibraryPage:
    """One page of a library: `records` from `offset` on, of `total` documents shown."""

    records: list[DocumentRecord]
    total: int
    offset: int
    limit: int


def page_of(records: Sequence[DocumentRecord], offset: int, limit: int) -> LibraryPage:
    """The page holding `offset` (moved back onto the last page when the library shrank)."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    total = len(records)
    offset = max(0, offset)
    if offset >= total:
        offset = max(0, (total - 1) // limit * limit)
    return LibraryPage(list(records[offset : offset + limit]), total, offset, limit)
