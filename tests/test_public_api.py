"""One public API for plugin authors: the built-in plugins import only what a third-party plugin can.

A plugin imports from `harness` (the contracts) and from a package's `__init__`, the names in its `__all__`:
the modules below, listed by plugin kind in docs/writing-a-strategy.md. Never a module inside a package,
never a private name. Other built-in plugins (`harness.builtins.*`) may be imported like any installed one.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ("harness", "harness.plugins", "harness.training", "harness.models", "harness.data", "harness.retrieval",
          "harness.runtime", "harness.runner", "harness.store", "harness.results", "harness.grid", "harness.study",
          "harness.cli.common")
PLUGIN_FILES = sorted((ROOT / "plugins").rglob("*.py")) + sorted((ROOT / "examples").rglob("*.py"))


def harness_imports(path: Path) -> list[tuple[int, str, str]]:
    """(line, module, name) of every import of the harness in a file, deferred ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "harness":
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, "") for alias in node.names if alias.name.split(".")[0] == "harness"]
    return found


def problem(module: str, name: str) -> str | None:
    if module.startswith("harness.builtins.") or (module, name) in {("harness", "dashboard"), ("harness", "plugins")}:
        return None  # another built-in plugin, the dashboard's package, the registries
    if module not in PUBLIC:
        return f"{module} is not a public module (use one of {', '.join(PUBLIC)})"
    if name.startswith("_"):
        return f"{module}.{name} is private"
    if name not in importlib.import_module(module).__all__:
        return f"{module}.{name} is not in {module}.__all__"
    return None


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_only_the_public_api(path):
    problems = [f"line {line}: {why}" for line, module, name in harness_imports(path)
                if (why := problem(module, name)) is not None]
    assert problems == []


def test_the_check_refuses_what_it_should():
    assert problem("harness.training.loop", "freeze") is not None  # a module inside a package
    assert problem("harness.cli.common", "_LAUNCH_ARGV") is not None  # private
    assert problem("harness.store", "Store") is None and problem("harness", "hookimpl") is None


@pytest.mark.parametrize("module", PUBLIC)
def test_every_public_name_imports(module):
    loaded = importlib.import_module(module)
    missing = [name for name in loaded.__all__ if getattr(loaded, name, None) is None]
    assert missing == []


def test_the_guide_lists_every_public_module():
    guide = (ROOT / "docs" / "writing-a-strategy.md").read_text(encoding="utf-8")
    assert [m for m in PUBLIC if f"`{m}`" not in guide] == []
