"""Finding the files to ingest under the given paths, and the ones to leave alone."""

from __future__ import annotations

import errno
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ingest.formats import Format, format_of


@dataclass(frozen=True)
class Candidate:
    path: Path  # where to read it
    root: Path  # the folder it was found under (absolute)
    source: str  # path relative to root, '/'-separated: the document's identity
    size: int
    format: Format


@dataclass(frozen=True)
class Rejected:
    source: str
    status: str  # "skipped" or "failed"
    reason: str
    file_type: str = ""


@dataclass
class Discovery:
    candidates: list[Candidate]
    rejected: list[Rejected]


def _display(relative: str) -> str:
    # File names that are not valid UTF-8 still get a printable, storable identity.
    return relative.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def discover(paths: list[Path], max_bytes: int, root: Path | None = None) -> Discovery:
    """Walk `paths` (files or folders, recursively, hidden entries skipped). A file's
    identity is relative to its folder, or to `root` when given (re-ingesting one file of
    an ingested tree keeps its place in the tree)."""
    found = Discovery([], [])
    seen: set[Path] = set()
    for given in paths:
        root_path = given.absolute()
        if root_path.is_dir():
            folder = root_path.resolve()
            seen.add(folder)  # a link back to the top must not walk the tree twice
            _walk(folder, found, seen, max_bytes)
        else:
            base = root.resolve() if root is not None else root_path.parent.resolve()
            _consider(root_path, base, found, seen, max_bytes)
    found.candidates.sort(key=lambda c: c.source)
    return found


def _walk(root: Path, found: Discovery, seen: set[Path], max_bytes: int) -> None:
    """Depth first, in name order, with a stack rather than recursion: a tree thousands of
    folders deep is walked like any other."""
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            found.rejected.append(
                Rejected(_rel(folder, root), "failed", f"cannot read folder: {exc.strerror}")
            )
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            why = _unfollowed_link(path, root) if entry.is_symlink() else None
            if why is not None:
                found.rejected.append(Rejected(_rel(path, root), "skipped", why))
                continue
            try:
                real = path.resolve()
                is_dir, is_file = path.is_dir(), path.is_file()
            except (OSError, RuntimeError) as exc:
                found.rejected.append(Rejected(_rel(path, root), "failed", f"cannot read: {exc}"))
                continue
            if is_dir:
                if real not in seen:  # a link back into the tree must not loop
                    seen.add(real)
                    subfolders.append(path)
            elif is_file:
                _consider(path, root, found, seen, max_bytes)
            else:
                found.rejected.append(
                    Rejected(
                        _rel(path, root),
                        "skipped",
                        "not a regular file (a pipe, socket or device: never read)",
                    )
                )
        pending.extend(reversed(subfolders))


def _unfollowed_link(path: Path, root: Path) -> str | None:
    """Why a symbolic link is not followed, or None when it stays inside the folder."""
    try:
        target = path.resolve(strict=True)
    except RuntimeError:  # Python 3.11 raises it for a loop
        return "symbolic link loop"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        return "broken symbolic link"
    if not target.is_relative_to(root):
        return "symbolic link to a place outside the ingested folder (not followed)"
    return None


def _consider(path: Path, root: Path, found: Discovery, seen: set[Path], max_bytes: int) -> None:
    source = _rel(path, root)
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # RuntimeError: a link loop (Python 3.11)
        found.rejected.append(Rejected(source, "skipped", "broken symbolic link or link loop"))
        return
    if not real.is_file():
        found.rejected.append(
            Rejected(source, "skipped", "not a regular file (a pipe, socket or device: never read)")
        )
        return
    if real in seen:  # the same file reached twice (a link inside the tree)
        return
    seen.add(real)
    fmt = format_of(path)
    if fmt is None:
        suffix = path.suffix.lower() or "(no extension)"
        found.rejected.append(Rejected(source, "skipped", f"unsupported file type {suffix}"))
        return
    try:
        size = path.stat().st_size
    except OSError as exc:
        found.rejected.append(Rejected(source, "failed", f"cannot read: {exc.strerror}", fmt.name))
        return
    if size > max_bytes:
        found.rejected.append(
            Rejected(
                source,
                "failed",
                f"file is {size / 2**20:,.1f} MiB, over the {max_bytes / 2**20:,.0f} MiB limit "
                "(CITADEL_INGEST__MAX_FILE_MB)",
                fmt.name,
            )
        )
        return
    if not os.access(path, os.R_OK):
        found.rejected.append(Rejected(source, "failed", "permission denied", fmt.name))
        return
    found.candidates.append(Candidate(path, root, source, size, fmt))


def _rel(path: Path, root: Path) -> str:
    try:
        relative = path.relative_to(root)
    except ValueError:
        relative = Path(path.name)
    return _display(relative.as_posix())


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
