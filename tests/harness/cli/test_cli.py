"""The CLI end to end on the tiny models, and every bad input: one clear line, exit code 2, nothing lost."""

import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.store.db import Store
from tests.conftest import run_cli, tiny_run_args


def db() -> Store:
    return Store(os.environ["HARNESS_DB"])


def test_no_ft_end_to_end_stores_everything(tiny_data, capsys):
    assert run_cli(tiny_run_args(tiny_data)) == 0
    [run] = db().query("SELECT * FROM runs")
    assert run["status"] == "finished" and run["strategy"] == "no_ft" and run["error"] is None
    assert json.loads(run["config"])["embedder"] == "tiny-embedder"
    metrics = db().run_metrics(run["id"])
    for split in ("dev", "test"):
        assert {"em", "f1", "recall@5", "answer_recall@5", "em_low", "em_high", "eval_seconds"} <= set(metrics[split])
        assert metrics[split]["n"] == 2
    assert {"fit_seconds", "peak_memory_mb", "gpu_hours", "trained_tokens"} <= set(metrics["cost"])
    preds = db().run_predictions(run["id"])
    assert len(preds) == 4
    # the tiny corpus has 10 passages and k=5: each question retrieves 5 distinct passage ids
    assert all(len(set(json.loads(p["retrieved_ids"]))) == 5 for p in preds)
    hits = [p["hit"] for p in preds]
    expected = [float(bool(set(json.loads(p["retrieved_ids"])) & set(json.loads(p["gold_passage_ids"])))) for p in preds]
    assert hits == expected
    assert "finished" in capsys.readouterr().out


def test_identical_rerun_is_skipped_unless_forced(tiny_data, capsys):
    assert run_cli(tiny_run_args(tiny_data)) == 0
    assert run_cli(tiny_run_args(tiny_data)) == 0
    assert "already stored" in capsys.readouterr().out
    assert len(db().query("SELECT id FROM runs")) == 1
    assert run_cli(tiny_run_args(tiny_data, "no_ft", "--force")) == 0
    assert run_cli(tiny_run_args(tiny_data, "no_ft", "--seed", "1")) == 0
    assert len(db().query("SELECT id FROM runs WHERE status = 'finished'")) == 3


def test_leaderboard_and_show(tiny_data, capsys):
    assert run_cli(tiny_run_args(tiny_data)) == 0
    run_id = db().query("SELECT id FROM runs")[0]["id"]
    capsys.readouterr()
    assert run_cli(["leaderboard"]) == 0
    assert run_id in capsys.readouterr().out
    assert run_cli(["show", run_id[:6]]) == 0
    out = capsys.readouterr().out
    assert "What is the highest mountain?" in out and "tiny-llama" in out


def test_empty_leaderboard_says_what_to_do(capsys):
    assert run_cli(["leaderboard"]) == 0
    assert "harness run" in capsys.readouterr().out


