"""The dashboard's one data-access module: short-lived, read-only DuckDB connections.

DuckDB lets one process write and no other read beside it, so every read opens the store read-only
(external access and extension loading off, configuration locked), runs its queries and closes at once:
a held connection would block `harness run`. While a writer holds the lock a read waits briefly, then
raises `StoreBusy`; pages show a "store busy, retrying" notice. The dashboard never writes.

Identifiers in SQL (filter columns, sort keys, metric names) come only from the allowlists below; every
value is a bound parameter. Results are cached for `TTL_SECONDS`, keyed by the store path.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import streamlit as st

from harness.errors import UserError
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
from harness.store.db import DEFAULT_DB, Store, connect_with_retry
from harness.store.folder import effective_status
from harness.store.migrations import MIGRATIONS, latest_migration

TTL_SECONDS = 5
LOCK_WAIT_SECONDS = 1.5
READ_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}

# Allowlists: the only identifiers that ever reach SQL or a sort.
FILTER_COLUMNS = ("dataset", "embedder", "generator", "strategy")
SPLITS = ("test", "dev")


class StoreBusy(Exception):
    """Another process holds the store's write lock."""


class StoreUnreadable(Exception):
    """The store cannot be opened (not a DuckDB file, no permission...)."""


@dataclass(frozen=True)
class StoreState:
    """What the dashboard finds at the store path: `kind` is ok, missing, foreign, outdated, too_new or empty."""

    kind: str
    detail: str = ""


def db_path() -> str:
    """`--db PATH` after `--` on the streamlit command line, else $HARNESS_DB, else ./harness.duckdb."""
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg == "--db" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--db="):
            return arg.split("=", 1)[1]
    return os.environ.get("HARNESS_DB", DEFAULT_DB)


# -- connections -----------------------------------------------------------------------------------
@contextlib.contextmanager
def reading(path: str, wait: float = LOCK_WAIT_SECONDS) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection for the duration of one `with` block."""
    try:
        con = connect_with_retry(path, read_only=True, timeout=wait, **READ_CONFIG)
    except UserError as exc:
        if "lock" in str(exc.__cause__ or exc).lower():
            raise StoreBusy(path) from exc
        raise StoreUnreadable(str(exc)) from exc
    try:
        yield con
    finally:
        con.close()


def _frame(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence = ()) -> pd.DataFrame:
    return con.execute(sql, list(params)).df()


def store_is_free(path: str) -> bool:
    """True when a read-only connection can be opened right now."""
    try:
        with reading(path, wait=0):
            return True
    except (StoreBusy, StoreUnreadable):
        return False


def store_state(path: str) -> StoreState:
    """Is there a store at `path`, with this code's schema and finished runs? Never cached."""
    if not os.path.exists(path):
        return StoreState("missing")
    with reading(path) as con:
        tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "_migrations" not in tables:
            return StoreState("foreign" if tables else "missing")
        applied = [row[0] for row in con.execute("SELECT name FROM _migrations ORDER BY name").fetchall()]
        schema = _schema_state(applied)
        if schema.kind != "ok":
            return schema
        counts = dict(con.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall())
    if not counts.get("finished"):
        detail = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        return StoreState("empty", detail)
    return StoreState("ok")


def _schema_state(applied: list[str]) -> StoreState:
    known = [m.__name__ for m in MIGRATIONS]
    unknown = sorted(set(applied) - set(known))
    if unknown:
        return StoreState("too_new", ", ".join(unknown))
    if latest_migration() not in applied:
        return StoreState("outdated", applied[-1] if applied else "none")
    return StoreState("ok")


# -- filters and runs --------------------------------------------------------------------------------
Filters = tuple[tuple[str, tuple[str, ...]], ...]


def where_clause(filters: Filters) -> tuple[str, list]:
    """`r.status = 'finished' AND r.dataset IN (?, ?)...` from allowlisted columns, with bound values."""
    clauses, params = ["r.status = 'finished'"], []
    for column, values in filters:
        if column not in FILTER_COLUMNS:
            raise ValueError(f"cannot filter on {column!r}; allowed: {', '.join(FILTER_COLUMNS)}")
        if values:
            clauses.append(f"r.{column} IN ({', '.join('?' for _ in values)})")
            params += list(values)
    return " AND ".join(clauses), params


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def filter_options(path: str) -> dict[str, list[str]]:
    """Distinct values of each filter column over finished runs, those with the most runs first."""
    with reading(path) as con:
        return {
            column: [row[0] for row in con.execute(
                f"SELECT {column} FROM runs WHERE status = 'finished' GROUP BY 1 ORDER BY count(*) DESC, 1").fetchall()]
            for column in FILTER_COLUMNS
        }


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def finished_runs(path: str, filters: Filters = ()) -> pd.DataFrame:
    """Finished runs, oldest first, one row each: identity, seed, grid, learning rates, every metric as a
    `split/name` column and the evaluation set of each split as `eval_set/<split>`."""
    where, params = where_clause(filters)
    with reading(path) as con:
        runs = _frame(con, f"""
            SELECT r.id, r.strategy, r.dataset, r.embedder, r.generator, r.seed, r.grid_id, r.config,
                   r.finished_at, TRY_CAST(r.config->>'embed_lr' AS DOUBLE) AS embed_lr,
                   TRY_CAST(r.config->>'gen_lr' AS DOUBLE) AS gen_lr
            FROM runs r WHERE {where} ORDER BY r.finished_at, r.id""", params)
        metrics = _frame(con, f"""
            SELECT m.run_id, m.split || '/' || m.name AS key, m.value
            FROM metrics m JOIN runs r ON r.id = m.run_id WHERE {where}""", params)
        sets = _frame(con, f"""
            SELECT e.run_id, 'eval_set/' || e.split AS key, e.id
            FROM evaluation_sets e JOIN runs r ON r.id = e.run_id WHERE {where}""", params)
    wide = metrics.pivot_table(index="run_id", columns="key", values="value", aggfunc="last")
    set_columns = sets.pivot(index="run_id", columns="key", values="id") if not sets.empty else None
    runs = runs.join(wide, on="id")
    return runs if set_columns is None else runs.join(set_columns, on="id")


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


