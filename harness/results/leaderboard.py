"""The one leaderboard: how runs are grouped, selected and ranked, for `harness leaderboard` and the dashboard.

A grid cell is a resolved config minus its seed (its seeds are repeats). Scores compare only on one
**evaluation set** (the same questions of the same data: `harness.config.evaluation_set_id`): per evaluation
set of the reported split × strategy × embedder × generator the leaderboard keeps the cell with the best mean
dev EM (ties: dev F1, then more seeds, then the newest), reports it as the mean over seeds (± std) with a 95%
interval and its number of questions `n`, and tests every row against its evaluation set's best with a paired
bootstrap over examples (`≈ tied` at p ≥ 0.05). A quick `--limit 8` run is a row of its own set: it never
displaces, nor ties with, a run scored on all the questions. `ranking()` returns
plain rows (dicts) in order; the terminal, `--format csv|json|markdown` and the dashboard all print them.
A run is a plain dict: its `runs` row plus `split/metric` keys (`Store.finished_runs()`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np

from harness.evaluation import decompose
from harness.metrics import bootstrap_interval, metric_info, paired_bootstrap
from harness.store.db import Store
from harness.strategy import lr_stages

IDENTITY = ("strategy", "dataset", "embedder", "generator")
QUALITY = ("em", "f1", "recall@5", "answer_recall@5")
COSTS = ("fit_seconds", "gpu_hours", "peak_memory_mb")
SORT_KEYS = QUALITY + COSTS + ("seeds",)
# where a score comes from (harness/evaluation.py): per split, and the generator's retention over fit
SOURCES = ("closed_book_em", "oracle_em", "em_gold_retrieved", "em_gold_missed", "n_gold_retrieved", "grounded")
RETENTION = ("perplexity_change", "em_change")
BASELINE = "no_ft"  # gains are split into retrieval and reading against this strategy's row of the same set
TIE_ALPHA = 0.05
ExampleScores = Mapping[str, Mapping[str, tuple[float, float]]]  # run id -> example id -> (EM, F1), 0-100


def store_ranking(store: Store, split: str = "test", sort: str = "em") -> list[dict]:
    """`ranking()` of every finished run in `store`, reported on `split`."""
    from harness import plugins

    runs = store.finished_runs()
    return ranking(runs, store.example_scores([r["id"] for r in runs], split),
                   earlier_stage_options(plugins.strategies().items), sort, split)


def eval_set(run: dict, split: str) -> str | None:
    """The evaluation set of `run`'s scores on `split` (None: the run did not score that split)."""
    return run.get(f"eval_set/{split}")


def group_key(row: dict) -> tuple:
    """Rows rank against each other only within one dataset and evaluation set; larger sets first."""
    return (str(row["dataset"]), -(row.get("n") or 0), str(row.get("eval_set")))


def ranking(runs: Sequence[dict], scores: ExampleScores, earlier_options: dict[str, list[dict]] | None = None,
            sort: str = "em", split: str = "test") -> list[dict]:
    """One row per evaluation set × strategy × embedder × generator (its best cell by dev), grouped by
    dataset and evaluation set (scores on different questions do not rank), then ordered by `sort` (best
    first); NaN last."""
    if sort not in SORT_KEYS:
        raise ValueError(f"cannot sort by {sort!r}; allowed: {', '.join(SORT_KEYS)}")
    cells = sorted(best_cells(runs, select="dev/em", earlier_options=earlier_options, split=split),
                   key=identity_order)  # equal scores rank (and the best of equals is chosen) by identity
    per_example = [cell_examples(scores, cell) for cell in cells]
    rows = [cell_row(cell, examples, runs, earlier_options or {}, split) for cell, examples in zip(cells, per_example)]
    mark_ties(rows, per_example)
    add_gains(rows)
    higher_first = sort == "seeds" or metric_info(sort).higher_is_better
    order = sorted(range(len(rows)), key=lambda i: _sort_key(rows[i][sort], higher_first))
    return sorted((rows[i] for i in order), key=group_key)


