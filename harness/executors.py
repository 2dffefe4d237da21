"""Grid executors: where a grid's cells run. `local` (in this process, one after the other) is the core's;
`ray` and `slurm` are built-in plugins (plugins/executors/) that import their engine only when used, and a
plugin adds its own through the `register_executors` hook:

    @hookimpl
    def register_executors(register):
        register(MyExecutor)   # a class with `name` and `run(folders, options)`

`run(folders, options)` runs `run_cell(folder, options.plugins_dir)` for every run folder (on any machine
that sees the folder) and yields `(folder, error)` as each finishes: error None when the folder was
finalised (finished or failed, the folder says which), else why the worker never finalised it (it died more
than `options.max_retries` times). Workers write only their run folders; the driver alone imports them
into the store.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError


@dataclass
class ExecutorOptions:
    cell_cpus: float = 1.0  # CPUs each cell's task asks for (Ray resources, Slurm cpus per task)
    cell_gpus: float = 0.0  # GPUs each cell's task asks for
    max_retries: int = 2  # a worker that dies is retried this many times, then the cell is stored failed
    ray_address: str | None = None  # a running Ray cluster ("auto", "ray://host:10001"); None: start a local one
    slurm_partition: str | None = None
    slurm_time_min: int = 240
    slurm_array_parallelism: int = 16  # how many cells of the job array run at once
    slurm_cluster: str | None = None  # submitit's cluster: None (slurm when sbatch exists), "slurm", "local"
    logs_dir: str = "harness-runs/executor-logs"
    plugins_dir: str | None = None  # loaded by every worker, as by the driver


def run_cell(folder: str, plugins_dir: str | None = None) -> str:
    """What a worker runs for one cell: the config in `folder`, written there and finalised. Returns the
    status; a failing strategy is finalised `failed` in the folder (the driver imports it with its error)."""
    from harness import plugins
    from harness.runfolder import RunFolder
    from harness.runner import run_in_folder

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
            run_cell(folder, options.plugins_dir)
            yield folder, None


def import_engine(module: str, extra: str):
    """The engine's module, or one clear line naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"this executor needs the '{module}' package: pip install 'rag-harness[{extra}]'") from None


def executors() -> dict[str, type]:
    """name -> executor class: `local` and every plugin's `register_executors`."""
    from harness import plugins

    found: dict[str, type] = {"local": LocalExecutor}

    def register(cls) -> None:
        if cls.name in found:
            raise UserError(f"executor '{cls.name}' is registered twice")
        found[cls.name] = cls

    plugins.load_plugins()
    plugins.pm.hook.register_executors(register=register)
    return found


def get_executor(name: str):
    known = executors()
    if name not in known:
        raise UserError(f"unknown executor '{name}'; executors: {', '.join(sorted(known))}")
    return known[name]()
