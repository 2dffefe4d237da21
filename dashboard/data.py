"""The dashboard's one data-access module: what the pages show, read through a read-only `Store`.

The SQL lives in harness/store/db.py. DuckDB lets one process write and no other read beside it, so every
read opens the store read-only (`Store(path, read_only=True)`: external access and extension loading off,
configuration locked, never migrated), runs its queries and closes at once: a held connection would block
`harness run`. While a writer holds the lock a read waits briefly, then raises `StoreBusy`; pages show a
"store busy, retrying" notice. The dashboard never writes.

Filter columns, sort keys and metric names come only from allowlists. Results are cached for
`TTL_SECONDS`, keyed by the store path.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
from collections.abc import Sequence

import numpy as np
import pandas as pd
import streamlit as st

from harness.evaluation import decompose
from harness.metrics import paired_bootstrap
from harness.results.leaderboard import (  # noqa: F401 - QUALITY, COSTS, SORT_KEYS, TIE_ALPHA: the pages read them here
    BASELINE,
    COSTS,
    IDENTITY,
    QUALITY,
    SORT_KEYS,
    TIE_ALPHA,
    best_cells,
    earlier_stage_cell,
    earlier_stage_options,
    latest_per_seed,
    pareto_front,
    ranking,
)
from harness.store.db import (  # noqa: F401 - FILTER_COLUMNS, StoreBusy, StoreUnreadable, StoreState: the pages read them here
    DEFAULT_DB,
    FILTER_COLUMNS,
    Store,
    StoreBusy,
    StoreState,
    StoreUnreadable,
)

TTL_SECONDS = 5
LOCK_WAIT_SECONDS = 1.5
SPLITS = ("test", "dev")
# the columns of a finished run the pages use (then its `split/name` metrics and `eval_set/<split>` ids)
RUN_COLUMNS = ["id", "strategy", "dataset", "embedder", "generator", "seed", "grid_id", "config", "finished_at",
               "embed_lr", "gen_lr"]


def db_path() -> str:
    """`--db PATH` after `--` on the streamlit command line, else $HARNESS_DB, else ./harness.duckdb."""
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg == "--db" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--db="):
            return arg.split("=", 1)[1]
    return os.environ.get("HARNESS_DB", DEFAULT_DB)


# -- the store ---------------------------------------------------------------------------------------
def reader(path: str, wait: float = LOCK_WAIT_SECONDS) -> Store:
    """The store at `path`, read-only: each call opens it for its queries and closes it."""
    return Store(path, lock_timeout=wait, read_only=True)


def _table(rows: list[dict], columns: Sequence[str], numbers: Sequence[str] = ()) -> pd.DataFrame:
    """Rows as a table with these columns; `numbers` as floats, NULL as NaN (as DuckDB hands them to pandas)."""
    table = pd.DataFrame.from_records(rows, columns=list(columns))
    return table.astype({name: float for name in numbers})


def store_is_free(path: str) -> bool:
    """True when a read-only connection can be opened right now."""
    try:
        with reader(path, wait=0).transaction():
            return True
    except (StoreBusy, StoreUnreadable):
        return False


def store_state(path: str) -> StoreState:
    """Is there a store at `path`, with this code's schema and finished runs? Never cached."""
    return reader(path).state()


# -- filters and runs --------------------------------------------------------------------------------
Filters = tuple[tuple[str, tuple[str, ...]], ...]


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def filter_options(path: str) -> dict[str, list[str]]:
    """Distinct values of each filter column over finished runs, those with the most runs first."""
    return reader(path).filter_options()


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def finished_runs(path: str, filters: Filters = ()) -> pd.DataFrame:
    """Finished runs, oldest first, one row each: identity, seed, grid, learning rates, every metric as a
    `split/name` column and the evaluation set of each split as `eval_set/<split>`."""
    runs = reader(path).finished_runs(filters)
    metrics = sorted({key for run in runs for key in run if "/" in key and not key.startswith("eval_set/")})
    sets = sorted({key for run in runs for key in run if key.startswith("eval_set/")})
    return _table(runs, RUN_COLUMNS + metrics + sets, ["embed_lr", "gen_lr", *metrics])


