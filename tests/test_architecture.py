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


PACKAGES = ("rag", "ingest", "ui")
# The rooms of `ui`, each importing only those after it: cli -> http -> web -> service -> metadata.
ROOMS = ("cli", "http", "web", "service", "metadata")
ENGINES = {"qdrant_client", "qdrant_edge", "ollama", "openai", "xllamacpp", "sentence_transformers"}
FRAMEWORKS = {"fastapi", "starlette", "gradio", "typer", "rich", "uvicorn"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _project_modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(path: Path) -> set[str]:
    """Every module a file imports at run time, wherever the import statement is (a
    function-local import still makes a dependency); imports for type checking only are
    left out. `from a import b` names `a.b`, which is `a`'s module `b` if there is one."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_type_checking(node)
        for child in node.body
        for n in ast.walk(child)
    }
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def _project_graph() -> dict[str, set[str]]:
    """module -> the project's modules it imports."""
    modules = _project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = {n for n in _imported_names(path) if n in modules and n != name}
    return graph


def test_there_are_no_import_cycles_between_the_projects_modules():
    graph = _project_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_rooms_of_ui_depend_one_way():
    """cli -> http -> web -> service -> metadata: a room imports only the rooms after it."""
    wrong = []
    for module, targets in _project_graph().items():
        parts = module.split(".")
        if parts[0] != "ui" or len(parts) < 3 or parts[1] not in ROOMS:
            continue
        room = ROOMS.index(parts[1])
        for target in targets:
            other = target.split(".")
            in_ui = other[0] == "ui" and len(other) > 1 and other[1] in ROOMS
            if in_ui and ROOMS.index(other[1]) < room:
                wrong.append((module, target))
    assert wrong == []
    rooms = {p.name for p in (REPO / "ui").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert rooms == set(ROOMS)


def test_the_service_imports_no_web_cli_or_terminal_framework():
    found = {
        (name, imported)
        for name, path in _project_modules().items()
        if name.startswith("ui.service")
        for imported in _imported_names(path)
        if imported.split(".")[0] in FRAMEWORKS
    }
    assert found == set()


def test_only_the_adapters_import_an_engine():
    found = {
        (name, imported)
        for name, path in _project_modules().items()
        if not name.startswith("rag.adapters")
        for imported in _imported_names(path)
        if imported.split(".")[0] in ENGINES
    }
    assert found == set()


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
        "import rag.settings, rag.wiring, rag.adapters.qdrant.edge, ingest.pipeline, ui.cli.app\n"
        "import ui.http.app, ui.web.app, ui.http.rest, ui.http.openai, ui.http.login\n"
        "import ui.service.workspace\n"
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
