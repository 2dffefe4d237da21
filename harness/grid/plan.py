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
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.config import LR_GRIDS, RunConfig, code_version
from harness.errors import UserError
from harness.strategy import Strategy, lr_stages

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


def searched_seeds(seeds: Sequence[int], search: Sequence[int] | None) -> list[int]:
    """The seeds a grid searches on: those of `seeds` in `search`, else every seed (its winner runs on the rest)."""
    return [s for s in seeds if s in (search or seeds)] or list(seeds)


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


# -- cells and their selection ----------------------------------------------------------------------
@dataclass
class Cell:
    stage: int
    lrs: dict[str, float | None]
    run_id: str | None = None  # the first seed's run
    status: str = "pending"  # finished | skipped | failed
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # mean over the cell's seeds
    error: str | None = None
    run_ids: list[str] = field(default_factory=list)  # one per seed
    eval_set: str | None = None  # the evaluation set of its dev scores (harness.config.evaluation_set_id)

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
    """The finished cell with the highest dev EM, ties broken by dev F1, then by a stable key (the smallest
    learning rates, then the smallest run id), so every reader, in any order, selects the same run. Cells
    compete only within one evaluation set (a reused cell scored on other dev questions, say data changed
    under the same folder, never competes): the set most cells were scored on (ties: the smallest set id)."""
    done = [c for c in cells if c.status in ("finished", "skipped") and "dev" in c.metrics]
    if not done:
        return None
    sets = [c.eval_set for c in done]
    common = min(set(sets), key=lambda s: (-sets.count(s), str(s)))
    return min((c for c in done if c.eval_set == common), key=lambda c: (-c.score()[0], -c.score()[1], *tie_key(c)))


def tie_key(cell: Cell) -> tuple:
    rates = tuple((value is not None, value or 0.0) for _, value in sorted(cell.lrs.items()))
    return rates, cell.run_id or ""


def mean_metrics(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Each split's metrics averaged over runs (a metric missing from a run is averaged over the others)."""
    out: dict[str, dict[str, float]] = {}
    for split in {s for r in runs for s in r}:
        names = {n for r in runs for n in r.get(split, {})}
        out[split] = {n: sum(v) / len(v) for n in names
                      if (v := [r[split][n] for r in runs if r.get(split, {}).get(n) is not None])}
    return out


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

