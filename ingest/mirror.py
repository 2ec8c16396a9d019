"""A collection mirroring a folder it does not own alone: the incremental pipeline with
prune, limited to the folder's own documents (their `root` is the folder), so documents
uploaded by hand or synced from another folder of the same collection are never touched.

A folder that cannot be listed, or that is empty while documents came from it, is what a
share looks like when it is not mounted: the sync stops there and every document is kept.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from ingest.pipeline import IngestPipeline
from ingest.report import IngestReport
from rag.errors import CitadelError
from rag.ports import VectorStore
from rag.types import DocumentRecord

PROBE_TIMEOUT_S = 30.0  # how long a folder may take to list before it counts as unreachable


class FolderUnreachable(CitadelError):
    """The folder cannot be read now: nothing was changed in the collection."""


def documents_of(store: VectorStore, collection: str, folder: Path) -> list[DocumentRecord]:
    """The collection's documents that came from `folder` (its resolved path)."""
    if store.collection_spec(collection) is None:
        return []
    return [d for d in store.documents(collection) if d.root == str(folder)]


def forget(store: VectorStore, collection: str, folder: Path) -> int:
    """Remove the documents that came from `folder` (a detached one); their number."""
    records = documents_of(store, collection, folder)
    for record in records:
        store.delete_document(collection, record.id)
    return len(records)


def shows_entries(folder: Path, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the folder lists any entry (hidden ones aside). OSError when it cannot be
    listed, TimeoutError when it does not answer in time: a hard-mounted share whose
    server is gone blocks its reader for good, and this reader is a throwaway thread."""
    answer: list[bool | OSError] = []

    def probe() -> None:
        try:
            with os.scandir(folder) as entries:
                answer.append(any(not e.name.startswith(".") for e in entries))
        except OSError as exc:
            answer.append(exc)

    thread = threading.Thread(target=probe, name="citadel-folder-probe", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not answer:
        raise TimeoutError(f"no answer in {timeout_s:g} s (a share whose server is gone?)")
    if isinstance(answer[0], OSError):
        raise answer[0]
    return answer[0]


def check_reachable(folder: Path, held: int) -> None:
    """Raise FolderUnreachable unless `folder` can be listed and, when `held` documents
    came from it, shows at least one entry."""
    kept = f"its {held} document(s) are kept" if held else "nothing was changed"
    try:
        visible = shows_entries(folder)
    except TimeoutError as exc:
        raise FolderUnreachable(f"the folder {folder} is not reachable ({exc}): {kept}") from exc
    except OSError as exc:
        why = "missing, or its share is not mounted" if not folder.exists() else exc.strerror
        raise FolderUnreachable(f"the folder {folder} is not reachable ({why}): {kept}") from exc
    if held and not visible:
        raise FolderUnreachable(
            f"the folder {folder} is not reachable (it is empty, as an unmounted share "
            f"looks): {kept}. Detach it to remove its documents"
        )


def mirror(
    pipeline: IngestPipeline, store: VectorStore, folder: Path, collection: str
) -> IngestReport:
    """Sync `collection` with `folder`: new and changed files in, files gone removed,
    files failing now kept at their last good version."""
    check_reachable(folder, len(documents_of(store, collection, folder)))
    root = str(folder)
    return pipeline.run([folder], collection, prune=True, owned=lambda d: d.root == root)
