"""The harness against itself: a second `harness grid` driver of the same plan on the same store refuses in one
line naming the first (no cell runs twice), and the lock goes when its holder's process dies."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.grid.lock import grid_lock, lock_path
from harness.store.db import Store
from tests.conftest import run_cli, tiny_run_args

SLOW_STRATEGY = """
import time
from harness import hookimpl

class Slow:
    name = "slow"
    citation = ""
    description = "a test strategy that takes its time"
    needs_context_labels = False
    learning_rates = {"gen_lr": 1e-3}

    def fit(self, ctx):
        ctx.log(1, loss=1.0)
        time.sleep(3)

@hookimpl
def register_strategies(register):
    register(Slow)
"""

HOLD = """
import sys, time
from harness.grid.lock import grid_lock
from harness.store.db import Store
with grid_lock(Store(sys.argv[1]), "grid-0123456789ab"):
    print("held", flush=True)
    time.sleep(120)
"""


def wait_for(condition, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_the_lock_names_its_holder_and_goes_with_its_process(tmp_path):
    store = Store(str(tmp_path / "harness.duckdb"))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, store.path], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=f"already running on store .*driver pid {holder.pid} on "):
            with grid_lock(store, "grid-0123456789ab"):
                pass
        with grid_lock(store, "grid-other"):  # another grid on the same store is not held up
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with grid_lock(store, "grid-0123456789ab"):  # killed: its lock went with it
        assert lock_path(store, "grid-0123456789ab").exists()


def test_two_drivers_of_one_grid_on_one_store_never_run_a_cell_twice(tiny_data, tmp_path, capsys):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "slow.py").write_text(SLOW_STRATEGY)
    args = ["--plugins-dir", str(tmp_path / "plugins"), "grid", *tiny_run_args(tiny_data, "slow")[1:],
            "--gen-lr", "1e-4,1e-3"]
    db_dir = Path(os.environ["HARNESS_DB"]).parent
    first = subprocess.Popen([sys.executable, "-m", "harness", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(p.stat().st_size for p in db_dir.glob(".harness.duckdb.grid-*.lock")))
        assert run_cli(args) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and f"driver pid {first.pid}" in err, err
        out, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    runs = Store(os.environ["HARNESS_DB"]).query("SELECT run_key FROM runs")
    assert len(runs) == 2 and len({r["run_key"] for r in runs}) == 2
    assert run_cli(args) == 0 and "skipped" in capsys.readouterr().out  # the lock went with the first driver
    assert len(Store(os.environ["HARNESS_DB"]).query("SELECT id FROM runs")) == 2