def identity_order(cell: list[dict]) -> tuple:
    """A cell's place among equals: by strategy, dataset, models and run id, whatever order the runs came in."""
    newest = cell[-1]
    return (*(str(newest[k]) for k in IDENTITY), str(newest["id"]))


def _sort_key(value, higher_first: bool) -> tuple:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (1, 0.0)
    return (0, -value if higher_first else value)


def _present(values) -> list[float]:
    return [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def cell_examples(scores: ExampleScores, cell: list[dict]) -> dict[str, tuple[float, float]]:
    """EM and F1 per example, averaged over the cell's seeds, for the examples every seed answered; in
    example-id order."""
    per_run = [scores.get(r["id"], {}) for r in cell]
    common = sorted(set.intersection(*(set(s) for s in per_run))) if per_run else []
    return {ex: (float(np.mean([s[ex][0] for s in per_run])), float(np.mean([s[ex][1] for s in per_run])))
            for ex in common}


def cell_row(cell: list[dict], examples: dict, runs: Sequence[dict], earlier_options: dict, split: str) -> dict:
    """The leaderboard row of one cell: identity, mean ± std over seeds on `split`, interval, costs, rates."""
    newest = cell[-1]
    row = {key: newest[key] for key in IDENTITY}
    row["id"] = newest["id"]
    row["eval_set"] = eval_set(newest, split)
    row["n"] = newest.get(f"{split}/n")
    for name in QUALITY:
        values = _present(r.get(f"{split}/{name}") for r in cell)
        row[name] = float(np.mean(values)) if values else math.nan
        row[f"{name}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    for i, name in enumerate(("em", "f1")):
        row[f"{name}_low"], row[f"{name}_high"] = interval(cell, examples, name, i, split)
        row[f"{name}_ci"] = format_interval(row[f"{name}_low"], row[f"{name}_high"])
    for name in COSTS:
        values = _present(r.get(f"cost/{name}") for r in cell)
        row[name] = float(np.mean(values)) if values else math.nan
    for key, name in [(f"{split}/{n}", n) for n in SOURCES] + [(f"retention/{n}", f"retention_{n}") for n in RETENTION]:
        values = _present(r.get(key) for r in cell)
        row[name] = float(np.mean(values)) if values else math.nan
    row["seeds"] = len(cell)
    for name in QUALITY:
        values = _present(r.get(f"dev/{name}") for r in cell)
        row[f"dev_{name}"] = float(np.mean(values)) if values else math.nan
    config = _config(newest)
    row["embed_lr"], row["gen_lr"] = config.get("embed_lr"), config.get("gen_lr")
    row["labels"] = training_labels(config)
    row["grid_id"] = newest.get("grid_id")
    row["cells"] = cells_tried(newest, runs, earlier_options, split)
    row["run_id"] = newest["id"]
    row["run_ids"] = " ".join(r["id"] for r in cell)
    return row


def interval(cell: list[dict], examples: dict, name: str, column: int, split: str) -> tuple[float, float]:
    """95% interval: a single run's own (computed once, when it was evaluated: the run page shows the same);
    for several seeds, a bootstrap over examples of the seed-averaged score; without predictions, the
    stored bounds averaged over seeds."""
    lows = _present(r.get(f"{split}/{name}_low") for r in cell)
    highs = _present(r.get(f"{split}/{name}_high") for r in cell)
    if len(cell) == 1 and lows and highs:
        return lows[0], highs[0]
    if examples:
        return bootstrap_interval(np.array([v[column] for v in examples.values()]))
    if lows and highs:
        return float(np.mean(lows)), float(np.mean(highs))
    return math.nan, math.nan


def format_interval(low: float, high: float) -> str:
    return "" if math.isnan(low) or math.isnan(high) else f"[{low:.1f}, {high:.1f}]"


def cells_tried(run: dict, runs: Sequence[dict], earlier_options: dict, split: str = "test") -> int:
    same = [r for r in runs if all(r[k] == run[k] for k in IDENTITY) and eval_set(r, split) == eval_set(run, split)
            and not earlier_stage_cell(r, earlier_options)]
    return len({grid_cell(r) for r in same})


def mark_ties(rows: list[dict], per_example: list[dict]) -> None:
    """`vs_best`: per evaluation set, the best EM is marked; every other row is tested against it with a
    paired bootstrap over its examples (or, without predictions, by overlap of the intervals)."""
    for row in rows:
        row["vs_best"], row["p_vs_best"] = "", math.nan
    for key in {group_key(r) for r in rows}:
        group = [i for i, r in enumerate(rows) if group_key(r) == key and not math.isnan(r["em"])]
        if not group:
            continue
        best = max(group, key=lambda i: rows[i]["em"])  # the first of equals, as pandas' idxmax
        for i in group:
            rows[i]["vs_best"], rows[i]["p_vs_best"] = versus(rows, i, best, per_example)


def versus(rows: list[dict], i: int, best: int, per_example: list[dict]) -> tuple[str, float]:
    if i == best:
        return "★ best", math.nan
    common = sorted(set(per_example[i]) & set(per_example[best]))
    if common:
        p = paired_bootstrap([per_example[i][e][0] for e in common], [per_example[best][e][0] for e in common])
        return (f"≈ tied (p={p:.2f})" if p >= TIE_ALPHA else f"below (p={p:.3f})"), p
    overlap = rows[i]["em_high"] >= rows[best]["em_low"]
    return ("≈ tied (CIs overlap)" if overlap else "below (CIs apart)"), math.nan


def add_gains(rows: list[dict]) -> None:
    """`gain_retrieval` and `gain_reading`: a row's EM over the `no_ft` row of its evaluation set and models,
    split by `harness.evaluation.decompose` (NaN without such a row or without context labels)."""
    for row in rows:
        row["gain_retrieval"] = row["gain_reading"] = math.nan
        base = next((b for b in rows if b["strategy"] == BASELINE and group_key(b) == group_key(row)
                     and b["embedder"] == row["embedder"] and b["generator"] == row["generator"]), None)
        if base is None:
            continue
        parts = decompose(split_view(row), split_view(base))
        if parts is not None:
            row["gain_retrieval"], row["gain_reading"] = parts["retrieval"], parts["reading"]


def split_view(row: dict) -> dict[str, float]:
    """A row's split metrics under the names `decompose` reads (NaN ones left out)."""
    names = ("n", "em", "n_gold_retrieved", "em_gold_retrieved", "em_gold_missed")
    return {n: row[n] for n in names if row.get(n) is not None and not math.isnan(row[n])}


def run_rows(store: Store, split: str = "test") -> list[dict]:
    """Every finished run, one row each, newest first (`harness leaderboard --all`)."""
    rows = []
    for run in reversed(store.finished_runs()):
        row = {key: run[key] for key in ("id", "strategy", "dataset", "embedder", "generator", "seed", "grid_id")}
        row["eval_set"] = eval_set(run, split)
        row["labels"] = training_labels(_config(run))
        for key, value in run.items():
            if key.startswith(f"{split}/") or key.startswith("cost/"):
                row[key.split("/", 1)[1]] = value
        rows.append(row)
    return rows


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
               earlier_options: dict[str, list[dict]] | None = None, split: str = "test") -> list[list[dict]]:
    """Per strategy × dataset × embedder × generator × evaluation set of `split`, the runs (one per seed) of
    the grid cell with the highest mean `select` metric; ties go to the higher mean `tie_break` (as `harness
    grid` selects), then to the cell with more seeds, then to the newest (a cell without `select`, e.g. a
    run that scored only test, is chosen by those). Earlier-stage cells of staged grids are left out."""
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for run in latest_per_seed(runs):
        if earlier_options and earlier_stage_cell(run, earlier_options):
            continue
        key = (*(run[k] for k in IDENTITY), eval_set(run, split))
        groups.setdefault(key, {}).setdefault(grid_cell(run), []).append(run)
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
