"""Import paths: how a package exports its public names, and where the names of the flat layout went.

A package's `__init__` lists its public names and the module of each (`exports`); they load on first use, so
`import harness.store` stays as light as the module it needs (the dashboard and `harness leaderboard`
never import torch). The flat layout of 0.1 (`harness.lora`, `harness.runfolder`, `harness.runner.runs_dir`,
...) keeps importing for one release: every old name resolves to its new home with a DeprecationWarning
that names it (tests/harness/test_import_paths.py checks every one).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

# old flat module -> the modules its names now live in (searched in order)
OLD_HOMES: dict[str, tuple[str, ...]] = {
    "harness.artifacts": ("harness.runner.artifacts", "harness.training.saving"),
    "harness.cache_entries": ("harness.runtime.cache",),
    "harness.cli": ("harness.cli.common", "harness.cli.exit", "harness.cli.run", "harness.cli.grid",
                    "harness.cli.catalog", "harness.cli.leaderboard", "harness.cli.runs", "harness.cli.migrate"),
    "harness.context": ("harness.training.context", "harness.strategy"),
    "harness.corpus": ("harness.data.corpus",),
    "harness.distributed": ("harness.runtime.distributed",),
    "harness.executors": ("harness.grid.executors",),
    "harness.export": ("harness.results.export",),
    "harness.flops": ("harness.training.flops",),
    "harness.generation": ("harness.models.generation",),
    "harness.gpu": ("harness.runtime.gpu",),
    "harness.gpu_index": ("harness.retrieval.gpu_search",),
    "harness.grid": ("harness.grid.plan", "harness.grid.run", "harness.config"),
    "harness.leaderboard": ("harness.results.leaderboard",),
    "harness.likelihoods": ("harness.training.likelihoods",),
    "harness.lora": ("harness.models.lora",),
    "harness.migrations": ("harness.store.migrations",),
    "harness.model_card": ("harness.runner.model_card",),
    "harness.model_loading": ("harness.models.loading",),
    "harness.progress": ("harness.runtime.progress",),
    "harness.refresh": ("harness.retrieval.refresh",),
    "harness.rescore": ("harness.results.rescore",),
    "harness.retrieval": ("harness.retrieval.index",),
    "harness.rows": ("harness.data.rows",),
    "harness.runfolder": ("harness.store.folder",),
    "harness.runner": ("harness.runner.assemble", "harness.runner.lifecycle", "harness.store.layout"),
    "harness.silver": ("harness.training.silver",),
    "harness.splits": ("harness.data.splits",),
    "harness.store": ("harness.store.db",),
    "harness.table_formats": ("harness.results.table_formats",),
    "harness.timing": ("harness.runtime.timing",),
    "harness.tracking": ("harness.results.tracking",),
    "harness.training": ("harness.training.loop",),
}
# (old module, old name) -> (new module, new name): the few names that changed as well as moved
RENAMED: dict[tuple[str, str], tuple[str, str]] = {
    ("harness.artifacts", "stored_config"): ("harness.config", "RunConfig.from_stored"),
    ("harness.cli", "_LAUNCH_ARGV"): ("harness.cli.common", "_LAUNCH_ARGV"),
    ("harness.cli", "_store"): ("harness.cli.common", "open_store"),
    ("harness.executors", "run_cell"): ("harness.grid.executors", "run_cell_folder"),
    ("harness.grid", "run_cell"): ("harness.grid.run", "run_cell_in_process"),
}


def exports(package: str, names_by_module: dict[str, tuple[str, ...]]):
    """`(__all__, __getattr__)` for a package's `__init__`: each public name loads from its module on first use
    (a module of the package, or another `harness.` module; a name that is its module's own name exports the
    module). A name the package had in the flat layout resolves to its new home, with a DeprecationWarning."""
    home = {name: module for module, names in names_by_module.items() for name in names}

    def __getattr__(name: str):
        if name in home:
            module = importlib.import_module(home[name] if home[name].startswith("harness.") else
                                             f"{package}.{home[name]}")
            value = module if module.__name__.rpartition(".")[2] == name else getattr(module, name)
            setattr(sys.modules[package], name, value)
            return value
        return moved_name(package, name)

    return list(home), __getattr__


def moved_name(old_module: str, name: str):
    """`old_module.name` of the flat layout, from where it lives now, with a DeprecationWarning naming that."""
    if (old_module, name) in RENAMED:
        module, attr = RENAMED[old_module, name]
        value = importlib.import_module(module)
        for part in attr.split("."):
            value = getattr(value, part)
        warnings.warn(f"{old_module}.{name} is now {module}.{attr}", DeprecationWarning, stacklevel=3)
        return value
    for module in OLD_HOMES.get(old_module, ()):
        found = importlib.import_module(module)
        if hasattr(found, name):
            warnings.warn(f"{old_module}.{name} is now {module}.{name}", DeprecationWarning, stacklevel=3)
            return getattr(found, name)
    raise AttributeError(f"module {old_module!r} has no attribute {name!r}")


class OldModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old flat module (`import harness.lora`) as a stand-in whose names come from their new homes.
    It is last on sys.meta_path, so it only answers for modules that no longer exist."""

    def find_spec(self, fullname, path, target=None):
        if fullname in OLD_HOMES:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name, f"Old import path of {spec.name}: see {OLD_HOMES[spec.name][0]}.")
        module.__getattr__ = lambda name: moved_name(spec.name, name)
        return module

    def exec_module(self, module) -> None:
        warnings.warn(f"{module.__name__} moved to {OLD_HOMES[module.__name__][0]}; the old path works for one more release",
                      DeprecationWarning, stacklevel=2)


def install_old_module_finder() -> None:
    if not any(isinstance(finder, OldModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(OldModuleFinder())
