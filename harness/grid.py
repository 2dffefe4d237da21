"""Learning-rate grids (Lawton et al. §2.5): plan the cells, run them with one grid id, select on dev.

    harness grid --plugin ft_gen --lr-grid paper               # 9 cells: gen_lr = 1e-8 ... 1e-4
    harness grid --plugin two_phase --lr-grid paper            # 9 + 9 cells: each phase's rate on its own
    harness grid --plugin rag_token --lrs-from two_phase       # 1 cell: the two-phase winners (the paper)
    harness grid --plugin rag_token --embed-lr 1e-6,1e-5 --gen-lr 1e-4,1e-3   # 4 cells: both, jointly

Which rates a strategy takes is its `learning_rates` attribute (default: both). A strategy whose rates can
be chosen one at a time declares `lr_stages = ((name, options), ...)`: the grid searches the first rate
(its cells run with `options`, e.g. two_phase's `phases=1`), keeps the winner, then searches the next.
Otherwise the cells are the product of every searched rate. Every cell is an ordinary run stored with
the shared grid id (runs.grid_id); the grid's answer is the cell of its last stage with the best dev EM
(ties: dev F1), reported on test.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import plugins
from harness.config import RunConfig, code_version
from harness.errors import UserError
from harness.store import Store
from harness.strategy import Strategy, lr_stages

PAPER_GRID = (1e-8, 3e-8, 1e-7, 3e-7, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4)
LR_GRIDS = {"paper": PAPER_GRID}
LR_NAMES = ("embed_lr", "gen_lr")
OPTION = {"embed_lr": "--embed-lr", "gen_lr": "--gen-lr"}


# -- input ----------------------------------------------------------------------------------------
def parse_lr_list(text: str | None, option: str) -> list[float] | None:
    """'1e-6,1e-5' -> [1e-6, 1e-5]; None stays None. Bad input is one clear UserError."""
    if text is None:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise UserError(f"{option} grid has no values; give comma-separated learning rates, e.g. {option} 1e-6,1e-5")
    values = []
    for item in items:
        try:
            lr = float(item)
        except ValueError:
            raise UserError(f"{option}: '{item}' is not a number; learning rates are numbers > 0, e.g. 1e-5") from None
        if not (lr > 0 and math.isfinite(lr)):
            raise UserError(f"{option}: learning rates must be finite numbers > 0, got '{item}'")
        if lr not in values:
            values.append(lr)
    return values


def parse_seeds(text: str | None) -> list[int] | None:
    """'0,1,2' -> [0, 1, 2] (duplicates dropped, order kept); None stays None."""
    if text is None:
        return None
    seeds: list[int] = []
    for item in (i.strip() for i in text.split(",")):
        if not item.lstrip("-").isdigit() or int(item) < 0:
            raise UserError(f"--seeds takes comma-separated integers >= 0, e.g. --seeds 0,1,2; got '{text}'")
        if int(item) not in seeds:
            seeds.append(int(item))
    return seeds


def parse_budgets(text: str | None) -> list[float] | None:
    """'1e12,3e12' -> [1e12, 3e12] training-FLOP budgets, ascending; None stays None."""
    if text is None:
        return None
    budgets = []
    for item in (i.strip() for i in text.split(",")):
        try:
            value = float(item)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise UserError(f"--budgets takes comma-separated FLOP counts > 0, e.g. --budgets 1e13,3e13,1e14; got '{text}'")
        budgets.append(value)
    return sorted(set(budgets))


# -- the plan -------------------------------------------------------------------------------------
@dataclass
class Stage:
    searched: list[str]  # the learning rates this stage varies (one for a staged search, all for a product)
    options: dict[str, str] = field(default_factory=dict)  # strategy options of this stage's cells


@dataclass
class GridPlan:
    strategy: str
    values: dict[str, list[float]]  # searched rate -> its values
    fixed: dict[str, float | None]  # rates not searched: a given value, or None (strategy default)
    stages: list[Stage]
    source: str | None = None  # where fixed rates came from (--lrs-from)

    def n_cells(self) -> int:
        return sum(math.prod(len(self.values[n]) for n in stage.searched) for stage in self.stages)


def check_rate_sources(lr_grid: str | None, source: str | None) -> None:
    if source is not None and lr_grid is not None:
        raise UserError("--lrs-from reuses another strategy's rates and --lr-grid searches them: give one of the two")


def strategy_learning_rates(strategy_cls: Strategy) -> tuple[str, ...]:
    return tuple(strategy_cls.learning_rates)


def plan_grid(strategy_cls: Any, lr_grid: str | None = None, explicit: dict[str, list[float] | None] | None = None,
              fixed: dict[str, float | None] | None = None, source: str | None = None,
              search_optional: bool = False) -> GridPlan:
    """Which rates to search with which values, and in which stages. Raises UserError on a plan that
    searches nothing (unless `search_optional`: a grid over budgets or seeds alone is one cell per budget)
    or names a rate the strategy does not take."""
    name, takes = strategy_cls.name, strategy_learning_rates(strategy_cls)
    explicit = {k: v for k, v in (explicit or {}).items() if v is not None}
    fixed = dict(fixed or {})
    if not takes and not search_optional:
        raise UserError(f"strategy '{name}' trains nothing: there is no learning rate to search")
    for lr_name in explicit:
        if lr_name not in takes:
            raise UserError(f"strategy '{name}' has no {lr_name.replace('_lr', '')} learning rate; "
                            f"it takes {', '.join(OPTION[t] for t in takes)}")
    check_rate_sources(lr_grid, source)
    if lr_grid is not None and lr_grid not in LR_GRIDS:
        raise UserError(f"--lr-grid must be one of {', '.join(LR_GRIDS)}, got '{lr_grid}'")
    values: dict[str, list[float]] = {}
    for lr_name in takes:
        if lr_name in explicit:
            values[lr_name] = list(explicit[lr_name])
        elif lr_name not in fixed and lr_grid is not None:
            values[lr_name] = list(LR_GRIDS[lr_grid])
    fixed = {lr_name: fixed.get(lr_name) for lr_name in takes if lr_name not in values}
    if not values and source is None and not search_optional:
        raise UserError("nothing to search: give --lr-grid paper, --embed-lr/--gen-lr lists, or --lrs-from STRATEGY")
    return GridPlan(name, values, fixed, _stages(strategy_cls, values), source)


def _stages(strategy_cls: Any, values: dict[str, list[float]]) -> list[Stage]:
    staged = [(n, dict(opts)) for n, opts in lr_stages(strategy_cls) if n in values]
    if len(staged) > 1 and len(staged) == len(values):
        # each rate on its own; a stage's options apply only when a later stage finishes the job
        return [Stage([n], opts if i < len(staged) - 1 else {}) for i, (n, opts) in enumerate(staged)]
    return [Stage(list(values))]  # one stage: the product of every searched rate (a single cell if none)


# -- running it -----------------------------------------------------------------------------------
@dataclass
class Cell:
    stage: int
    lrs: dict[str, float | None]
    run_id: str | None = None  # the first seed's run
    status: str = "pending"  # finished | skipped | failed
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # mean over the cell's seeds
    error: str | None = None
    run_ids: list[str] = field(default_factory=list)  # one per seed

    def score(self) -> tuple[float, float]:
        dev = self.metrics.get("dev", {})
        return (dev.get("em", -math.inf), dev.get("f1", -math.inf))


@dataclass
class GridResult:
    grid_id: str
    plan: GridPlan
    cells: list[Cell]
    selected: Cell | None


def grid_id_for(base: RunConfig, plan: GridPlan, seeds: list[int] | None = None) -> str:
    """Deterministic: the same grid (config, rates, seeds, code) gets the same id, so an interrupted grid
    resumes under it (finished cells are skipped by their run key)."""
    several = bool(seeds and len(seeds) > 1)
    config = {k: v for k, v in base.to_dict().items() if k not in LR_NAMES and not (several and k == "seed")}
    payload = json.dumps({"config": config, "values": plan.values, "fixed": plan.fixed, "code": code_version(),
                          **({"seeds": seeds} if several else {})}, sort_keys=True, default=str)
    return "grid-" + hashlib.sha256(payload.encode()).hexdigest()[:12]


def cell_config(base: RunConfig, lrs: dict[str, float | None], options: dict[str, str]) -> RunConfig:
    return dataclasses.replace(base, **lrs, strategy_options={**base.strategy_options, **options})


def select_best(cells: list[Cell]) -> Cell | None:
    """The finished cell with the highest dev EM, ties broken by dev F1, then by grid order."""
    done = [c for c in cells if c.status in ("finished", "skipped") and "dev" in c.metrics]
    return max(done, key=lambda c: c.score()) if done else None


def run_grid(base: RunConfig, store: Store, plan: GridPlan, force: bool = False, on_cell=None,
             seeds: list[int] | None = None, executor=None, executor_options=None) -> GridResult:
    """Run every stage of `plan`; later stages fix the earlier stages' winners. `on_cell(cell)` after each.
    With `seeds`, every cell runs once per seed and is selected on its mean dev score. With an `executor`
    (harness.executors) a stage's cells run there in parallel; the stage ends before the next starts."""
    if "dev" not in base.eval_splits:
        raise UserError("a grid selects on the dev split: keep 'dev' in --eval-splits")
    seeds = seeds or [base.seed]
    base = dataclasses.replace(base, seed=seeds[0])
    grid_id = grid_id_for(base, plan, seeds)
    chosen = dict(plan.fixed)
    cells: list[Cell] = []
    stage_cells: list[Cell] = []
    for s, stage in enumerate(plan.stages, start=1):
        stage_cells = [Cell(s, {**chosen, **dict(zip(stage.searched, combo))})
                       for combo in itertools.product(*(plan.values[n] for n in stage.searched))]
        if executor is None:
            for cell in stage_cells:
                run_cell(cell, cell_config(base, cell.lrs, stage.options), store, grid_id, seeds, force)
                if on_cell:
                    on_cell(cell)
        else:
            configs = [cell_config(base, cell.lrs, stage.options) for cell in stage_cells]
            run_stage_on(executor, executor_options, stage_cells, configs, store, grid_id, seeds, force, on_cell)
        cells += stage_cells
        best = select_best(stage_cells)
        if best is None:
            raise UserError(f"grid {grid_id}: every cell of stage {s} failed; `harness show RUN_ID` has the errors")
        chosen.update({n: best.lrs[n] for n in stage.searched})
    return GridResult(grid_id, plan, cells, select_best(stage_cells))


