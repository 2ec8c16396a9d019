"""What a benchmark ran on, recorded with its results: figures mean little without it."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

import psutil


def environment(*packages: str) -> dict[str, Any]:
    """The machine, the thread settings, the load when the run started, and the versions of
    `packages` (distribution names)."""

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        **{name: version(name) for name in packages},
    }
