"""Grid executors: where a grid's cells run. `local` (in this process, one after the other) is the core's;
`ray` and `slurm` are built-in plugins (plugins/executors/) that import their engine only when used, and a
plugin adds its own through the `register_executors` hook:

    @hookimpl
    def register_executors(register):
        register(MyExecutor)   # a class with `name`, `run(folders, options)` and optionally `options`

`run(folders, options)` runs `run_cell_folder(folder, options.plugins_dir)` for every run folder (on any
machine that sees the folder) and yields `(folder, error)` as each finishes: error None when the folder was
finalised (finished or failed, the folder says which), else why the worker never finalised it (it died more
than `options.max_retries` times). Workers write only their run folders; the driver alone imports them
into the store. An executor's own flags (`--ray-address`, `--slurm-partition`, ...) are its class's
`options`, a list of click options that `harness grid` adds to its own (as datasette's publishers do); their
values reach `run` as `options.value(self, name)`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import plugins
from harness.errors import UserError
from harness.runner.lifecycle import run_in_folder
from harness.store.folder import RunFolder


@dataclass
class ExecutorOptions:
    cell_cpus: float = 1.0  # CPUs each cell's task asks for (Ray resources, Slurm cpus per task)
    cell_gpus: float = 0.0  # GPUs each cell's task asks for
    max_retries: int = 2  # a worker that dies is retried this many times, then the cell is stored failed
    logs_dir: str = "harness-runs/executor-logs"
    plugins_dir: str | None = None  # loaded by every worker, as by the driver
    extra: dict[str, Any] = field(default_factory=dict)  # the executors' own options, by name (`value`)

    def value(self, executor: Any, name: str) -> Any:
        """The executor's own option `name`: as given, else the default of its click option."""
        if name in self.extra:
            return self.extra[name]
        return next(option.default for option in getattr(executor, "options", []) if option.name == name)


def run_cell_folder(folder: str, plugins_dir: str | None = None) -> str:
    """What a worker runs for one cell: the config in `folder`, written there and finalised. Returns the
    status; a failing strategy is finalised `failed` in the folder (the driver imports it with its error)."""
    plugins.load_plugins(plugins_dir)
    run = RunFolder(Path(folder))
    try:
        return run_in_folder(run)
    except Exception:
        status = run.status()
        if status is None:
            raise
        return status["status"]


class LocalExecutor:
    """Every cell in this process, one after the other."""

    name = "local"

    def run(self, folders: list[str], options: ExecutorOptions) -> Iterator[tuple[str, str | None]]:
        for folder in folders:
            run_cell_folder(folder, options.plugins_dir)
            yield folder, None


def import_engine(module: str, extra: str):
    """The engine's module, or one clear line naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"this executor needs the '{module}' package: pip install 'rag-harness[{extra}]'") from None


def executors() -> plugins.Registry:
    """name -> executor class: `local` and every plugin's `register_executors`."""
    plugins.load_plugins()
    registry = plugins.executors()
    registry.add("local", LocalExecutor, "harness")
    return registry


def get_executor(name: str):
    return executors().get(name)()