@st.cache_resource(show_spinner=False)
def earlier_stages() -> dict[str, list[dict]]:
    """Strategy -> the options of its staged grid's earlier stages (two_phase: `phases=1`), read from the
    strategy plugins; those cells train part of a strategy and never stand for it on the leaderboard."""
    try:
        from harness import plugins

        plugins.load_plugins()
        return earlier_stage_options(plugins.strategies().items)
    except Exception:  # a broken plugin must not take the dashboard down: then no cell is left out
        return {}


# -- the leaderboard ---------------------------------------------------------------------------------
@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def leaderboard(path: str, filters: Filters = (), sort: str = "em") -> pd.DataFrame:
    """The ranking of harness/results/leaderboard.py (the one `harness leaderboard` prints) over the filtered runs:
    per strategy × dataset × embedder × generator its best grid cell by mean dev EM, reported on test as
    mean (± std over seeds) with a 95% interval, costs, and a test against the dataset's best."""
    if sort not in SORT_KEYS:
        raise ValueError(f"cannot sort by {sort!r}; allowed: {', '.join(SORT_KEYS)}")
    runs = finished_runs(path, filters)
    records = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
               for r in runs.to_dict("records")]
    rows = ranking(records, reader(path).example_scores([r["id"] for r in records]), earlier_stages(), sort)
    if not rows:
        return pd.DataFrame(columns=[*IDENTITY, *SORT_KEYS, "run_id"])
    return pd.DataFrame(rows)


# -- quality against cost ----------------------------------------------------------------------------
def cost_points(path: str, filters: Filters, every_run: bool, x: str, y: str) -> pd.DataFrame:
    """Points for the quality/cost scatter: leaderboard rows, or every run (the latest of each cell and
    seed); `pareto` marks the front, where no other point is both cheaper (x) and better (y)."""
    if x not in COSTS or y not in QUALITY:
        raise ValueError(f"x must be one of {COSTS} and y one of {QUALITY}")
    points = _every_run(path, filters) if every_run else leaderboard(path, filters)
    if points.empty or x not in points or y not in points:
        return pd.DataFrame(columns=[*IDENTITY, "run_id", x, y, "pareto"])
    points = points.dropna(subset=[x, y]).reset_index(drop=True)
    points["pareto"] = points.index.isin(pareto_front(list(zip(points[x], points[y]))))
    return points


def _every_run(path: str, filters: Filters) -> pd.DataFrame:
    """The latest run of every cell and seed (earlier grid stages left out), test and cost metrics as columns."""
    stages = earlier_stages()
    records = [r for r in latest_per_seed(finished_runs(path, filters).to_dict("records"))
               if not earlier_stage_cell(r, stages)]
    frame = pd.DataFrame(records)
    unprefixed = {c: c.split("/", 1)[1] for c in frame.columns if c.startswith(("test/", "cost/"))}
    return frame.rename(columns={**unprefixed, "id": "run_id"})


# -- quality at equal compute -------------------------------------------------------------------------
def compute_curves(path: str, filters: Filters, y: str) -> pd.DataFrame:
    """One point per strategy × training-FLOP budget (`max_train_flops`, "full" when unset): mean `y` on test
    and mean spent `train_flops` over the budget's runs (the latest per cell and seed; with several cells at
    one budget, the best by mean dev EM, as the leaderboard picks), with the seeds' std and count."""
    if y not in QUALITY:
        raise ValueError(f"y must be one of {QUALITY}")
    runs = finished_runs(path, filters)
    if runs.empty or "cost/train_flops" not in runs or f"test/{y}" not in runs:
        return pd.DataFrame(columns=["strategy", "budget", "train_flops", y, f"{y}_std", "seeds"])
    runs = runs.dropna(subset=["cost/train_flops", f"test/{y}"])
    runs["budget"] = [_config(c).get("max_train_flops") or math.inf for c in runs["config"]]
    points = []
    for (strategy, budget), group in runs.groupby(["strategy", "budget"]):
        cells = best_cells(group.to_dict("records"), earlier_options=earlier_stages())
        for seeds in cells:
            frame = pd.DataFrame(seeds)
            points.append({"strategy": strategy, "budget": budget, "train_flops": frame["cost/train_flops"].mean(),
                           y: frame[f"test/{y}"].mean(), f"{y}_std": frame[f"test/{y}"].std(ddof=1),
                           "seeds": len(frame), "run_id": frame["id"].iloc[-1]})
    curves = pd.DataFrame(points)
    return curves.sort_values(["strategy", "train_flops"]).reset_index(drop=True) if not curves.empty else curves