def _example_scores(path: str, run_ids: Sequence[str], split: str = "test") -> dict:
    """run id -> example id -> (EM, F1) in 0-100, on `split` (the shape harness.leaderboard.ranking takes)."""
    if not run_ids:
        return {}
    with reading(path) as con:
        frame = _frame(con, "SELECT run_id, example_id, 100 * em AS em, 100 * f1 AS f1 FROM predictions "
                            "WHERE split = ? AND list_contains(?, run_id)", [split, list(run_ids)])
    scores: dict[str, dict[str, tuple[float, float]]] = {}
    for run_id, example_id, em, f1 in frame[["run_id", "example_id", "em", "f1"]].itertuples(index=False):
        scores.setdefault(run_id, {})[example_id] = (em, f1)
    return scores


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
    rows = ranking(records, _example_scores(path, [r["id"] for r in records]), earlier_stages(), sort)
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
    """Every run, newest first, for pickers (any status)."""
    with reading(path) as con:
        frame = _frame(con, """
            SELECT r.id, r.strategy, r.dataset, r.embedder, r.generator, r.seed, r.status, r.started_at,
                   r.folder, r.host, r.pid,
                   (SELECT value FROM metrics m WHERE m.run_id = r.id AND m.split = 'test' AND m.name = 'em') AS em
            FROM runs r ORDER BY r.started_at DESC, r.id""")
    frame["status"] = [_shown_status(row) for row in frame.to_dict("records")]
    return frame.drop(columns=["folder", "host", "pid"])


def _shown_status(row: dict) -> str:
    """A `running` run whose process is gone reads `interrupted` (harness.runfolder.effective_status)."""
    return effective_status(_plain(row))["status"]


def _plain(row: dict) -> dict:
    """A pandas row as plain Python values (NaN -> None, Timestamp -> datetime)."""
    row = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
    if hasattr(row.get("started_at"), "to_pydatetime"):
        row["started_at"] = row["started_at"].to_pydatetime()
    return row


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def run_detail(path: str, run_id: str) -> dict | None:
    """One run: its `runs` row (config and packages parsed), metrics, training log and artifacts."""
    with reading(path) as con:
        runs = _frame(con, "SELECT * FROM runs WHERE id = ?", [run_id])
        if runs.empty:
            return None
        detail = runs.iloc[0].to_dict()
        detail.update({k: v for k, v in effective_status(_plain(detail)).items() if k in ("status", "error")})
        detail["config"] = json.loads(detail["config"])
        detail["packages"] = json.loads(detail["packages"]) if detail.get("packages") else {}
        detail["metrics"] = _frame(con, "SELECT split, name, value FROM metrics WHERE run_id = ? "
                                        "ORDER BY split, name", [run_id])
        detail["train_log"] = _frame(con, "SELECT step, name, value, elapsed FROM train_log WHERE run_id = ? "
                                          "ORDER BY name, step", [run_id])
        detail["artifacts"] = _frame(con, "SELECT kind, path, sha256, created_at FROM artifacts "
                                          "WHERE run_id = ? ORDER BY created_at", [run_id])
    return detail


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def predictions(path: str, run_id: str, split: str, search: str = "", only_wrong: bool = False) -> pd.DataFrame:
    """The run's per-example table on `split`; `search` matches question, prediction or gold answers
    (case-insensitive, as a bound value); retrieved ids carry ✓ where they are gold passages."""
    if split not in SPLITS + ("train",):
        raise ValueError(f"unknown split {split!r}")
    sql = ("SELECT example_id, question, prediction, golds, em, f1, hit, answer_hit, retrieved_ids, "
           "gold_passage_ids FROM predictions WHERE run_id = ? AND split = ?")
    params: list = [run_id, split]
    if search:
        sql += " AND (contains(lower(question), ?) OR contains(lower(prediction), ?) OR contains(lower(golds::VARCHAR), ?))"
        params += [search.lower()] * 3
    if only_wrong:
        sql += " AND em < 1"
    with reading(path) as con:
        frame = _frame(con, sql + " ORDER BY example_id", params)
    return _readable_predictions(frame)


