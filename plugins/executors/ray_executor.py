"""`harness grid --executor ray`: every cell a Ray task with its resources (--cell-cpus, --cell-gpus), on a
running cluster (--ray-address) or a local one; a worker that dies is retried by Ray (max_retries)."""

from __future__ import annotations

import os
from collections.abc import Iterator

from harness.executors import ExecutorOptions, import_engine, run_cell
from harness.hookspecs import hookimpl

FORWARDED_ENV = ("PYTHONPATH", "HARNESS_CACHE", "HARNESS_THREADS", "HARNESS_HEARTBEAT_SECONDS", "HF_HUB_OFFLINE",
                 "TRANSFORMERS_OFFLINE", "HARNESS_LOAD_PLUGINS", "TOKENIZERS_PARALLELISM")


class RayExecutor:
    name = "ray"

    def run(self, folders: list[str], options: ExecutorOptions) -> Iterator[tuple[str, str | None]]:
        ray = import_engine("ray", "ray")
        if not ray.is_initialized():
            env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
            ray.init(address=options.ray_address, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": env}, **({} if options.ray_address else {"num_cpus": os.cpu_count()}))
        task = ray.remote(num_cpus=options.cell_cpus, num_gpus=options.cell_gpus,
                          max_retries=options.max_retries)(run_cell)
        pending = {task.remote(folder, options.plugins_dir): folder for folder in folders}
        while pending:
            [done], _ = ray.wait(list(pending), num_returns=1)
            folder = pending.pop(done)
            try:
                ray.get(done)
                yield folder, None
            except ray.exceptions.RayError as exc:
                yield folder, f"the worker died {options.max_retries + 1} times: {type(exc).__name__}"


@hookimpl
def register_executors(register):
    register(RayExecutor)
