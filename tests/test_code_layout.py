"""The shape of the code, read from the code: the layers of docs/code.md import downwards only, no module imports
one that imports it back, and no module, class or function grows past what reads in one sitting unless its module
says why it reads better whole."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "cfld"
MAX_MODULE_LINES = 450
MAX_CLASS_LINES = 200
MAX_FUNCTION_LINES = 80
#: The floors of the package, top to bottom (docs/code.md): a module imports its own floor or those below. The
#: package itself (``cfld``: the version, the errors, lazy re-exports) is below them all.
FLOORS = (
    ("cfld.cli", "cfld.__main__", "cfld.commands"),
    ("cfld.training", "cfld.app", "cfld.pipeline", "cfld.loaders", "cfld.editing", "cfld.animation",
     "cfld.split_sampling"),
    ("cfld.data", "cfld.framing", "cfld.metrics", "cfld.checkpoint", "cfld.model_folders", "cfld.model_card",
     "cfld.image_processor"),
    ("cfld.pose", "cfld.models", "cfld.schedulers", "cfld.guidance"),
    ("cfld.errors", "cfld.io", "cfld.images", "cfld.validation", "cfld.state_dict", "cfld.presets", "cfld.devices",
     "cfld.left_out", "cfld.model_names", "cfld.workers", "cfld.launch"),
)
#: A module docstring holding this phrase explains why its long pieces read better whole.
READS_WHOLE = "reads better whole"


def modules() -> dict[str, Path]:
    """``cfld.x.y`` -> its file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The cfld modules ``name`` imports, at its top or inside functions (a lazy import that closes a cycle is still
    a cycle); ``from package import module`` counts as importing that module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in known else target)
    return {target for target in found if target in known and target != name}


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None (depth-first search, colouring modules being visited)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = "open"
        stack.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[name] = "done"
        stack.pop()
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def test_no_module_imports_a_module_that_imports_it_back():
    graph = import_graph()
    assert len(graph) > 50 and "cfld.io.atomic" in graph["cfld.data.photos"] | graph["cfld.io"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def floor(name: str) -> int | None:
    if name == "cfld":
        return len(FLOORS)
    for number, members in enumerate(FLOORS):
        if any(name == member or name.startswith(member + ".") for member in members):
            return number
    return None


def test_every_module_imports_downwards():
    graph = import_graph()
    assert [name for name in graph if floor(name) is None] == [], "modules on no floor of FLOORS (docs/code.md)"
    upwards = [f"{name} -> {target}" for name, targets in graph.items() for target in sorted(targets)
               if name != "cfld" and floor(target) < floor(name)]
    assert upwards == [], "imports of a higher floor (docs/code.md)"


def test_the_cycle_finder_names_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def long_pieces() -> list[str]:
    """Modules, classes and functions over the limits, in modules whose docstring does not say they read better
    whole."""
    found = []
    for name, path in modules().items():
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        if READS_WHOLE in (ast.get_docstring(tree) or "").replace("\n", " "):
            continue
        if (lines := len(text.splitlines())) > MAX_MODULE_LINES:
            found.append(f"{name}: {lines} lines")
        for node in ast.walk(tree):
            limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                if (lines := node.end_lineno - node.lineno + 1) > limit:  # from ``def`` / ``class``, docstring included
                    found.append(f"{name}.{node.name}: {lines} lines")
    return found


def test_modules_classes_and_functions_read_in_one_sitting():
    assert long_pieces() == [], (f"over {MAX_MODULE_LINES} lines a module, {MAX_CLASS_LINES} a class or "
                                 f"{MAX_FUNCTION_LINES} a function; split it, or say in the module's docstring why "
                                 f"it {READS_WHOLE}")


@pytest.mark.parametrize("name", ["cfld.cli", "cfld.commands.pose", "cfld.commands.prepare", "cfld.model_names",
                                  "cfld.app"])
def test_light_modules_stay_light(name):
    """``cfld --help``, the pose and prepare commands and the app's page start without torch (seconds to import)."""
    import subprocess
    import sys

    code = f"import sys, {name}; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
