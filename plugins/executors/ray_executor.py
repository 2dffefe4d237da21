"""`harness grid --executor ray`: every cell a Ray task with its resources (--cell-cpus, --cell-gpus), on a
running cluster (--ray-address) or a local one; a worker that dies is retried by Ray (max_retries)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import click

from harness import UserError, hookimpl
from harness.grid import ExecutorOptions, import_engine, run_cell_folder

FORWARDED_ENV = ("PYTHONPATH", "HARNESS_CACHE", "HARNESS_THREADS", "HARNESS_HEARTBEAT_SECONDS", "HF_HUB_OFFLINE",
                 "TRANSFORMERS_OFFLINE", "HARNESS_LOAD_PLUGINS", "TOKENIZERS_PARALLELISM")


class RayExecutor:
    name = "ray"
    options = [click.Option(["--ray-address"], default=None,
                            help="a running Ray cluster (e.g. auto); default: start a local one")]

    def run(self, folders: list[str], options: ExecutorOptions) -> Iterator[tuple[str, str | None]]:
        ray = import_engine("ray", "ray")
        if not ray.is_initialized():
            address = options.value(self, "ray_address")
            check_reachable(address)
            env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": env}, **({} if address else {"num_cpus": os.cpu_count()}))
        task = ray.remote(num_cpus=options.cell_cpus, num_gpus=options.cell_gpus,
                          max_retries=options.max_retries)(run_cell_folder)
        pending = {task.remote(folder, options.plugins_dir): folder for folder in folders}
        while pending:
            [done], _ = ray.wait(list(pending), num_returns=1)
            folder = pending.pop(done)
            try:
                ray.get(done)
                yield folder, None
            except ray.exceptions.RayError as exc:
                yield folder, f"the worker died {options.max_retries + 1} times: {type(exc).__name__}"


def check_reachable(address: str | None, timeout: float = 10.0) -> None:
    """One clear line when a `host:port` (or `ray://host:port`) address does not answer, instead of Ray
    waiting on it; "auto" and no address are Ray's to resolve."""
    if not address or address == "auto":
        return
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray-address must be host:port, ray://host:port or auto, got '{address}'")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UserError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one there with "
                        "`ray start --head`, or leave out --ray-address for a local cluster") from None


@hookimpl
def register_executors(register):
    register(RayExecutor)
