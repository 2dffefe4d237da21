"""Meta-tests, as datasette keeps them: every hook is documented with its exact signature and has a test."""

import ast
import inspect
from pathlib import Path

import pytest

from harness import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(name for name, f in vars(hookspecs).items() if callable(f) and hasattr(f, "harness_spec"))


def signature(name: str) -> str:
    return f"{name}({', '.join(inspect.signature(getattr(hookspecs, name)).parameters)})"


def test_hooks_are_found():
    assert {"register_strategies", "register_models", "register_datasets", "register_commands",
            "run_finished"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_exact_signature(hook):
    docs = (ROOT / "README.md").read_text() + "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    assert f"`{signature(hook)}`" in docs, f"document `{signature(hook)}` in README.md (Plugins) or docs/"


def test_every_hook_has_a_test_hook_test():
    """Every hook has a `test_hook_<name>` test somewhere under tests/ (a test that exercises it)."""
    names = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        tree = ast.parse(path.read_text())
        names |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    missing = [hook for hook in HOOKS if f"test_hook_{hook}" not in names]
    assert not missing, f"write a test named test_hook_<name> for: {', '.join(missing)}"
