"""The store: run lifecycle, one-transaction finish, lock handling with a clear error."""

import subprocess
import sys
import textwrap

import duckdb
import pytest

from harness.errors import UserError
from harness.store.db import Store

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


def test_locked_database_retries_then_says_so(tmp_path):
    path = tmp_path / "locked.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, sys, time
            con = duckdb.connect({str(path)!r}); con.execute("CREATE TABLE t (x INT)")
            print("ready", flush=True); time.sleep(30)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(UserError, match="locked by another process"):
            Store(str(path), lock_timeout=0.5).start_run("r", "k", CONFIG, {})
    finally:
        holder.kill()
        holder.wait()
    Store(str(path), lock_timeout=5).start_run("r", "k", CONFIG, {})  # free again: works