def run_cell(cell: Cell, cfg: RunConfig, store: Store, grid_id: str, seeds: list[int], force: bool) -> None:
    """One run of the cell's config per seed; the cell's metrics are their mean, its status the worst."""
    from harness.runner import StrategyFailed, execute

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
    from harness.runfolder import read_finished
    from harness.runner import create_run_folder, resolve, runs_dir

    root = runs_dir(store)
    store.import_runs(finished_folders_under(root))  # cells a killed driver left finished but not imported
    owner, outcomes, folders = {}, {id(c): [] for c in cells}, []
    for cell, cfg in zip(cells, configs):
        for seed in seeds:
            run_cfg = resolve(dataclasses.replace(cfg, seed=seed)).config  # defaults filled, as `execute` stores
            existing = None if force else store.finished_run_with_key(run_cfg.run_key())
            if existing:
                _adopt(store, existing, grid_id)
                outcomes[id(cell)].append((existing, "skipped", None))
                continue
            folder = str(create_run_folder(run_cfg, root, grid_id).path.resolve())
            owner[folder] = cell
            folders.append(folder)
    for cell in cells:
        if len(outcomes[id(cell)]) == len(seeds):
            _finish_cell(cell, outcomes[id(cell)], store, on_cell)
    for folder, error in executor.run(folders, options):
        cell = owner[folder]
        run = read_finished(Path(folder)) if error is None else None
        if run is None:  # the worker never finalised it: the driver records why
            from harness.runfolder import RunFolder

            RunFolder(Path(folder)).finalise("failed", error)
            run = read_finished(Path(folder))
        store.import_runs([run])
        outcomes[id(cell)].append((run.meta["run_id"], run.status, run.error))
        if len(outcomes[id(cell)]) == len(seeds):
            _finish_cell(cell, outcomes[id(cell)], store, on_cell)


