"""The store: run lifecycle, one-transaction finish, lock handling with a clear error, and the read-only
store the dashboard reads through (never migrates or writes; busy or unreadable is one line)."""

import contextlib
import hashlib
import subprocess
import sys
import textwrap

import duckdb
import pytest

from harness.errors import UserError
from harness.store.db import Store, StoreBusy, StoreState, StoreUnreadable, finished_where

CONFIG = {"strategy": "no_ft", "dataset": "d", "embedder": "e", "generator": "g", "seed": 0}


def test_lifecycle_running_then_finished(store):
    store.start_run("r1", "key1", CONFIG, {"git_sha": "abc"})
    assert store.find_run("r1")["status"] == "running"
    assert store.finished_run_with_key("key1") is None
    store.finish_run("r1", [("test", "em", 50.0)], [])
    assert store.find_run("r1")["status"] == "finished"
    assert store.finished_run_with_key("key1") == "r1"
    assert store.run_metrics("r1") == {"test": {"em": 50.0}}


def test_metrics_added_to_a_finished_run_replace_their_names_and_keep_the_rest(store):
    store.start_run("r3", "key3", CONFIG, {})
    store.finish_run("r3", [("test", "em", 50.0)], [])
    store.add_metrics("r3", [("lm_eval", "t/acc_base", 0.25), ("lm_eval", "t/acc_tuned", 0.5)])
    store.add_metrics("r3", [("lm_eval", "t/acc_tuned", 0.75)])
    assert store.run_metrics("r3") == {"test": {"em": 50.0}, "lm_eval": {"t/acc_base": 0.25, "t/acc_tuned": 0.75}}
    with pytest.raises(duckdb.Error):  # one transaction: a bad row leaves the good ones unwritten
        store.add_metrics("r3", [("lm_eval", "u/acc_base", 0.5), ("lm_eval",)])
    assert "u/acc_base" not in store.run_metrics("r3")["lm_eval"]


def test_failed_finish_writes_nothing(store):
    store.start_run("r2", "key2", CONFIG, {})
    bad_prediction = {"split": "test"}  # missing fields: the transaction must roll back
    with pytest.raises(KeyError):
        store.finish_run("r2", [("test", "em", 1.0)], [bad_prediction])
    assert store.run_metrics("r2") == {}
    assert store.find_run("r2")["status"] == "running"
    store.end_run("r2", "failed", "boom")
    assert store.find_run("r2")["error"] == "boom"


def test_unknown_and_ambiguous_run_ids(store):
    store.start_run("abc1", "k", CONFIG, {})
    store.start_run("abc2", "k", CONFIG, {})
    with pytest.raises(UserError, match="matches 2 runs"):
        store.find_run("abc")
    with pytest.raises(UserError, match="no run with id"):
        store.find_run("zzz")


