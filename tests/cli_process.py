"""The `citadel` command run as its users run it: in a process of its own, from the
repository, with none of the developer's CITADEL_ variables: a test's settings are only
those it passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def citadel(
    data_dir: Path | None,
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stdin: str | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """`citadel [--data-dir DATA_DIR] ARGS...`, its output captured as text."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CITADEL_")}
    full_env.update(env or {})
    data = ["--data-dir", str(data_dir)] if data_dir is not None else []
    return subprocess.run(
        [sys.executable, "-m", "ui", *data, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd or REPO,
    )
