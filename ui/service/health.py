"""Readiness of what the server depends on: the store, the embedder and the model server,
each reported on its own (an unreachable model server means search mode, not "down")."""

from __future__ import annotations

from typing import Any

from rag.errors import GeneratorError, StoreError
from rag.wiring import Services


def readiness(services: Services) -> dict[str, dict[str, Any]]:
    report: dict[str, dict[str, Any]] = {}
    try:
        services.store.collections()  # opens every shard: the store really works
        # No count: /readyz answers anyone, and the number of collections is not theirs.
        report["store"] = {"ok": True}
    except StoreError as exc:
        report["store"] = {"ok": False, "error": str(exc)}
    loaded = services.embedder_loaded
    report["embedder"] = {"ok": loaded, "model": services.settings.embedding.model}
    if not loaded:
        report["embedder"]["error"] = "still loading"
    generator = services.generator
    if generator is None:
        report["model_server"] = {"ok": False, "error": "no model configured: search mode"}
        return report
    try:
        generator.check()
        report["model_server"] = {"ok": True, "model": generator.model}
    except GeneratorError as exc:
        report["model_server"] = {
            "ok": False,
            "model": generator.model,
            "error": f"{exc} (answers are given in search mode)",
        }
    return report
