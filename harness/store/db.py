"""The DuckDB store: every run, its metrics, predictions, training log and artifacts.

DuckDB allows one writing process and no reader beside it, so the store never keeps the database open:
each call opens it, writes in one transaction and closes it, retrying with backoff while another
process holds the lock. The schema lives in `harness.migrations` and nowhere else.

`Store(path, read_only=True)` is how the dashboard reads: each call opens the file read-only (external
access and extension loading off, configuration locked), never migrates or writes, and raises `StoreBusy`
when a writer keeps the lock past `lock_timeout`, `StoreUnreadable` when the file cannot be opened.
Identifiers in SQL (filter columns) come only from allowlists; every value is a bound parameter.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from harness import env
from harness.config import SPLITS
from harness.errors import UserError
from harness.store.folder import FinishedRun, effective_status
from harness.store.migrations import MIGRATIONS, evaluation_set_rows, latest_migration, migrate
from harness.store.schema import MAX_LINE_BYTES

DEFAULT_DB = "harness.duckdb"
READ_ONLY_CONFIG = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "lock_configuration": True,
}
FILTER_COLUMNS = ("dataset", "embedder", "generator", "strategy")  # the only columns runs are filtered on
Filters = Sequence[tuple[str, Sequence[str]]]  # column -> the values it may take (none: any)


class StoreBusy(Exception):
    """Another process holds the store's write lock."""


class StoreUnreadable(Exception):
    """The store cannot be opened (not a DuckDB file, no permission...)."""


@dataclass(frozen=True)
class StoreState:
    """What a reader finds at the store path: `kind` is ok, missing, foreign, outdated, too_new or empty."""

    kind: str
    detail: str = ""


def default_db_path() -> str:
    return env.db_path(DEFAULT_DB)


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflicting" in text or "resource temporarily unavailable" in text