@contextlib.contextmanager
def writer_holding_lock(path):
    """Another process with the database open for writing (creating it if it is not there)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(path)!r}); con.execute("CREATE TABLE IF NOT EXISTS t (x INT)")
            print("ready", flush=True); time.sleep(30)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        yield
    finally:
        holder.kill()
        holder.wait()


def test_locked_database_retries_then_says_so(tmp_path):
    path = tmp_path / "locked.duckdb"
    with writer_holding_lock(path):
        with pytest.raises(UserError, match="locked by another process"):
            Store(str(path), lock_timeout=0.5).start_run("r", "k", CONFIG, {})
    Store(str(path), lock_timeout=5).start_run("r", "k", CONFIG, {})  # free again: works


# -- the read-only store ------------------------------------------------------------------------
def reader(path) -> Store:
    return Store(str(path), lock_timeout=0.5, read_only=True)


def finished(store: Store, run_id: str, strategy: str = "no_ft", questions: tuple = ("q1", "q2"), **config) -> None:
    """A finished run with a test EM and one prediction per question (its evaluation set)."""
    store.start_run(run_id, f"key-{run_id}", {**CONFIG, "strategy": strategy, **config}, {})
    predictions = [{"split": "test", "example_id": q, "question": f"{q}?", "prediction": "a", "golds": ["a"],
                    "gold_passage_ids": [], "retrieved_ids": [], "em": 1.0, "f1": 1.0, "hit": 0.0, "answer_hit": 0.0}
                   for q in questions]
    store.finish_run(run_id, [("test", "em", 100.0), ("test", "n", len(questions))], predictions)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_read_only_store_reads_what_the_store_wrote(store):
    finished(store, "r1", embed_lr=1e-5)
    finished(store, "r2", strategy="ft_gen", dataset="other")
    assert reader(store.path).finished_runs() == store.finished_runs()
    [run] = reader(store.path).finished_runs([("dataset", ["d"]), ("strategy", [])])
    assert run["id"] == "r1" and run["embed_lr"] == 1e-5 and run["gen_lr"] is None and run["test/em"] == 100.0
    assert run["eval_set/test"].startswith("es-")
    assert reader(store.path).state() == StoreState("ok")


def test_a_read_only_store_never_migrates_or_writes(tmp_path):
    old = tmp_path / "old.duckdb"  # a store from before the first migration: a writer would migrate it
    con = duckdb.connect(str(old))
    con.execute("CREATE TABLE _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
    con.close()
    before = digest(old)
    assert reader(old).state() == StoreState("outdated", "none")
    with pytest.raises(duckdb.CatalogException, match="runs"):
        reader(old).finished_runs()
    assert digest(old) == before and not old.with_suffix(".duckdb.wal").exists()
    missing = tmp_path / "missing.duckdb"
    assert reader(missing).state() == StoreState("missing")
    with pytest.raises(StoreUnreadable, match=f"cannot open database {missing}"):
        reader(missing).finished_runs()
    assert not missing.exists()


def test_a_read_only_connection_cannot_write_or_reach_outside(store):
    finished(store, "r1")
    with reader(store.path).transaction() as con:
        with pytest.raises(duckdb.Error, match="read-only|Cannot execute"):
            con.execute("DELETE FROM runs")
        with pytest.raises(duckdb.Error, match="disabled|Permission"):
            con.execute("SELECT * FROM read_csv('/etc/hostname')")
        with pytest.raises(duckdb.Error, match="configuration"):
            con.execute("SET enable_external_access = true")


def test_what_a_reader_finds_that_is_not_a_store_is_one_line(tmp_path):
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE something (x INTEGER)")
    con.close()
    assert reader(other).state() == StoreState("foreign")
    junk = tmp_path / "junk.duckdb"
    junk.write_text("this is not a database\n" * 100)
    with pytest.raises(StoreUnreadable, match=f"cannot open database {junk}: .*not a valid DuckDB") as info:
        reader(junk).state()
    assert len(str(info.value).splitlines()) == 1
    with pytest.raises(StoreUnreadable, match=f"cannot open database {tmp_path}"):  # a folder
        reader(tmp_path).state()


def test_a_writer_makes_a_reader_busy_until_it_lets_go(tmp_path):
    """DuckDB lets no reader beside a writer (another process), so a reader waits, then says busy."""
    path = tmp_path / "harness.duckdb"
    Store(str(path)).check()
    with writer_holding_lock(path):
        with pytest.raises(StoreBusy):
            reader(path).state()
    assert reader(path).state() == StoreState("empty")


def test_filter_columns_come_from_an_allowlist_and_values_are_bound():
    with pytest.raises(ValueError, match="cannot filter on 'id; DROP TABLE runs'"):
        finished_where([("id; DROP TABLE runs", ("x",))])
    where, params = finished_where([("dataset", ("tiny", "x' OR '1'='1")), ("strategy", ())])
    assert where == "r.status = 'finished' AND r.dataset IN (?, ?)" and params == ["tiny", "x' OR '1'='1"]


def test_the_baseline_is_the_newest_other_run_on_the_same_questions_and_models(store):
    finished(store, "base_old")
    finished(store, "tuned", strategy="ft_gen")
    finished(store, "base_new")
    finished(store, "base_fewer", questions=("q1",))  # another evaluation set
    finished(store, "base_other_model", generator="g2")
    assert store.baseline_run("tuned", "no_ft")["id"] == "base_new"
    assert store.baseline_run("base_new", "no_ft")["id"] == "base_old"  # never the run itself
    assert store.baseline_run("base_fewer", "no_ft") is None
    assert reader(store.path).baseline_run("tuned", "no_ft")["id"] == "base_new"
