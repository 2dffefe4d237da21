"""`harness grid --executor slurm`: the cells as a Slurm job array through submitit (partition, time, GPUs
per cell, array parallelism); a job that dies (preempted, killed) is resubmitted up to --max-retries times.
`--slurm-cluster local` runs the same array as local processes (submitit's LocalExecutor), for trying it."""

from __future__ import annotations

import time
from collections.abc import Iterator

import click

from harness import hookimpl
from harness.grid import ExecutorOptions, import_engine, run_cell_folder


class SlurmExecutor:
    name = "slurm"
    options = [
        click.Option(["--slurm-partition"], default=None, help="Slurm partition for the job array"),
        click.Option(["--slurm-time"], type=click.IntRange(1, 100000), default=240, show_default=True,
                     help="minutes per cell job"),
        click.Option(["--slurm-array-parallelism"], type=click.IntRange(1, 10000), default=16, show_default=True,
                     help="cells of the job array running at once"),
        click.Option(["--slurm-cluster"], type=click.Choice(["slurm", "local"]), default=None,
                     help="submitit cluster (default: slurm when sbatch exists, else local processes)"),
    ]

    def run(self, folders: list[str], options: ExecutorOptions) -> Iterator[tuple[str, str | None]]:
        submitit = import_engine("submitit", "slurm")
        executor = submitit.AutoExecutor(folder=options.logs_dir, cluster=options.value(self, "slurm_cluster"))
        executor.update_parameters(timeout_min=options.value(self, "slurm_time"),
                                   cpus_per_task=max(1, int(options.cell_cpus)), gpus_per_node=int(options.cell_gpus),
                                   slurm_partition=options.value(self, "slurm_partition"),
                                   slurm_array_parallelism=options.value(self, "slurm_array_parallelism"))
        jobs = executor.map_array(run_cell_folder, folders, [options.plugins_dir] * len(folders))
        pending = {job: (folder, 0) for job, folder in zip(jobs, folders)}
        while pending:
            for job in [j for j in pending if j.done()]:
                folder, retries = pending.pop(job)
                try:
                    job.result()
                    yield folder, None
                except submitit.core.utils.FailedJobError as exc:
                    yield folder, f"job {job.job_id} failed: {str(exc).strip().splitlines()[-1]}"
                except submitit.core.utils.UncompletedJobError as exc:  # died, preempted, timed out
                    if retries < options.max_retries:
                        pending[executor.submit(run_cell_folder, folder, options.plugins_dir)] = (folder, retries + 1)
                    else:
                        yield folder, f"job {job.job_id} died {retries + 1} times: {str(exc).splitlines()[0]}"
            time.sleep(0.5)


@hookimpl
def register_executors(register):
    register(SlurmExecutor)
