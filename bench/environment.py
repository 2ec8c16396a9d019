"""What every benchmark records: the machine it ran on (figures mean little without it),
and the same summary of a latency distribution."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import numpy as np
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


def percentiles(values: Sequence[float], digits: int) -> dict[str, float]:
    """p50/p95/p99, mean and max of a non-empty series."""
    a = np.asarray(values, dtype=np.float64)
    return {
        "p50": round(float(np.percentile(a, 50)), digits),
        "p95": round(float(np.percentile(a, 95)), digits),
        "p99": round(float(np.percentile(a, 99)), digits),
        "mean": round(float(a.mean()), digits),
        "max": round(float(a.max()), digits),
    }
