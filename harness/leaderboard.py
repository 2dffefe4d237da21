"""Leaderboard rows from the store, and the statistics behind the dashboard's leaderboard.

`harness leaderboard` shows one row per finished run (or the latest per configuration). The dashboard
groups runs: a grid cell is a resolved config minus its seed; per strategy × dataset × embedder ×
generator it keeps the cell with the best mean dev score, reports that cell on test, and tests every row
against the best with a paired bootstrap over examples. These functions take plain dicts (a run is
its `runs` row plus `split/metric` keys) so the CLI and the dashboard share them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np

from harness.store import Store
from harness.strategy import lr_stages

IDENTITY = ("strategy", "dataset", "embedder", "generator")


def leaderboard_rows(store: Store, split: str = "test", latest_only: bool = True) -> list[dict]:
    rows = []
    seen: set[str] = set()
    for run in reversed(store.finished_runs()):  # newest first
        config = json.loads(run["config"]) if isinstance(run["config"], str) else run["config"]
        identity = json.dumps({k: v for k, v in config.items()}, sort_keys=True)
        if latest_only and identity in seen:
            continue
        seen.add(identity)
        row = {key: run[key] for key in ("id", "strategy", "dataset", "embedder", "generator", "seed", "grid_id")}
        row["labels"] = training_labels(config)
        for key, value in run.items():
            if key.startswith(f"{split}/"):
                row[key.split("/", 1)[1]] = value
            elif key.startswith("cost/"):
                row[key.split("/", 1)[1]] = value
        rows.append(row)
    return sorted(rows, key=lambda r: -(r.get("em") or 0.0))


def training_labels(config: dict) -> str:
    """How the run's training questions were labelled: `silver@N` (DPR's positives from the base top N) or
    `dataset` (the dataset's own context labels, if it has any)."""
    return f"silver@{config['silver_labels']}" if config.get("silver_labels") else "dataset"


def _config(run: dict) -> dict:
    return json.loads(run["config"]) if isinstance(run["config"], str) else dict(run["config"])


def grid_cell(run: dict) -> str:
    """The grid cell of a run: its whole resolved config except the seed (seeds of a cell are repeats)."""
    return json.dumps({k: v for k, v in _config(run).items() if k != "seed"}, sort_keys=True, default=str)


def latest_per_seed(runs: Sequence[dict]) -> list[dict]:
    """Keep the newest run of each (cell, seed): a `--force` rerun replaces the older one.
    `runs` are in finishing order, oldest first."""
    newest: dict[tuple[str, int], dict] = {}
    for run in runs:
        newest[(grid_cell(run), run["seed"])] = run
    return list(newest.values())


def _mean(values: Sequence[float | None]) -> float:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(present)) if present else -math.inf


def earlier_stage_cell(run: dict, earlier_options: dict[str, list[dict]]) -> bool:
    """True for a cell of a staged grid's earlier stage (two_phase with `phases=1`): it trains only part of
    its strategy, so it never stands for the strategy. `earlier_options`: strategy -> those stages' options."""
    options = {k: str(v) for k, v in _config(run).get("strategy_options", {}).items()}
    return any(all(options.get(k) == str(v) for k, v in opts.items())
               for opts in earlier_options.get(run["strategy"], []))


def best_cells(runs: Sequence[dict], select: str = "dev/em", tie_break: str = "dev/f1",
               earlier_options: dict[str, list[dict]] | None = None) -> list[list[dict]]:
    """Per strategy × dataset × embedder × generator, the runs (one per seed) of the grid cell with the
    highest mean `select` metric; ties go to the higher mean `tie_break` (as `harness grid` selects), then
    to the cell with more seeds, then to the newest. Earlier-stage cells of staged grids are left out."""
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for run in latest_per_seed(runs):
        if earlier_options and earlier_stage_cell(run, earlier_options):
            continue
        groups.setdefault(tuple(run[k] for k in IDENTITY), {}).setdefault(grid_cell(run), []).append(run)
    chosen = []
    for cells in groups.values():
        ranked = list(cells.values())  # insertion order = finishing order of each cell's first run
        chosen.append(max(reversed(ranked), key=lambda seeds: (
            _mean([r.get(select) for r in seeds]), _mean([r.get(tie_break) for r in seeds]), len(seeds))))
    return chosen


def earlier_stage_options(strategies: dict[str, type]) -> dict[str, list[dict]]:
    """From strategy classes by name: the options of every `lr_stages` stage but the last, where set."""
    return {name: [dict(opts) for _, opts in lr_stages(cls)[:-1] if opts]
            for name, cls in strategies.items()}


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower cost x, higher quality y),
    ordered by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best_y = [], -math.inf
    for i in order:
        if points[i][1] > best_y:
            front.append(i)
            best_y = points[i][1]
    return front