def _readable_predictions(frame: pd.DataFrame) -> pd.DataFrame:
    frame["golds"] = [" | ".join(json.loads(g)) for g in frame["golds"]]
    frame["retrieved"] = [mark_gold(json.loads(r), json.loads(g))
                          for r, g in zip(frame["retrieved_ids"], frame["gold_passage_ids"])]
    frame["gold_passages"] = [", ".join(json.loads(g)) for g in frame["gold_passage_ids"]]
    return frame.drop(columns=["retrieved_ids", "gold_passage_ids"])


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
    with reading(path) as con:
        frame = _frame(con, """
            SELECT a.example_id, a.question, a.golds, a.prediction AS prediction_a, b.prediction AS prediction_b,
                   a.em AS em_a, b.em AS em_b, a.f1 AS f1_a, b.f1 AS f1_b
            FROM predictions a JOIN predictions b
              ON a.example_id = b.example_id AND a.split = b.split AND a.question = b.question
            WHERE a.run_id = ? AND b.run_id = ? AND a.split = ? ORDER BY a.example_id""", [run_a, run_b, split])
    frame["golds"] = [" | ".join(json.loads(g)) for g in frame["golds"]]
    frame["outcome"] = [_outcome(a, b) for a, b in zip(frame["em_a"], frame["em_b"])]
    return frame


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
    with reading(path) as con:
        return _frame(con, """
            SELECT grid_id, string_agg(DISTINCT dataset, ', ') AS datasets,
                   string_agg(DISTINCT strategy, ', ') AS strategies, count(*) AS runs
            FROM runs WHERE grid_id IS NOT NULL AND status = 'finished' GROUP BY grid_id ORDER BY grid_id""")


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
    with reading(path) as con:
        frame = _frame(con, "SELECT split, name, value FROM metrics WHERE run_id = ?", [run_id])
    out: dict[str, dict[str, float]] = {}
    for split, name, value in frame[["split", "name", "value"]].itertuples(index=False):
        out.setdefault(split, {})[name] = value
    return out


def same_questions(path: str, run_a: str, run_b: str, split: str) -> bool:
    """Were both runs scored on one evaluation set of `split` (harness.config.evaluation_set_id)?"""
    with reading(path) as con:
        ids = con.execute("SELECT run_id, id FROM evaluation_sets WHERE split = ? AND list_contains(?, run_id)",
                          [split, [run_a, run_b]]).fetchall()
    sets = dict(ids)
    return run_a in sets and sets.get(run_a) == sets.get(run_b)


def baseline_run(path: str, run_id: str, strategy: str = BASELINE, split: str = "test") -> str | None:
    """The newest finished `strategy` run on the same `split` questions with the same models, if any."""
    with reading(path) as con:
        row = con.execute(
            """SELECT r.id FROM runs r JOIN evaluation_sets e ON e.run_id = r.id AND e.split = ?
               JOIN runs me ON me.id = ? JOIN evaluation_sets m ON m.run_id = me.id AND m.split = ?
               WHERE r.status = 'finished' AND r.strategy = ? AND r.embedder = me.embedder
               AND r.generator = me.generator AND e.id = m.id AND r.id <> me.id
               ORDER BY r.finished_at DESC LIMIT 1""", [split, run_id, split, strategy]).fetchone()
    return row[0] if row else None


def gain(path: str, run_id: str, baseline_id: str, split: str = "test") -> dict | None:
    """`run_id`'s EM over `baseline_id` on `split` as retrieval + reading (harness.evaluation.decompose);
    None when they were not scored on the same questions or have no context labels."""
    if not same_questions(path, run_id, baseline_id, split):
        return None
    return decompose(split_metrics(path, run_id).get(split, {}), split_metrics(path, baseline_id).get(split, {}))


# -- studies (harness study) ----------------------------------------------------------------------
class ReadOnlyStore:
    """The Store methods a study report reads, over read-only connections (the dashboard never writes)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def query(self, sql: str, params: Sequence = ()) -> list[dict]:
        with reading(self.path) as con:
            return _frame(con, sql, params).to_dict("records")

    runs_of_study = Store.runs_of_study
    run_metrics = Store.run_metrics
    question_scores = Store.question_scores


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def study_report(path: str, name: str, scale: str) -> dict:
    """`harness study report NAME --scale SCALE --format json`, from this store."""
    from harness.study import get_study
    from harness.study import study_report as report

    return report(get_study(name).at_scale(scale), ReadOnlyStore(path))


def studies() -> dict[str, list[str]]:
    """Registered study name -> its scales (full first)."""
    from harness import plugins

    plugins.load_plugins()
    return {name: ["full", *study.scales] for name, study in sorted(plugins.studies().items.items())}