@pytest.mark.parametrize("command", [[], ["run"], ["plugins"], ["list"], ["leaderboard"], ["show"], ["migrate"]])
def test_every_command_explains_itself(command, capsys):
    assert run_cli([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage:" in out and len(out.splitlines()) > 3


def assert_one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_locked_database_is_reported(tiny_data, capsys, monkeypatch):
    path = os.environ["HARNESS_DB"]
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import duckdb, time
            con = duckdb.connect({path!r}); con.execute("CREATE TABLE t (x INT)")
            print("ready", flush=True); time.sleep(60)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        from harness.cli import common  # the store the command opens gives up after 0.5 s instead of 30 s

        monkeypatch.setattr(common, "Store", functools.partial(common.Store, lock_timeout=0.5))
        assert run_cli(tiny_run_args(tiny_data)) == 2
        assert_one_line_error(capsys, "locked by another process")
    finally:
        holder.kill()
        holder.wait()


STRATEGY_FILE = '''
from harness.hookspecs import hookimpl

class {cls}:
    name = "{name}"
    citation = ""
    needs_context_labels = False
    description = "test double"
    learning_rates = dict()
    def fit(self, ctx):
        ctx.log(0, loss=1.0)
        raise {exc}

@hookimpl
def register_strategies(register):
    register({cls})
'''


def test_ctrl_c_leaves_interrupted_and_keeps_earlier_runs(clean_plugins, tiny_data, tmp_path, capsys):
    assert run_cli(tiny_run_args(tiny_data)) == 0  # an earlier, finished run
    plugin_dir = tmp_path / "p"
    plugin_dir.mkdir()
    (plugin_dir / "interrupting.py").write_text(
        STRATEGY_FILE.format(cls="Interrupting", name="interrupting", exc="KeyboardInterrupt"))
    code = run_cli(["--plugins-dir", str(plugin_dir), *tiny_run_args(tiny_data, "interrupting")])
    assert code == 130
    runs = {r["strategy"]: r for r in db().query("SELECT * FROM runs")}
    assert runs["interrupting"]["status"] == "interrupted"
    assert runs["no_ft"]["status"] == "finished" and db().run_metrics(runs["no_ft"]["id"])["test"]
    assert db().run_metrics(runs["interrupting"]["id"]) == {}  # never a half-written result
    assert db().query("SELECT * FROM train_log WHERE run_id = ?", [runs["interrupting"]["id"]])  # log flushed


def test_failing_strategy_is_stored_failed_and_named(clean_plugins, tiny_data, tmp_path, capsys):
    plugin_dir = tmp_path / "q"
    plugin_dir.mkdir()
    (plugin_dir / "exploding.py").write_text(
        STRATEGY_FILE.format(cls="Exploding", name="exploding", exc="RuntimeError('boom')"))
    assert run_cli(["--plugins-dir", str(plugin_dir), *tiny_run_args(tiny_data, "exploding")]) == 1
    err = capsys.readouterr().err
    assert "strategy 'exploding' (plugin harness_local_exploding) raised RuntimeError: boom" in err
    [run] = db().query("SELECT * FROM runs")
    assert run["status"] == "failed" and "boom" in run["error"]


def test_corpus_limit_keeps_first_passages_and_gold_ones(tiny_data, tiny_data_unlabelled):
    from harness.builtins.datasets.local import load
    from harness.data.splits import limit_corpus
    from harness.types import DatasetOptions

    labelled = limit_corpus(load(DatasetOptions(data_dir=str(tiny_data), limit=1)), 2)
    # first 2 passages + the gold passages of the first train/dev/test example (p0, p6, p8)
    assert [labelled.corpus[i].id for i in range(len(labelled.corpus))] == ["p0", "p1", "p6", "p8"]
    assert run_cli(tiny_run_args(tiny_data_unlabelled, "no_ft", "--corpus-limit", "3", "-k", "2")) == 0
    preds = db().run_predictions(db().query("SELECT id FROM runs")[0]["id"])
    assert all(set(json.loads(p["retrieved_ids"])) <= {"p0", "p1", "p2"} for p in preds)
    assert all(p["hit"] is None for p in preds)  # no context labels: recall@k is not computed


def test_database_is_not_held_open_during_fit(clean_plugins, tiny_data, tmp_path):
    """While a strategy trains, another process can open the store (the dashboard's situation)."""
    plugin_dir = tmp_path / "r"
    plugin_dir.mkdir()
    (plugin_dir / "probing.py").write_text(textwrap.dedent('''
        import os, subprocess, sys
        from harness.hookspecs import hookimpl

        class Probing:
            name = "probing"
            citation = ""
            needs_context_labels = False
            description = "test double"
            learning_rates = {}
            def fit(self, ctx):
                code = "import duckdb, os; duckdb.connect(os.environ['HARNESS_DB'], read_only=True).close()"
                subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
                ctx.log(0, probe_ok=1.0)

        @hookimpl
        def register_strategies(register):
            register(Probing)
    '''))
    assert run_cli(["--plugins-dir", str(plugin_dir), *tiny_run_args(tiny_data, "probing")]) == 0
    [run] = db().query("SELECT * FROM runs")
    assert run["status"] == "finished"
    assert db().query("SELECT value FROM train_log WHERE name = 'probe_ok'")[0]["value"] == 1.0


def test_list_strategies_verbose_shows_set_options(capsys):
    assert run_cli(["list", "strategies", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "proposals=8" in out and "MIS proposals" in out  # jsa_rag's Options, with their help


def test_a_training_run_prints_no_third_party_noise(tiny_data):
    """A LoRA run from the real entry point: no library deprecation warnings or optional-kernel notices
    (peft's `is_gradient_checkpointing` read, bitsandbytes' missing CPU kernel) reach the user."""
    done = subprocess.run([str(Path(sys.executable).parent / "harness"), *tiny_run_args(tiny_data, "ft_gen")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    for noise in ("FutureWarning", "is_gradient_checkpointing", "kernels-community", "Traceback"):
        assert noise not in output