def connect_with_retry(path: str, read_only: bool = False, timeout: float = 30.0, **config: Any) -> duckdb.DuckDBPyConnection:
    """Open `path`, retrying with exponential backoff while another process holds the lock."""
    delay, deadline = 0.05, time.monotonic() + timeout
    while True:
        try:
            return duckdb.connect(path, read_only=read_only, config=config)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if not _is_lock_error(exc):
                raise UserError(f"cannot open database {path}: {exc}") from exc
            if time.monotonic() >= deadline:
                raise UserError(
                    f"database {path} is locked by another process (waited {timeout:.0f}s); "
                    "wait for it to finish or use --db to pick another file"
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        except duckdb.Error as exc:
            raise UserError(f"cannot open database {path}: {exc}") from exc


def connect_read_only(path: str, timeout: float) -> duckdb.DuckDBPyConnection:
    """A read-only connection (READ_ONLY_CONFIG), waiting up to `timeout` seconds for a writer to let go."""
    try:
        return connect_with_retry(path, read_only=True, timeout=timeout, **READ_ONLY_CONFIG)
    except UserError as exc:
        if "lock" in str(exc.__cause__ or exc).lower():
            raise StoreBusy(path) from exc
        raise StoreUnreadable(str(exc)) from exc


def check_db_path(path: str) -> None:
    """A store path must be a file whose folders are folders: say so before anything runs."""
    if path == ":memory:":
        return
    target = Path(path)
    try:
        if target.is_dir():
            raise UserError(f"--db {path} is a folder; give a file path, e.g. {target / DEFAULT_DB}")
        for parent in target.parents:
            if parent.exists() and not parent.is_dir():
                raise UserError(f"--db {path}: {parent} is a file, not a folder; give a path in a folder")
    except PermissionError as exc:
        raise UserError(f"--db {path}: {exc.filename or target.parent} cannot be entered (permission denied); "
                        "give a path in a folder you can write to") from None


@contextlib.contextmanager
def _damage_is_user_error(path: str) -> Iterator[None]:
    """A truncated or damaged database file fails on read, not only on open: one line, not a traceback."""
    try:
        yield
    except (duckdb.IOException, duckdb.SerializationException) as exc:
        raise UserError(f"database {path} is damaged or truncated ({str(exc).splitlines()[0]}); "
                        "restore it from a copy or use --db to pick another file") from None


@dataclass
class Store:
    path: str
    lock_timeout: float = 30.0
    read_only: bool = False  # read, never migrate or write; the file's errors are StoreBusy / StoreUnreadable

    def __post_init__(self) -> None:
        if not self.read_only:  # a reader reports a path it cannot open as StoreUnreadable
            check_db_path(self.path)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open, migrate, run the body in one transaction, commit (or roll back), close. A read-only store
        opens the file read-only for the body and closes it: no migration, no writes."""
        if self.read_only:
            with self._reading() as con:
                yield con
            return
        if self.path != ":memory:":
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"--db {self.path}: its folder cannot be created ({exc.strerror or exc}); "
                                "give a path in a folder you can write to") from None
        con = connect_with_retry(self.path, timeout=self.lock_timeout)
        try:
            with _damage_is_user_error(self.path):
                migrate(con, f"store {self.path}")
            con.execute("BEGIN TRANSACTION")
            try:
                with _damage_is_user_error(self.path):
                    yield con
            except BaseException:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        finally:
            con.close()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = connect_read_only(self.path, self.lock_timeout)
        try:
            yield con
        finally:
            con.close()

    def check(self) -> None:
        """Open the store once: a damaged file or a schema from a newer harness fails here, before any work."""
        with self.transaction():
            pass

    # -- run lifecycle -------------------------------------------------------------------------
    def start_run(self, run_id: str, run_key: str, config: dict, meta: dict) -> None:
        """Record a run as `running` (with its folder, host and pid) before any model loads."""
        with self.transaction() as con:
            _insert_run(con, run_id, run_key, config, meta, "running")

    def import_runs(self, runs: Sequence[FinishedRun]) -> tuple[list[str], list[str]]:
        """Ingest finalised run folders in ONE transaction: (imported ids, ids already stored as ended).

        A run stored as `running` (this process or a lost one started it) is completed from its folder; a run
        already stored as finished, failed or interrupted is left as it is, so importing twice changes nothing."""
        imported, present = [], []
        with self.transaction() as con:
            for run in runs:
                run_id = run.meta["run_id"]
                row = con.execute("SELECT status FROM runs WHERE id = ?", [run_id]).fetchone()
                if row is not None and row[0] != "running":
                    present.append(run_id)
                    continue
                if row is None:
                    _insert_run(con, run_id, run.meta["run_key"], run.config, run.meta, run.status)
                _store_results(con, run)
                imported.append(run_id)
        return imported, present

    def finish_run(self, run_id: str, metrics: Sequence[tuple[str, str, float]], predictions: Sequence[dict]) -> None:
        """Write metrics and predictions and mark the run finished, all in one transaction."""
        with self.transaction() as con:
            if metrics:
                con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?)", [(run_id, *m) for m in metrics])
            if predictions:
                con.executemany(
                    "INSERT INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [_prediction_row(run_id, p) for p in predictions],
                )
            con.execute("UPDATE runs SET status = 'finished', finished_at = now() WHERE id = ?", [run_id])
            config, digest = con.execute("SELECT config, data_digest FROM runs WHERE id = ?", [run_id]).fetchone()
            _store_evaluation_sets(con, run_id, json.loads(config), digest, metrics)

    def add_metrics(self, run_id: str, metrics: Sequence[tuple[str, str, float]]) -> None:
        """Metrics (split, name, value) computed after a run finished (`harness lm-eval`), in one transaction;
        a metric stored again is replaced. The run's folder keeps only what its run computed."""
        with self.transaction() as con:
            con.executemany("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?)", [(run_id, *m) for m in metrics])

    def end_run(self, run_id: str, status: str, error: str | None = None) -> None:
        """Mark a run failed or interrupted, with its error. Nothing else of it is written."""
        with self.transaction() as con:
            con.execute("UPDATE runs SET status = ?, error = ?, finished_at = now() WHERE id = ?", [status, error, run_id])

    def log_steps(self, run_id: str, rows: Sequence[tuple[int, str, float, float]]) -> None:
        """Append training-log rows (step, name, value, elapsed seconds)."""
        if rows:
            with self.transaction() as con:
                con.executemany("INSERT INTO train_log VALUES (?, ?, ?, ?, ?)", [(run_id, *r) for r in rows])

    def add_artifact(self, run_id: str, kind: str, path: str, sha256: str) -> None:
        with self.transaction() as con:
            con.execute("INSERT INTO artifacts VALUES (?, ?, ?, ?, now())", [run_id, kind, path, sha256])

    def set_grid(self, run_id: str, grid_id: str) -> None:
        with self.transaction() as con:
            con.execute("UPDATE runs SET grid_id = ? WHERE id = ?", [grid_id, run_id])

    # -- reading -------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict]:
        with self.transaction() as con:
            return _rows(con, sql, params)

    def state(self) -> StoreState:
        """Is there a store at the path, with this code's schema and finished runs? Never creates one (nor, read-only,
        migrates it)."""
        if not os.path.exists(self.path):
            return StoreState("missing")
        with self.transaction() as con:
            tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            if "_migrations" not in tables:
                return StoreState("foreign" if tables else "missing")
            schema = _schema_state([row[0] for row in con.execute("SELECT name FROM _migrations ORDER BY name")
                                    .fetchall()])
            if schema.kind != "ok":
                return schema
            counts = dict(con.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall())
        if not counts.get("finished"):
            return StoreState("empty", ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
        return StoreState("ok")

    def finished_run_with_key(self, run_key: str) -> str | None:
        rows = self.query(
            "SELECT id FROM runs WHERE run_key = ? AND status = 'finished' ORDER BY started_at DESC LIMIT 1", [run_key]
        )
        return rows[0]["id"] if rows else None

    def find_run(self, run_id_prefix: str) -> dict:
        """The run whose id is `run_id_prefix` or starts with it, taken literally (no patterns), as readers
        show it (a `running` run whose process is gone reads `interrupted`)."""
        if not run_id_prefix.strip():
            raise UserError("give a run id or the first characters of one; `harness runs` lists them")
        rows = self.query("SELECT * FROM runs WHERE starts_with(id, ?) ORDER BY started_at", [run_id_prefix])
        if not rows:
            raise UserError(f"no run with id '{run_id_prefix}' in {self.path}; `harness runs` lists them")
        if len(rows) > 1:
            raise UserError(f"run id prefix '{run_id_prefix}' matches {len(rows)} runs; give more characters")
        return effective_status(rows[0])

    def runs(self, status: str | None = None) -> list[dict]:
        """Every run, oldest first, with its status as readers show it (lost runs read `interrupted`)."""
        rows = [effective_status(r) for r in self.query(
            "SELECT id, status, strategy, dataset, embedder, generator, seed, grid_id, started_at, finished_at, "
            "error, folder, host, pid FROM runs ORDER BY started_at, id")]
        return [r for r in rows if status is None or r["status"] == status]

    def run_metrics(self, run_id: str) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for row in self.query("SELECT split, name, value FROM metrics WHERE run_id = ?", [run_id]):
            out.setdefault(row["split"], {})[row["name"]] = row["value"]
        return out

    def run_predictions(self, run_id: str, limit: int | None = None) -> list[dict]:
        sql = "SELECT * FROM predictions WHERE run_id = ? ORDER BY example_id"
        return self.query(sql + (f" LIMIT {int(limit)}" if limit is not None else ""), [run_id])

    def runs_with_answer_match(self, definition: str) -> list[dict]:
        """Finished runs whose answer_hit / answer_recall were computed with `definition`."""
        return self.query("SELECT id, config FROM runs WHERE status = 'finished' AND answer_match = ? "
                          "ORDER BY started_at", [definition])

    def replace_answer_hits(self, run_id: str, hits: Sequence[tuple[str, str, float]],
                            metrics: Sequence[tuple[str, str, float]], definition: str) -> None:
        """Rescore one run in one transaction: per-example answer_hit (split, example id, value), the
        split metrics (split, name, value) and the definition they were computed with."""
        with self.transaction() as con:
            con.executemany("UPDATE predictions SET answer_hit = ? WHERE run_id = ? AND split = ? AND example_id = ?",
                            [(value, run_id, split, example_id) for split, example_id, value in hits])
            con.executemany("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?)", [(run_id, *m) for m in metrics])
            con.execute("UPDATE runs SET answer_match = ? WHERE id = ?", [definition, run_id])

    def run_artifacts(self, run_id: str) -> list[dict]:
        """The run's registered artifacts (kind, path, sha256, created_at), oldest first."""
        return self.query("SELECT kind, path, sha256, created_at FROM artifacts WHERE run_id = ? ORDER BY created_at",
                          [run_id])

    def run_grid_id(self, run_id: str) -> str | None:
        rows = self.query("SELECT grid_id FROM runs WHERE id = ?", [run_id])
        return rows[0]["grid_id"] if rows else None

    def finished_grid_runs(self, strategy: str, dataset: str, embedder: str, generator: str) -> list[dict]:
        """Finished runs of `strategy` on these data and models that belong to a grid, newest first."""
        return self.query(
            """SELECT id, grid_id, config FROM runs WHERE status = 'finished' AND strategy = ? AND dataset = ?
               AND embedder = ? AND generator = ? AND grid_id IS NOT NULL ORDER BY finished_at DESC""",
            [strategy, dataset, embedder, generator])

    def example_scores(self, run_ids: Sequence[str], split: str = "test") -> dict[str, dict[str, tuple[float, float]]]:
        """run id -> example id -> (EM, F1) in 0-100, from the stored predictions on `split`."""
        out: dict[str, dict[str, tuple[float, float]]] = {}
        if not run_ids:
            return out
        rows = self.query("SELECT run_id, example_id, 100 * em AS em, 100 * f1 AS f1 FROM predictions "
                          "WHERE split = ? AND list_contains(?, run_id)", [split, list(run_ids)])
        for row in rows:
            out.setdefault(row["run_id"], {})[row["example_id"]] = (row["em"], row["f1"])
        return out

    def run_artifact_paths(self, run_id: str) -> dict[str, str]:
        """kind -> path of the run's newest artifact of each kind, inside its run folder (unchecked;
        `harness.artifacts` verifies)."""
        rows = self.query("SELECT a.kind, a.path, r.folder FROM artifacts a JOIN runs r ON r.id = a.run_id "
                          "WHERE a.run_id = ? ORDER BY a.created_at", [run_id])
        return {row["kind"]: os.path.join(row["folder"] or "", row["path"]) for row in rows}

    def run_steps(self, run_id: str) -> list[dict]:
        """The training log of a run: step, name, value, elapsed seconds, in step order."""
        return self.query("SELECT step, name, value, elapsed FROM train_log WHERE run_id = ? ORDER BY step, name",
                          [run_id])

    def runs_of_study(self, study_id: str) -> list[dict]:
        """Every run of a study (`harness study`): its grid id is `STUDY_ID/CELL`; oldest first."""
        return self.query("SELECT id, status, grid_id, config, seed, error, started_at FROM runs "
                          "WHERE starts_with(grid_id, ?) ORDER BY started_at, id", [study_id + "/"])

    def question_scores(self, run_ids: Sequence[str], split: str, column: str) -> list[dict]:
        """run_id, example_id, v = 100 × the per-question `column` (em, f1 or hit) of the runs on `split`."""
        if column not in ("em", "f1", "hit"):
            raise ValueError(f"no per-question column {column!r}")
        return self.query(f"SELECT run_id, example_id, 100 * {column} AS v FROM predictions WHERE split = ? "
                          f"AND list_contains(?, run_id) AND {column} IS NOT NULL", [split, list(run_ids)])

    def finished_runs(self, filters: Filters = ()) -> list[dict]:
        """Every finished run (of those `filters` allow), oldest first: its `runs` row, its learning rates as
        `embed_lr` and `gen_lr`, its metrics as `split/name` and the evaluation set of each split it scored as
        `eval_set/<split>`."""
        where, params = finished_where(filters)
        with self.transaction() as con:
            runs = _rows(con, f"""SELECT r.*, TRY_CAST(r.config->>'embed_lr' AS DOUBLE) AS embed_lr,
                                  TRY_CAST(r.config->>'gen_lr' AS DOUBLE) AS gen_lr
                                  FROM runs r WHERE {where} ORDER BY r.finished_at, r.id""", params)
            values = con.execute(f"""SELECT m.run_id, m.split || '/' || m.name, m.value FROM metrics m
                                     JOIN runs r ON r.id = m.run_id WHERE {where} ORDER BY m.split, m.name""",
                                 params).fetchall()
            values += con.execute(f"""SELECT e.run_id, 'eval_set/' || e.split, e.id FROM evaluation_sets e
                                      JOIN runs r ON r.id = e.run_id WHERE {where} ORDER BY e.split""",
                                  params).fetchall()
        by_id = {run["id"]: run for run in runs}
        for run_id, key, value in values:
            by_id[run_id][key] = value
        return runs

    def baseline_run(self, run_id: str, strategy: str, split: str = "test") -> dict | None:
        """The newest finished `strategy` run other than `run_id` scored on the same `split` questions, with the
        same models."""
        rows = self.query(
            """SELECT r.* FROM runs r JOIN evaluation_sets e ON e.run_id = r.id AND e.split = ?
               JOIN runs me ON me.id = ? JOIN evaluation_sets m ON m.run_id = me.id AND m.split = ?
               WHERE r.status = 'finished' AND r.strategy = ? AND r.embedder = me.embedder
               AND r.generator = me.generator AND e.id = m.id AND r.id <> me.id
               ORDER BY r.finished_at DESC LIMIT 1""", [split, run_id, split, strategy])
        return rows[0] if rows else None

    def same_questions(self, run_a: str, run_b: str, split: str) -> bool:
        """Were both runs scored on one evaluation set of `split` (their scores compare)?"""
        sets = self.evaluation_sets([run_a, run_b])
        mine = sets.get(run_a, {}).get(split)
        return mine is not None and mine == sets.get(run_b, {}).get(split)

    def evaluation_sets(self, run_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """run id -> split -> the evaluation set its scores on that split are on."""
        out: dict[str, dict[str, str]] = {}
        if run_ids:
            for row in self.query("SELECT run_id, split, id FROM evaluation_sets WHERE list_contains(?, run_id)",
                                  [list(run_ids)]):
                out.setdefault(row["run_id"], {})[row["split"]] = row["id"]
        return out

    # -- reading for the dashboard ---------------------------------------------------------------
    def filter_options(self) -> dict[str, list[str]]:
        """FILTER_COLUMNS column -> its values over finished runs, those with the most runs first."""
        with self.transaction() as con:
            return {column: [row[0] for row in con.execute(
                f"SELECT {column} FROM runs WHERE status = 'finished' GROUP BY 1 ORDER BY count(*) DESC, 1").fetchall()]
                for column in FILTER_COLUMNS}

    def run(self, run_id: str) -> dict | None:
        """The run with exactly this id as readers show it (a lost `running` run reads `interrupted`), if any."""
        rows = self.query("SELECT * FROM runs WHERE id = ?", [run_id])
        return effective_status(rows[0]) if rows else None

    def runs_with_test_em(self) -> list[dict]:
        """Every run, newest first, as readers show it, with its test EM as `em` (None when it has none)."""
        return [effective_status(row) for row in self.query(
            """SELECT r.id, r.strategy, r.dataset, r.embedder, r.generator, r.seed, r.status, r.started_at,
                      r.folder, r.host, r.pid, m.value AS em
               FROM runs r LEFT JOIN metrics m ON m.run_id = r.id AND m.split = 'test' AND m.name = 'em'
               ORDER BY r.started_at DESC, r.id""")]

    def search_predictions(self, run_id: str, split: str, search: str = "", only_wrong: bool = False) -> list[dict]:
        """The run's predictions on `split` by example id; `search` (a bound value) matches question, prediction
        or gold answers, ignoring case; `only_wrong` keeps those with EM below 1."""
        sql = ("SELECT example_id, question, prediction, golds, em, f1, hit, answer_hit, retrieved_ids, "
               "gold_passage_ids FROM predictions WHERE run_id = ? AND split = ?")
        params: list = [run_id, split]
        if search:
            sql += (" AND (contains(lower(question), ?) OR contains(lower(prediction), ?) "
                    "OR contains(lower(golds::VARCHAR), ?))")
            params += [search.lower()] * 3
        if only_wrong:
            sql += " AND em < 1"
        return self.query(sql + " ORDER BY example_id", params)

    def paired_predictions(self, run_a: str, run_b: str, split: str) -> list[dict]:
        """The examples both runs answered on `split` (same id and question), their answers and scores side by side."""
        return self.query(
            """SELECT a.example_id, a.question, a.golds, a.prediction AS prediction_a, b.prediction AS prediction_b,
                      a.em AS em_a, b.em AS em_b, a.f1 AS f1_a, b.f1 AS f1_b
               FROM predictions a JOIN predictions b
                 ON a.example_id = b.example_id AND a.split = b.split AND a.question = b.question
               WHERE a.run_id = ? AND b.run_id = ? AND a.split = ? ORDER BY a.example_id""", [run_a, run_b, split])

    def grid_summaries(self) -> list[dict]:
        """One row per grid with finished runs: grid_id, its datasets and strategies (comma-separated), runs."""
        return self.query(
            """SELECT grid_id, string_agg(DISTINCT dataset, ', ') AS datasets,
                      string_agg(DISTINCT strategy, ', ') AS strategies, count(*) AS runs
               FROM runs WHERE grid_id IS NOT NULL AND status = 'finished' GROUP BY grid_id ORDER BY grid_id""")


def finished_where(filters: Filters) -> tuple[str, list]:
    """`r.status = 'finished' AND r.dataset IN (?, ?)...`: columns from FILTER_COLUMNS, values bound."""
    clauses, params = ["r.status = 'finished'"], []
    for column, values in filters:
        if column not in FILTER_COLUMNS:
            raise ValueError(f"cannot filter on {column!r}; allowed: {', '.join(FILTER_COLUMNS)}")
        if values:
            clauses.append(f"r.{column} IN ({', '.join('?' for _ in values)})")
            params += list(values)
    return " AND ".join(clauses), params


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[dict]:
    cur = con.execute(sql, list(params))
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]


def _schema_state(applied: list[str]) -> StoreState:
    """ok, outdated (a migration of this code was not applied) or too_new (one this code does not know)."""
    unknown = sorted(set(applied) - {m.__name__ for m in MIGRATIONS})
    if unknown:
        return StoreState("too_new", ", ".join(unknown))
    if latest_migration() not in applied:
        return StoreState("outdated", applied[-1] if applied else "none")
    return StoreState("ok")


def _insert_run(con: duckdb.DuckDBPyConnection, run_id: str, run_key: str, config: dict, meta: dict, status: str) -> None:
    con.execute(
        """INSERT INTO runs (id, run_key, grid_id, config, strategy, dataset, embedder, generator, seed, status,
           started_at, git_sha, harness_version, packages, device, device_count, folder, host, pid)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, coalesce(?, now()), ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            run_id, run_key, meta.get("grid_id"), json.dumps(config), config["strategy"], config["dataset"],
            config["embedder"], config["generator"], config["seed"], status, _local_time(meta.get("started_at")),
            meta.get("git_sha"), meta.get("harness_version"), json.dumps(meta.get("packages", {})),
            meta.get("device"), meta.get("device_count", 0), meta.get("folder"), meta.get("host"), meta.get("pid"),
        ],
    )


def _store_results(con: duckdb.DuckDBPyConnection, run: FinishedRun) -> None:
    """A run's status, metrics, predictions, training log and artifacts, from its finalised folder."""
    run_id, meta = run.meta["run_id"], run.meta
    con.execute("DELETE FROM train_log WHERE run_id = ?", [run_id])
    con.execute("DELETE FROM artifacts WHERE run_id = ?", [run_id])
    con.execute(
        """UPDATE runs SET status = ?, error = ?, finished_at = ?, folder = ?, host = ?, pid = ?, device = ?,
           device_count = ?, packages = ? WHERE id = ?""",
        [run.status, run.error, _local_time(run.finished_at), str(run.folder), meta.get("host"), meta.get("pid"),
         meta.get("device"), meta.get("device_count", 0), json.dumps(meta.get("packages", {})), run_id],
    )
    if run.metrics:
        con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?)", [(run_id, *m) for m in run.metrics])
    if "predictions.jsonl" in run.files:  # every line was checked by read_finished; DuckDB streams the file
        _insert_predictions(con, run_id, run)
    for batch in run.step_batches():
        _append(con, "train_log", STEP_COLUMNS, [(run_id, s["step"], s["name"], s["value"], s["elapsed"]) for s in batch],
                run, "steps.jsonl")
    for kind, entry in run.artifacts.items():
        con.execute("INSERT INTO artifacts VALUES (?, ?, ?, ?, ?)",
                    [run_id, kind, entry["path"], entry["sha256"], _local_time(run.finished_at)])
    _store_evaluation_sets(con, run_id, run.config, meta.get("data_digest"), run.metrics)


def _store_evaluation_sets(con: duckdb.DuckDBPyConnection, run_id: str, config: dict, digest: str | None,
                           metrics: Sequence) -> None:
    """The evaluation set of each split the run scored (harness.config.evaluation_set_id), from its stored
    predictions' ids (written just before, in the same transaction) and its metrics."""
    ids = dict(con.execute("SELECT split, list(example_id) FROM predictions WHERE run_id = ? GROUP BY split",
                           [run_id]).fetchall())
    counts: dict[str, float | None] = {}
    for split, name, value in metrics:
        if split in SPLITS and (name == "n" or split not in counts):
            counts[split] = value if name == "n" else None
    con.execute("DELETE FROM evaluation_sets WHERE run_id = ?", [run_id])
    con.execute("UPDATE runs SET data_digest = ? WHERE id = ?", [digest, run_id])
    if rows := evaluation_set_rows(run_id, config, digest, ids, counts):
        con.executemany("INSERT INTO evaluation_sets VALUES (?, ?, ?, ?)", rows)


PREDICTION_TYPES = {"split": "VARCHAR", "example_id": "VARCHAR", "question": "VARCHAR", "prediction": "VARCHAR",
                    "golds": "JSON", "gold_passage_ids": "JSON", "retrieved_ids": "JSON", "em": "DOUBLE",
                    "f1": "DOUBLE", "hit": "DOUBLE", "answer_hit": "DOUBLE"}
STEP_COLUMNS = {"run_id": "string", "step": "int32", "name": "string", "value": "float64", "elapsed": "float64"}


def _insert_predictions(con: duckdb.DuckDBPyConnection, run_id: str, run: FinishedRun) -> None:
    """predictions.jsonl into the store, read by DuckDB itself in one streamed statement (10^6 rows in bounded
    memory: bench/bench_import.py). read_finished has checked every line against the folder format first."""
    columns = "{" + ", ".join(f"{name}: '{kind}'" for name, kind in PREDICTION_TYPES.items()) + "}"
    try:
        with tempfile.TemporaryDirectory(prefix="harness-import-") as tmp:
            link = Path(tmp) / "predictions.jsonl"  # DuckDB reads a path as a glob: a folder named `a*[b]` must not
            link.symlink_to(run.folder / "predictions.jsonl")  # match other files, so it reads a plain name
            con.execute(f"INSERT INTO predictions SELECT ?, {', '.join(PREDICTION_TYPES)} FROM read_json(?, "
                        f"format = 'newline_delimited', columns = {columns}, maximum_object_size = {MAX_LINE_BYTES})",
                        [run_id, str(link)])
    except duckdb.ConstraintException as exc:
        raise UserError(f"run folder {run.folder}: predictions.jsonl has a duplicate (split, example_id): "
                        f"{str(exc).splitlines()[0][:200]}; refused") from None
    except (duckdb.InvalidInputException, duckdb.ConversionException, duckdb.OutOfRangeException) as exc:
        # e.g. a key twice in one line (the line says two things), a number DuckDB cannot hold
        raise UserError(f"run folder {run.folder}: predictions.jsonl cannot be stored as it is: "
                        f"{str(exc).splitlines()[0][:200]}; refused") from None


def _append(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str], rows: list[tuple],
            run: FinishedRun, file: str) -> None:
    """Insert one batch of rows through Arrow (one columnar insert, not a statement per row); text that is not
    Unicode is one line naming the file."""
    import pyarrow as pa

    try:
        batch = pa.table({name: pa.array([row[i] for row in rows], type=kind)
                          for i, (name, kind) in enumerate(columns.items())})
    except (UnicodeError, pa.ArrowException) as exc:
        raise UserError(f"run folder {run.folder}: {file} holds a value that cannot be stored ({exc}); refused") from None
    con.register("_harness_batch", batch)
    try:
        con.execute(f"INSERT INTO {table} SELECT * FROM _harness_batch")
    finally:
        with contextlib.suppress(duckdb.Error):
            con.unregister("_harness_batch")


def _local_time(iso: str | None) -> dt.datetime | None:
    """An ISO time with zone (as run folders write them) as the store's naive local timestamp."""
    return dt.datetime.fromisoformat(iso).astimezone().replace(tzinfo=None) if iso else None


def _prediction_row(run_id: str, p: dict) -> tuple:
    return (
        run_id, p["split"], p["example_id"], p["question"], p["prediction"], json.dumps(p["golds"]),
        json.dumps(p["gold_passage_ids"]), json.dumps(p["retrieved_ids"]), p["em"], p["f1"], p["hit"], p["answer_hit"],
    )