def _config(config) -> dict:
    return json.loads(config) if isinstance(config, str) else dict(config)


# -- one run -----------------------------------------------------------------------------------------
@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def run_choices(path: str) -> pd.DataFrame:
    """Every run, newest first, for pickers (any status; a lost `running` run reads `interrupted`)."""
    return _table(reader(path).runs_with_test_em(),
                 ["id", "strategy", "dataset", "embedder", "generator", "seed", "status", "started_at", "em"], ["em"])


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def run_detail(path: str, run_id: str) -> dict | None:
    """One run: its `runs` row (config and packages parsed), metrics, training log and artifacts."""
    store = reader(path)
    detail = store.run(run_id)
    if detail is None:
        return None
    detail["config"] = json.loads(detail["config"])
    detail["packages"] = json.loads(detail["packages"]) if detail.get("packages") else {}
    metrics = store.run_metrics(run_id)
    detail["metrics"] = _table([{"split": split, "name": name, "value": metrics[split][name]}
                               for split in sorted(metrics) for name in sorted(metrics[split])],
                              ["split", "name", "value"], ["value"])
    steps = _table(store.run_steps(run_id), ["step", "name", "value", "elapsed"], ["value", "elapsed"])
    detail["train_log"] = steps.sort_values(["name", "step"], kind="stable", ignore_index=True)
    detail["artifacts"] = _table(store.run_artifacts(run_id), ["kind", "path", "sha256", "created_at"])
    return detail


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def predictions(path: str, run_id: str, split: str, search: str = "", only_wrong: bool = False) -> pd.DataFrame:
    """The run's per-example table on `split`; `search` matches question, prediction or gold answers
    (case-insensitive, as a bound value); retrieved ids carry ✓ where they are gold passages."""
    if split not in SPLITS + ("train",):
        raise ValueError(f"unknown split {split!r}")
    scores = ["em", "f1", "hit", "answer_hit"]
    rows = reader(path).search_predictions(run_id, split, search, only_wrong)
    return _readable_predictions(_table(rows, ["example_id", "question", "prediction", "golds", *scores,
                                              "retrieved_ids", "gold_passage_ids"], scores))


def _readable_predictions(table: pd.DataFrame) -> pd.DataFrame:
    table["golds"] = [" | ".join(json.loads(g)) for g in table["golds"]]
    table["retrieved"] = [mark_gold(json.loads(r), json.loads(g))
                          for r, g in zip(table["retrieved_ids"], table["gold_passage_ids"])]
    table["gold_passages"] = [", ".join(json.loads(g)) for g in table["gold_passage_ids"]]
    return table.drop(columns=["retrieved_ids", "gold_passage_ids"])


def mark_gold(retrieved: list[str], gold: list[str]) -> str:
    """Retrieved passage ids in rank order, gold ones marked ✓."""
    gold_set = set(gold)
    return ", ".join(f"✓{pid}" if pid in gold_set else pid for pid in retrieved)


