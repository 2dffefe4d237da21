"""Import paths: every name of the flat layout (0.1) still imports from its old path for one more release,
with a DeprecationWarning naming the new one; the light packages stay light."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

OLD_NAMES = [tuple(line.split()) for line in (Path(__file__).parent / "old_import_paths.txt").read_text().splitlines()]


@pytest.mark.parametrize("module", sorted({module for module, _ in OLD_NAMES}))
def test_every_old_name_resolves(module):
    names = [name for old_module, name in OLD_NAMES if old_module == module]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = importlib.import_module(module)
        moved = [name for name in names if name not in vars(old) and name not in getattr(old, "__all__", ())]
        values = {name: getattr(old, name) for name in names}
    assert all(value is not None for value in values.values())
    said = {str(w.message).split()[0] for w in caught if issubclass(w.category, DeprecationWarning)}
    assert {f"{module}.{name}" for name in moved} <= said  # a name that left this path says where it went


def test_an_old_path_gives_the_object_of_its_new_home():
    from harness.lora import prepare_generator_for_lora
    from harness.models.lora import prepare_generator_for_lora as new
    from harness.runfolder import RunFolder
    from harness.runner import runs_dir
    from harness.store.folder import RunFolder as new_folder
    from harness.store.layout import runs_dir as new_runs_dir
    from harness.training import prepare_generator_for_lora as public

    assert prepare_generator_for_lora is new is public
    assert RunFolder is new_folder and runs_dir is new_runs_dir


def test_renamed_names_keep_their_old_meaning():
    from harness.artifacts import stored_config
    from harness.config import RunConfig
    from harness.executors import run_cell
    from harness.grid import run_cell as grid_run_cell
    from harness.grid.executors import run_cell_folder
    from harness.grid.run import run_cell_in_process

    assert stored_config({"strategy": "ft_gen", "unknown_key": 1}) == RunConfig(strategy="ft_gen")
    assert run_cell is run_cell_folder and grid_run_cell is run_cell_in_process


def test_an_unknown_name_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        importlib.import_module("harness.lora").nothing_here
    with pytest.raises(AttributeError):
        importlib.import_module("harness.store").nothing_here


@pytest.mark.parametrize("module", ["harness", "harness.store", "harness.results", "harness.cli", "harness.dashboard.data",
                                    "harness.data", "harness.grid", "harness.runtime"])
def test_light_modules_do_not_import_torch(module):
    """`harness --help`, `harness leaderboard` and the dashboard start without torch: packages load what a name
    needs when it is first used (harness/_exports.py)."""
    code = f"import sys, {module}; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_the_repository_itself_uses_no_old_path():
    """The harness, its plugins, the dashboard, the benchmarks and the other tests import the new paths: a user
    never sees our own DeprecationWarning."""
    import ast

    root = Path(__file__).resolve().parents[2]
    files = [p for folder in ("harness", "plugins", "dashboard", "bench", "tests", "examples")
             for p in (root / folder).rglob("*.py") if p.name != "test_import_paths.py" and ".venv" not in p.parts]
    old = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "harness"):
                continue
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                module = importlib.import_module(node.module)
                for alias in node.names:
                    getattr(module, alias.name, None)
            if any(" is now harness." in str(w.message) or " moved to harness." in str(w.message) for w in caught):
                old.append(f"{path.relative_to(root)}:{node.lineno} from {node.module}")
    assert old == []
