"""The core's folder shows its architecture: dependencies point down, in one checked order, with no cycle.

Every import of every module under harness/ counts, deferred (in-function) imports and the lazy re-exports
of a package's `__init__` included; only `if TYPE_CHECKING:` imports (annotations) are left out. A module
belongs to its unit: a flat top-level module (`harness.config`) or a package (`harness.store`). A unit may
import only units of a lower layer (docs/architecture.md#1-layers-and-packages draws the same diagram).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HARNESS = Path(__file__).resolve().parents[2] / "harness"
LAYERS = [  # lowest first
    {"errors", "metrics", "types", "hookspecs", "version", "_exports"},
    {"env", "optional"},
    {"config"},
    {"runtime", "store", "strategy"},
    {"data", "plugins", "retrieval"},
    {"config_file", "models"},
    {"pipeline"},
    {"evaluation", "training"},
    {"runner"},
    {"grid", "results"},
    {"study"},
    {"cli"},
]
LAYER = {unit: n for n, units in enumerate(LAYERS) for unit in units}
FACADE_MAX_LAYER = 3  # harness/__init__.py re-exports the contracts (types, config, strategy, ...), nothing above


def core_modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the core (harness/builtins and harness/dashboard are links to
    the plugins and the dashboard, which sit above the core)."""
    found = {}
    for path in HARNESS.rglob("*.py"):
        if {"builtins", "dashboard"} & set(path.relative_to(HARNESS).parts):
            continue
        parts = ("harness", *path.relative_to(HARNESS).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = core_modules()


def imports_of(name: str, path: Path) -> set[str]:
    """The core modules `name` imports (the longest known prefix of each imported path)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: list[str] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                targets.extend(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1] + [base]).strip(".")
                targets.extend(f"{base}.{alias.name}" for alias in child.names)
            elif isinstance(child, ast.Call) and getattr(child.func, "id", None) == "exports":
                for key in child.args[1].keys:  # exports(__name__, {module: names}): lazy re-exports
                    targets.append(key.value if key.value.startswith("harness.") else f"{name}.{key.value}")
            visit(child)

    visit(tree)
    found = set()
    for target in targets:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.add(target)
    return found


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def unit(module: str) -> str:
    parts = module.split(".")
    return "harness" if len(parts) == 1 else parts[1]


def test_every_core_module_has_a_layer():
    units = {unit(m) for m in MODULES} - {"harness", "__main__"}
    assert units - set(LAYER) == set(), "a new module or package: give it a layer here and in docs/architecture.md"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    if module == "harness.__main__":
        assert GRAPH[module] <= {"harness.cli"}
        return
    limit = FACADE_MAX_LAYER + 1 if module == "harness" else LAYER[unit(module)]
    upward = sorted(f"{target} (layer {LAYER.get(unit(target), '?')})" for target in GRAPH[module]
                    if unit(target) != unit(module) and not LAYER.get(unit(target), 99) < limit)
    assert not upward, f"{module} (layer {limit}) imports upward or sideways: {', '.join(upward)}"


def test_nothing_in_the_core_imports_the_facade():
    importers = sorted(m for m, targets in GRAPH.items() if "harness" in targets)
    assert importers == [], "import the module (harness.config, harness.errors, ...), not the package's facade"


def test_no_import_cycle_inside_a_package():
    cycles = []
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def walk(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(GRAPH[module]):
            if state.get(target) == 1:
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                walk(target, path + [target])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            walk(module, [module])
    assert cycles == []


def test_the_check_sees_deferred_and_lazy_imports_but_not_annotations(tmp_path):
    """A deferred import hides no dependency from this test; an annotation-only import is no dependency."""
    probe = tmp_path / "probe.py"
    probe.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from harness.grid import plan\n"
                     "def f():\n    from harness.cli.common import console\n")
    assert imports_of("harness.config", probe) == {"harness.cli.common"}
    assert "harness.runner.lifecycle" in GRAPH["harness.grid.executors"]
    assert "harness.models.lora" in GRAPH["harness.training"]  # the lazy re-exports of training/__init__.py
