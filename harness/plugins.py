"""The plugin manager: built-ins, installed entry points (group `harness`) and `--plugins-dir` files.

Plugins are arbitrary code. `HARNESS_LOAD_PLUGINS=a,b` loads only the named installed plugins (an
allowlist of entry-point names; empty string = none; a name that is not installed is an error listing
what is). The allowlist covers installed plugins only: files in `--plugins-dir DIR` / `HARNESS_PLUGINS_DIR`
are loaded because the user named that folder, allowlist or not. Built-ins always load.
`HARNESS_TRACE_PLUGINS=1` prints every hook call.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import pkgutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from harness import env, hookspecs
from harness.errors import PluginError, UserError, unknown_name_error
from harness.strategy import contract_problems

# the repository's plugins/ folder, installed as harness.builtins (one top-level import name in the wheel)
BUILTIN_PACKAGES = tuple(f"harness.builtins.{kind}" for kind in ("strategies", "models", "datasets", "commands", "executors",
                                                                 "trackers", "studies"))
ENTRY_POINT_GROUP = "harness"


def builtin_plugin_modules() -> list[str]:
    """Every public module under the built-in plugin packages: adding a file adds a plugin."""
    names = []
    for package_name in BUILTIN_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                names.append(f"{package_name}.{info.name}")
    return sorted(names)


__all__ = ["pm", "load_plugins", "plugin_info", "Registry", "strategies", "models", "datasets", "executors", "studies"]

pm = pluggy.PluginManager("harness")
pm.add_hookspecs(hookspecs)
_loaded = False
_origins: dict[str, str] = {}  # plugin name -> "builtin" | "entry point <dist>" | "file <path>"


def load_plugins(plugins_dir: str | None = None) -> pluggy.PluginManager:
    """Load built-ins and installed plugins once; load `plugins_dir` files whenever it is given."""
    global _loaded
    if not _loaded:
        _loaded = True
        for module_name in builtin_plugin_modules():
            _register(importlib.import_module(module_name), module_name, "builtin")
        _load_entry_points()
    if plugins_dir:
        load_plugins_dir(plugins_dir)
    if env.trace_plugins():
        pm.trace.root.setwriter(lambda text: print(text, end="", file=sys.stderr))
        pm.enable_tracing()
    return pm


def _register(plugin: Any, name: str, origin: str) -> None:
    if pm.has_plugin(name) or pm.is_registered(plugin):
        return
    try:
        pm.register(plugin, name=name)
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        pm.unregister(plugin)
        raise PluginError(f"plugin '{name}' ({origin}) implements an unknown or malformed hook: {exc}") from None
    _origins[name] = origin


def _load_entry_points() -> None:
    allowed = env.plugin_allowlist()
    installed = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    missing = sorted((allowed or set()) - {ep.name for ep in installed})
    if missing:
        names = ", ".join(sorted({ep.name for ep in installed})) or "none"
        raise UserError(f"HARNESS_LOAD_PLUGINS names {', '.join(repr(m) for m in missing)}, not installed; "
                        f"installed plugins: {names} (built-ins always load)")
    for ep in installed:
        if allowed is not None and ep.name not in allowed:
            continue
        try:
            module = ep.load()
        except Exception as exc:  # a broken plugin must not hide behind a traceback
            raise PluginError(f"plugin '{ep.name}' (entry point {ep.value}) failed to load: {exc!r}") from None
        dist = ep.dist.name if ep.dist else "?"
        _register(module, ep.name, f"entry point of {dist}")


def load_plugins_dir(directory: str) -> None:
    root = Path(directory)
    if not root.is_dir():
        raise UserError(f"--plugins-dir {directory} is not a directory")
    for path in sorted(root.glob("*.py")):
        name = f"harness_local_{path.stem}"
        if pm.has_plugin(name):
            continue
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise PluginError(f"plugin file {path} failed to load: {exc!r}") from None
        _register(module, name, f"file {path}")


def plugin_info() -> list[dict]:
    """Each loaded plugin: its name, where it came from, and the hooks it implements."""
    out = []
    for name, plugin in pm.list_name_plugin():
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        out.append({"name": name, "origin": _origins.get(name, "registered in code"), "hooks": hooks})
    return sorted(out, key=lambda p: (p["origin"] != "builtin", p["name"]))


# -- registries ----------------------------------------------------------------------------------
@dataclass
class Registry:
    """What the `register_*` hooks registered, keyed by name; duplicates are an error naming both."""

    kind: str
    items: dict[str, Any] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)  # name -> what it lacks of its contract

    def add(self, name: str, item: Any, owner: str) -> None:
        if name in self.items:
            raise PluginError(f"{self.kind} '{name}' is registered twice: by {self.owners[name]} and by {owner}")
        self.items[name] = item
        self.owners[name] = owner

    def get(self, name: str) -> Any:
        """The item named `name`; a name like `hf:org/model` goes to the family registered as `hf:`, and
        `synthbio:people=2000` to the item `synthbio` when it takes options (has a `resolve`)."""
        if name in self.items:
            return self.items[name]
        prefix, sep, rest = name.partition(":")
        family = (self.items.get(prefix + ":") or self.items.get(prefix)) if sep else None
        if family is not None and rest and getattr(family, "resolve", None):
            return family.resolve(rest)
        raise unknown_name_error(self.kind, name, list(self.items))


def _collect(hook_name: str, kinds: dict[str, Registry], key) -> None:
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():
        def register(item, _owner=impl.plugin_name):
            kind, name = key(item)
            kinds[kind].add(name, item, _owner)

        try:
            impl.function(register)
        except UserError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin '{impl.plugin_name}' raised in {hook_name}: {exc!r}") from None


def strategies() -> Registry:
    """Every registered strategy class; one that breaks the contract (harness/strategy.py) is kept with what
    it lacks in `problems` (`harness plugins` lists it; running it is a clear error)."""
    reg = Registry("strategy")
    _collect("register_strategies", {"strategy": reg}, lambda cls: ("strategy", _strategy_name(cls)))
    for name, cls in reg.items.items():
        if problems := contract_problems(cls):
            reg.problems[name] = problems
    return reg


def _strategy_name(cls: Any) -> str:
    """Its `name`, or (when it has none) its class path, so that it can still be listed with its problems."""
    name = getattr(cls, "name", None)
    return name if isinstance(name, str) else f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls)}"


def models() -> dict[str, Registry]:
    regs = {"embedder": Registry("embedder"), "generator": Registry("generator")}
    _collect("register_models", regs, lambda spec: (spec.kind, spec.name))
    return regs


def datasets() -> Registry:
    reg = Registry("dataset")
    _collect("register_datasets", {"dataset": reg}, lambda spec: ("dataset", spec.name))
    return reg


def executors() -> Registry:
    """Every grid executor class a plugin registered (`register_executors`); harness/grid/executors.py adds
    the core's `local`."""
    reg = Registry("executor")
    _collect("register_executors", {"executor": reg}, lambda cls: ("executor", cls.name))
    return reg


def studies() -> Registry:
    """Every study a plugin registered (`register_studies`): name -> harness.study.Study."""
    reg = Registry("study")
    _collect("register_studies", {"study": reg}, lambda study: ("study", study.name))
    return reg
