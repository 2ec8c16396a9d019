"""The architecture is enforced, not remembered: layering and import-time behaviour."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _imports(package: str) -> set[tuple[str, str]]:
    found = set()
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {(str(path.relative_to(REPO)), a.name.split(".")[0]) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add((str(path.relative_to(REPO)), node.module.split(".")[0]))
    return found


def test_rag_imports_neither_ingest_nor_ui():
    assert {(f, m) for f, m in _imports("rag") if m in {"ingest", "ui"}} == set()


def test_ingest_does_not_import_ui():
    assert {(f, m) for f, m in _imports("ingest") if m == "ui"} == set()


def test_llama_index_global_settings_are_never_used():
    """Every llama-index object gets its LLM, tokenizer and splitter passed in; the global
    `Settings` would make them depend on whatever else configured it in the process."""
    found = []
    for package in ("rag", "ingest", "ui", "bench"):
        for path in (REPO / package).rglob("*.py"):
            source = path.read_text(encoding="utf-8")
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "llama_index"
                ):
                    names = {a.name for a in node.names}
                    if "Settings" in names or node.module == "llama_index.core.settings":
                        found.append(f"{path.relative_to(REPO)}:{node.lineno}")
                elif isinstance(node, ast.Import) and any(
                    a.name == "llama_index.core.settings" for a in node.names
                ):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
            if "llama_index.core.Settings" in source:
                found.append(str(path.relative_to(REPO)))
    assert found == []


def test_importing_citadel_has_no_side_effects():
    """No environment change, no model load, no heavy library imported at import time."""
    code = (
        "import os, sys, json; before = dict(os.environ)\n"
        "import rag.settings, rag.wiring, rag.stores.edge, ingest.pipeline, ui.cli\n"
        "import ui.server, ui.web, ui.api, ui.openai_api, ui.login, ui.workspace\n"
        "changed = sorted(k for k in set(os.environ) | set(before) "
        "if os.environ.get(k) != before.get(k))\n"
        "print(json.dumps({'changed': changed, 'heavy': sorted(m for m in "
        "('torch', 'sentence_transformers', 'unstructured') if m in sys.modules)}))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '{"changed": [], "heavy": []}'
