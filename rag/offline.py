"""Switches that keep third-party libraries off the network.

Applied by the composition root and by each parser process before the libraries are
imported; never at import time of Citadel's own modules.
"""

from __future__ import annotations

import os

OFFLINE_ENVIRONMENT = {
    # Hugging Face: never look for models or tokenizers on the hub.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    # unstructured: its import-time analytics ping and its commercial notice.
    "SCARF_NO_ANALYTICS": "true",
    "DO_NOT_TRACK": "true",
    "UNSTRUCTURED_DISABLE_NOTICE": "1",
    # Gradio (the web UI): no usage analytics.
    "GRADIO_ANALYTICS_ENABLED": "False",
    # tokenizers forks badly once its thread pool exists; Citadel parallelises by process.
    "TOKENIZERS_PARALLELISM": "false",
}


def enforce_offline() -> None:
    """Set the switches in this process's environment (inherited by child processes)."""
    for name, value in OFFLINE_ENVIRONMENT.items():
        os.environ[name] = value
