"""Many runs: learning-rate grids planned, run here or on an executor, and selected on dev.

    plan.py       pure planning: parse rates, seeds, budgets; stages; cells; the grid id; selection
    run.py        running a plan: each stage's cells in this process or on an executor, one grid id on every
                  run, the driver alone writing the store
    executors.py  where cells run: `local`, and the executor contract that the ray and slurm plugins
                  (plugins/executors/) implement; `run_cell_folder` is what a worker runs

A grid cell on Ray: `harness grid --executor ray` -> grid/run.py `run_stage_on` writes one run folder per cell
-> plugins/executors/ray_executor.py runs `run_cell_folder(folder)` as a Ray task -> the driver ingests each
finished folder.
Public (executor plugins import these from `harness.grid`): the names in `__all__`.
"""

from harness._exports import exports

__all__, __getattr__ = exports(__name__, {
    "plan": ("Cell", "GridPlan", "GridResult", "Stage", "parse_budgets", "parse_lr_list", "parse_seeds", "plan_grid",
             "select_best"),
    "run": ("run_grid", "selected_lrs"),
    "executors": ("ExecutorOptions", "LocalExecutor", "get_executor", "import_engine", "run_cell_folder"),
})
