"""What an ingestion did: one outcome per file, and the totals a person or a script reads."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

STATUSES = ("added", "updated", "unchanged", "removed", "failed", "skipped")


@dataclass(frozen=True)
class FileOutcome:
    source: str
    status: str  # one of STATUSES
    file_type: str = ""
    chunks: int = 0
    pages: int = 0
    reason: str = ""  # why it failed or was skipped


@dataclass
class StageTimes:
    """Wall time of the main process per stage; parsing overlaps with the others."""

    discover: float = 0.0
    parse_wait: float = 0.0  # waiting for the parser processes
    parse_cpu: float = 0.0  # time the parser processes spent (overlapped)
    chunk: float = 0.0
    embed: float = 0.0
    store: float = 0.0
    optimize: float = 0.0  # building the search index once the files are stored
    calibrate: float = 0.0  # fitting the evidence gate to a new or much changed collection


@dataclass
class IngestReport:
    collection: str
    files: list[FileOutcome] = field(default_factory=list)
    truncated_chunks: int = 0  # chunks longer than the embedder's window: the target is 0
    seconds: float = 0.0
    times: StageTimes = field(default_factory=StageTimes)

    def add(self, outcome: FileOutcome) -> None:
        self.files.append(outcome)

    def counts(self) -> dict[str, int]:
        tally = Counter(f.status for f in self.files)
        return {status: tally.get(status, 0) for status in STATUSES}

    @property
    def chunks_written(self) -> int:
        return sum(f.chunks for f in self.files if f.status in {"added", "updated"})

    @property
    def pages_parsed(self) -> int:
        return sum(f.pages for f in self.files if f.status in {"added", "updated"})

    def to_json(self) -> dict[str, Any]:
        """The stable `--json` shape documented in the README."""
        return {
            "collection": self.collection,
            "counts": self.counts(),
            "chunks_written": self.chunks_written,
            "truncated_chunks": self.truncated_chunks,
            "seconds": round(self.seconds, 3),
            "stage_seconds": {k: round(v, 3) for k, v in asdict(self.times).items()},
            "files": [asdict(f) for f in self.files],
        }
