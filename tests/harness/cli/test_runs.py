"""`harness runs [--status]`: every run with its status and error; a killed run reads `interrupted`."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.store.db import Store
from tests.conftest import run_cli, tiny_run_args

SLOW_STRATEGY = """
import time
from harness.hookspecs import hookimpl

class Slow:
    name = "slow"
    citation = ""
    description = "a test strategy"
    needs_context_labels = False
    learning_rates = {}

    def fit(self, ctx):
        for step in range(600):
            ctx.log(step, loss=1.0)
            time.sleep(0.1)

@hookimpl
def register_strategies(register):
    register(Slow)
"""


def test_runs_lists_every_status_with_errors(tiny_data, tmp_path, capsys, clean_plugins):
    assert run_cli(tiny_run_args(tiny_data, "no_ft")) == 0
    store = Store(os.environ["HARNESS_DB"])
    store.start_run("deadbeef0001", "k", {"strategy": "ft_gen", "dataset": "local", "embedder": "e",
                                         "generator": "g", "seed": 0}, {})
    store.end_run("deadbeef0001", "failed", "FloatingPointError: loss is nan")
    capsys.readouterr()
    assert run_cli(["runs"]) == 0
    out = capsys.readouterr().out
    assert "finished" in out and "failed" in out and "loss is nan" in out and "2 run(s)" in out
    assert run_cli(["runs", "--status", "failed"]) == 0
    out = capsys.readouterr().out
    assert "deadbeef0001" in out and "1 failed run(s)" in out
    assert run_cli(["runs", "--status", "running"]) == 0
    assert "no running runs" in capsys.readouterr().out
    assert run_cli(["runs", "--status", "lost"]) == 2


def test_a_killed_run_is_interrupted_for_every_reader(tiny_data, tmp_path, capsys):
    plugins_dir = tmp_path / "plugins"
    plugins_dir.mkdir()
    (plugins_dir / "slow.py").write_text(SLOW_STRATEGY)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3]), "HARNESS_HEARTBEAT_SECONDS": "0.5"}
    proc = subprocess.Popen([sys.executable, "-c", "from harness.cli import main; main()", "--plugins-dir",
                             str(plugins_dir), *tiny_run_args(tiny_data, "slow")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = Path(os.environ["HARNESS_RUNS"])
    deadline = time.monotonic() + 120
    while not list(runs.glob("*/steps.jsonl")) or not any(p.stat().st_size for p in runs.glob("*/steps.jsonl")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    store = Store(os.environ["HARNESS_DB"])
    assert [r["status"] for r in store.runs()] == ["running"]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    [run] = store.runs()
    assert run["status"] == "interrupted" and "is gone" in run["error"]
    capsys.readouterr()
    assert run_cli(["runs", "--status", "interrupted"]) == 0
    assert run["id"] in capsys.readouterr().out
    assert run_cli(["show", run["id"]]) == 0
    assert "interrupted" in capsys.readouterr().out