def finished_folders_under(root: Path) -> list:
    from harness.runfolder import read_finished, run_folders_under

    if not root.is_dir():
        return []
    found = []
    for folder in run_folders_under(root):
        if (folder / "status.json").exists():
            try:
                found.append(read_finished(folder))
            except UserError:
                continue  # a corrupt folder is not a finished cell
    return found


def _finish_cell(cell: Cell, outcomes: list[tuple[str, str, str | None]], store: Store, on_cell) -> None:
    failed = [(rid, err) for rid, status, err in outcomes if status not in ("finished", "skipped")]
    cell.run_ids = [rid for rid, _, _ in outcomes]
    cell.run_id = cell.run_ids[0]
    if failed:
        cell.status, cell.error = "failed", failed[0][1]
    else:
        cell.status = "finished" if any(s == "finished" for _, s, _ in outcomes) else "skipped"
        cell.metrics = mean_metrics([store.run_metrics(rid) for rid in cell.run_ids])
    if on_cell:
        on_cell(cell)


def mean_metrics(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Each split's metrics averaged over runs (a metric missing from a run is averaged over the others)."""
    out: dict[str, dict[str, float]] = {}
    for split in {s for r in runs for s in r}:
        names = {n for r in runs for n in r.get(split, {})}
        out[split] = {n: sum(v) / len(v) for n in names
                      if (v := [r[split][n] for r in runs if r.get(split, {}).get(n) is not None])}
    return out


def _adopt(store: Store, run_id: str, grid_id: str) -> None:
    """A cell found already stored (same run key) joins this grid unless it belongs to another one."""
    if store.run_grid_id(run_id) is None:
        store.set_grid(run_id, grid_id)


# -- reusing another strategy's winners (--lrs-from) ----------------------------------------------
def selected_lrs(store: Store, source: str, base: RunConfig) -> dict[str, float | None]:
    """The learning rates of the selected cell of the latest `source` grid on the same data and models."""
    source_cls = plugins.strategies().get(source)
    runs = store.finished_grid_runs(source, base.dataset, base.embedder, base.generator)
    runs = [r for r in runs if json.loads(r["config"]).get("data_dir") == base.data_dir]
    if not runs:
        raise UserError(f"no finished {source} grid for dataset '{base.dataset}' with {base.embedder} + "
                        f"{base.generator}; run `harness grid --plugin {source} --lr-grid paper` first")
    latest = runs[0]["grid_id"]
    earlier = [opts for _, opts in lr_stages(source_cls)[:-1] if opts]
    cells = []
    for run in (r for r in runs if r["grid_id"] == latest):
        config = json.loads(run["config"])
        options = {k: str(v) for k, v in config.get("strategy_options", {}).items()}
        if any(all(options.get(k) == str(v) for k, v in opts.items()) for opts in earlier):
            continue  # an earlier stage's cell (e.g. two_phase phase 1 only): not a finished strategy
        cells.append(Cell(0, {n: config.get(n) for n in LR_NAMES}, run["id"], "finished", store.run_metrics(run["id"])))
    best = select_best(cells)
    if best is None:
        raise UserError(f"the latest {source} grid ({latest}) has no finished final-stage cell")
    return best.lrs


def cell_rows(result: GridResult) -> list[dict]:
    """One display row per cell: stage, rates, dev and test scores, cost, and whether it was selected."""
    rows = []
    for cell in result.cells:
        dev, test, cost = (cell.metrics.get(k, {}) for k in ("dev", "test", "cost"))
        rows.append({"stage": cell.stage, **{n: cell.lrs.get(n) for n in LR_NAMES}, "dev_em": dev.get("em"),
                     "dev_f1": dev.get("f1"), "test_em": test.get("em"), "test_f1": test.get("f1"),
                     "fit_seconds": cost.get("fit_seconds"), "run": cell.run_id, "status": cell.status,
                     "selected": cell is result.selected})
    return rows
