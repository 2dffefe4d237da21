"""Running a grid: each stage's cells in this process or on an executor (grid/executors.py), one grid id on
every run, each cell's folder ingested by this driver alone; the plan itself is grid/plan.py."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

from harness import plugins
from harness.config import RunConfig
from harness.errors import StrategyFailed, UserError
from harness.grid.lock import grid_lock
from harness.grid.plan import (
    LR_NAMES,
    Cell,
    GridPlan,
    GridResult,
    cell_config,
    grid_id_for,
    mean_metrics,
    searched_seeds,
    select_best,
)
from harness.runner.assemble import resolve
from harness.runner.lifecycle import execute
from harness.store.db import Store
from harness.store.folder import RunFolder, read_finished, run_folders_under
from harness.store.layout import create_run_folder, runs_dir, store_identity
from harness.strategy import lr_stages


def run_grid(base: RunConfig, store: Store, plan: GridPlan, force: bool = False, on_cell=None,
             seeds: list[int] | None = None, executor=None, executor_options=None,
             grid_id: str | None = None, search_seeds: list[int] | None = None) -> GridResult:
    """Run every stage of `plan`; later stages fix the earlier stages' winners. `on_cell(cell)` after each.
    With `seeds`, every cell runs once per seed and is selected on its mean dev score; with `search_seeds`
    too (some of `seeds`), the stages search on those alone and the selected cell then runs on the other
    seeds (select on one seed, report over three). With an `executor` (grid/executors.py) a stage's cells
    run there in parallel; the stage ends before the next starts. `grid_id` replaces the derived id (a study
    names its cells' grids: harness/study/run.py)."""
    if "dev" not in base.eval_splits:
        raise UserError("a grid selects on the dev split: keep 'dev' in --eval-splits")
    seeds = seeds or [base.seed]
    search = searched_seeds(seeds, search_seeds)
    base = dataclasses.replace(base, seed=seeds[0])
    grid_id = grid_id or grid_id_for(base, plan, seeds)
    with grid_lock(store, grid_id):  # a second driver of this grid on this store refuses, naming this one
        result = _run_stages(base, store, plan, grid_id, search, force, on_cell, executor, executor_options)
        if result.selected is not None and len(search) < len(seeds):
            _run_selected_on_more_seeds(result, base, store, [s for s in seeds if s not in search], force,
                                        executor, executor_options)
        return result


def _run_stages(base: RunConfig, store: Store, plan: GridPlan, grid_id: str, seeds: list[int], force: bool,
                on_cell, executor, executor_options) -> GridResult:
    chosen = dict(plan.fixed)
    cells: list[Cell] = []
    stage_cells: list[Cell] = []
    for s, stage in enumerate(plan.stages, start=1):
        stage_cells = [Cell(s, {**chosen, **dict(zip(stage.searched, combo))})
                       for combo in itertools.product(*(plan.values[n] for n in stage.searched))]
        run_cells(stage_cells, [cell_config(base, cell.lrs, stage.options) for cell in stage_cells], store, grid_id,
                  seeds, force, on_cell, executor, executor_options)
        cells += stage_cells
        best = select_best(stage_cells)
        if best is None:
            raise UserError(f"grid {grid_id}: every cell of stage {s} failed; `harness show RUN_ID` has the errors")
        chosen.update({n: best.lrs[n] for n in stage.searched})
    return GridResult(grid_id, plan, cells, select_best(stage_cells))


def run_cells(cells: list[Cell], configs: list[RunConfig], store: Store, grid_id: str, seeds: list[int], force: bool,
              on_cell, executor, executor_options) -> None:
    """Each cell's config once per seed: in this process, or on `executor` in parallel."""
    if executor is not None:
        return run_stage_on(executor, executor_options, cells, configs, store, grid_id, seeds, force, on_cell)
    for cell, cfg in zip(cells, configs):
        run_cell_in_process(cell, cfg, store, grid_id, seeds, force)
        if on_cell:
            on_cell(cell)


def _run_selected_on_more_seeds(result: GridResult, base: RunConfig, store: Store, seeds: list[int], force: bool,
                                executor, executor_options) -> None:
    """The selected cell (chosen on the search seeds) on `seeds` too; its runs and mean metrics then cover all."""
    best = result.selected
    more = Cell(best.stage, dict(best.lrs))
    run_cells([more], [cell_config(base, best.lrs, result.plan.stages[-1].options)], store, result.grid_id, seeds,
              force, None, executor, executor_options)
    if more.status == "failed":
        raise UserError(f"grid {result.grid_id}: the selected cell failed on seed(s) {seeds}: {more.error}")
    best.run_ids = [*best.run_ids, *more.run_ids]
    best.metrics = mean_metrics([store.run_metrics(rid) for rid in best.run_ids])


def run_cell_in_process(cell: Cell, cfg: RunConfig, store: Store, grid_id: str, seeds: list[int], force: bool) -> None:
    """One run of the cell's config per seed; the cell's metrics are their mean, its status the worst."""
    per_seed = []
    for seed in seeds:
        try:
            outcome = execute(dataclasses.replace(cfg, seed=seed), store, force=force, grid_id=grid_id)
        except StrategyFailed as exc:  # a diverging rate must not end the search
            cell.status, cell.error = "failed", str(exc)
            return
        if outcome.status == "skipped":
            _adopt(store, outcome.run_id, grid_id)
        cell.run_ids.append(outcome.run_id)
        per_seed.append(outcome)
    cell.run_id = cell.run_ids[0]
    cell.status = "finished" if any(o.status == "finished" for o in per_seed) else "skipped"
    cell.metrics = mean_metrics([o.metrics for o in per_seed])


def run_stage_on(executor, options, cells: list[Cell], configs: list[RunConfig], store: Store, grid_id: str,
                 seeds: list[int], force: bool, on_cell=None) -> None:
    """A stage's cells on `executor`: one run folder per cell and seed not already finished (by run key), run
    by the workers, imported by this driver as each finishes; a cell is done when all its seeds are."""
    root = runs_dir(store)
    store.import_runs(finished_folders_under(root, store, grid_id))  # cells a killed driver left finished
    owner, outcomes, folders = {}, {id(c): [] for c in cells}, []
    for cell, cfg in zip(cells, configs):
        for seed in seeds:
            run_cfg = resolve(dataclasses.replace(cfg, seed=seed)).config  # defaults filled, as `execute` stores
            existing = None if force else store.finished_run_with_key(run_cfg.run_key())
            if existing:
                _adopt(store, existing, grid_id)
                outcomes[id(cell)].append((existing, "skipped", None))
                continue
            folder = str(create_run_folder(run_cfg, root, grid_id, store).path.resolve())
            owner[folder] = cell
            folders.append(folder)
    for cell in cells:
        if len(outcomes[id(cell)]) == len(seeds):
            _finish_cell(cell, outcomes[id(cell)], store, on_cell)
    for folder, error in (executor.run(folders, options) if folders else ()):  # nothing left: start no engine
        cell = owner[folder]
        run = read_finished(Path(folder)) if error is None else None
        if run is None:  # the worker never finalised it: the driver records why
            RunFolder(Path(folder)).finalise("failed", error)
            run = read_finished(Path(folder))
        store.import_runs([run])
        outcomes[id(cell)].append((run.meta["run_id"], run.status, run.error))
        if len(outcomes[id(cell)]) == len(seeds):
            _finish_cell(cell, outcomes[id(cell)], store, on_cell)


def finished_folders_under(root: Path, store: Store | None = None, grid_id: str | None = None) -> list:
    """The finished folders under `root`; with `store` and `grid_id`, only those this store started for this
    grid (meta.json says so). Other stores' runs may share the root (two stores in one folder, one
    HARNESS_RUNS): a grid's sweep never takes them; `harness import` ingests a folder on purpose."""
    if not root.is_dir():
        return []
    found, me = [], store_identity(store) if store is not None else None
    for folder in run_folders_under(root):
        if (folder / "status.json").exists() and (store is None or _started_by(folder, me, grid_id)):
            try:
                found.append(read_finished(folder))
            except UserError:
                continue  # a corrupt folder is not a finished cell
    return found


def _started_by(folder: Path, store: str, grid_id: str) -> bool:
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("store") == store and meta.get("grid_id") == grid_id


def _finish_cell(cell: Cell, outcomes: list[tuple[str, str, str | None]], store: Store, on_cell) -> None:
    failed = [(rid, err) for rid, status, err in outcomes if status not in ("finished", "skipped")]
    cell.run_ids = [rid for rid, _, _ in outcomes]
    cell.run_id = cell.run_ids[0]
    if failed:
        cell.status, cell.error = "failed", failed[0][1]
    else:
        cell.status = "finished" if any(s == "finished" for _, s, _ in outcomes) else "skipped"
        cell.metrics = mean_metrics([store.run_metrics(rid) for rid in cell.run_ids])
        cell.eval_set = store.evaluation_sets(cell.run_ids[:1]).get(cell.run_id, {}).get("dev")
    if on_cell:
        on_cell(cell)


def _adopt(store: Store, run_id: str, grid_id: str) -> None:
    """A cell found already stored (same run key) joins this grid unless it belongs to another one."""
    if store.run_grid_id(run_id) is None:
        store.set_grid(run_id, grid_id)


# -- reusing another strategy's winners (--lrs-from) ----------------------------------------------
def selected_lrs(store: Store, source: str, base: RunConfig) -> dict[str, float | None]:
    """The learning rates of the selected cell of the latest `source` grid on the same data and models."""
    source_cls = plugins.strategies().get(source)
    runs = store.finished_grid_runs(source, base.dataset, base.embedder, base.generator)
    runs = [r for r in runs if all(json.loads(r["config"]).get(key) == getattr(base, key)
                                   for key in ("data_dir", "limit", "corpus_limit"))]
    if not runs:
        raise UserError(f"no finished {source} grid for dataset '{base.dataset}' (this data folder, --limit and "
                        f"--corpus-limit) with {base.embedder} + "
                        f"{base.generator}; run `harness grid --plugin {source} --lr-grid paper` first")
    latest = runs[0]["grid_id"]
    earlier = [opts for _, opts in lr_stages(source_cls)[:-1] if opts]
    cells = []
    for run in (r for r in runs if r["grid_id"] == latest):
        config = json.loads(run["config"])
        options = {k: str(v) for k, v in config.get("strategy_options", {}).items()}
        if any(all(options.get(k) == str(v) for k, v in opts.items()) for opts in earlier):
            continue  # an earlier stage's cell (e.g. two_phase phase 1 only): not a finished strategy
        cells.append(Cell(0, {n: config.get(n) for n in LR_NAMES}, run["id"], "finished", store.run_metrics(run["id"]),
                          eval_set=store.evaluation_sets([run["id"]]).get(run["id"], {}).get("dev")))
    best = select_best(cells)
    if best is None:
        raise UserError(f"the latest {source} grid ({latest}) has no finished final-stage cell")
    return best.lrs