# -- two runs ----------------------------------------------------------------------------------------
@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def paired_predictions(path: str, run_a: str, run_b: str, split: str = "test") -> pd.DataFrame:
    """The examples both runs answered on `split` (same id and question), side by side."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}")
    scores = ["em_a", "em_b", "f1_a", "f1_b"]
    pairs = _table(reader(path).paired_predictions(run_a, run_b, split),
                  ["example_id", "question", "golds", "prediction_a", "prediction_b", *scores], scores)
    pairs["golds"] = [" | ".join(json.loads(g)) for g in pairs["golds"]]
    pairs["outcome"] = [_outcome(a, b) for a, b in zip(pairs["em_a"], pairs["em_b"])]
    return pairs


def _outcome(em_a: float, em_b: float) -> str:
    return {(1, 1): "both right", (1, 0): "only A right", (0, 1): "only B right", (0, 0): "both wrong"}[
        (int(em_a >= 1), int(em_b >= 1))]


def paired_summary(frame: pd.DataFrame) -> dict:
    """Means of A and B (0–100), their difference and its paired-bootstrap p-value, for EM and F1."""
    summary = {"n": len(frame)}
    for name in ("em", "f1"):
        a, b = 100 * frame[f"{name}_a"].to_numpy(), 100 * frame[f"{name}_b"].to_numpy()
        summary[name] = {"a": float(np.mean(a)) if len(a) else math.nan,
                         "b": float(np.mean(b)) if len(b) else math.nan,
                         "p": paired_bootstrap(a, b)}
        summary[name]["diff"] = summary[name]["a"] - summary[name]["b"]
    summary["outcomes"] = frame["outcome"].value_counts().to_dict()
    return summary


# -- learning rates ----------------------------------------------------------------------------------
@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def grids(path: str) -> pd.DataFrame:
    """Learning-rate grids: id, dataset(s), strategies, cells and runs."""
    return _table(reader(path).grid_summaries(), ["grid_id", "datasets", "strategies", "runs"])


def lr_cells(path: str, dataset: str, metric: str, grid_ids: Sequence[str] = ()) -> pd.DataFrame:
    """Mean dev `metric` over seeds for every learning-rate cell of `dataset` (runs of `grid_ids` if given);
    `earlier_stage` marks cells of a staged grid's earlier stage (e.g. two_phase's generator-only phase)."""
    if metric not in QUALITY:
        raise ValueError(f"metric must be one of {QUALITY}")
    runs = finished_runs(path, (("dataset", (dataset,)),))
    if grid_ids:
        runs = runs[runs["grid_id"].isin(list(grid_ids))]
    if runs.empty or f"dev/{metric}" not in runs:
        return pd.DataFrame(columns=["strategy", "embedder", "generator", "earlier_stage", "embed_lr", "gen_lr",
                                     metric, "seeds"])
    records = latest_per_seed(runs.to_dict("records"))
    stages = earlier_stages()
    runs = pd.DataFrame(records).assign(earlier_stage=[earlier_stage_cell(r, stages) for r in records])
    keys = ["strategy", "embedder", "generator", "earlier_stage", "embed_lr", "gen_lr"]
    cells = runs.groupby(keys, dropna=False).agg(**{metric: (f"dev/{metric}", "mean"), "seeds": ("seed", "nunique")})
    return cells.reset_index()


# -- export ------------------------------------------------------------------------------------------
def to_csv(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


# -- where a score comes from ------------------------------------------------------------------------
def split_metrics(path: str, run_id: str) -> dict[str, dict[str, float]]:
    """split -> name -> value of one run."""
    return reader(path).run_metrics(run_id)


def same_questions(path: str, run_a: str, run_b: str, split: str) -> bool:
    """Were both runs scored on one evaluation set of `split` (harness.config.evaluation_set_id)?"""
    return reader(path).same_questions(run_a, run_b, split)


def baseline_run(path: str, run_id: str, strategy: str = BASELINE, split: str = "test") -> str | None:
    """The newest finished `strategy` run on the same `split` questions with the same models, if any."""
    row = reader(path).baseline_run(run_id, strategy, split)
    return row["id"] if row else None


def gain(path: str, run_id: str, baseline_id: str, split: str = "test") -> dict | None:
    """`run_id`'s EM over `baseline_id` on `split` as retrieval + reading (harness.evaluation.decompose);
    None when they were not scored on the same questions or have no context labels."""
    if not same_questions(path, run_id, baseline_id, split):
        return None
    return decompose(split_metrics(path, run_id).get(split, {}), split_metrics(path, baseline_id).get(split, {}))


# -- studies (harness study) ----------------------------------------------------------------------
@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def study_report(path: str, name: str, scale: str) -> dict:
    """`harness study report NAME --scale SCALE --format json`, from this store."""
    from harness.study import get_study
    from harness.study import study_report as report

    return report(get_study(name).at_scale(scale), reader(path))


def studies() -> dict[str, list[str]]:
    """Registered study name -> its scales (full first)."""
    from harness import plugins

    plugins.load_plugins()
    return {name: ["full", *study.scales] for name, study in sorted(plugins.studies().items.items())}
