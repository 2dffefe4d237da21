"""Kills at random moments: real `harness run` processes on the tiny models, killed with SIGKILL (nothing
runs after it) and SIGTERM (what `timeout`, Slurm preemption and `docker stop` send), 10 of each, spread
over a run's whole life (start-up, model load, training, evaluation, storing). After every kill: the store
opens, the earlier finished run is unchanged, the killed run is neither `finished` (unless it had completed
before the signal landed, whole) nor left `running`; at the end an identical run works."""

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.store.db import Store
from harness.store.folder import STATUS_FILE, read_finished
from tests.conftest import tiny_run_args

ROOT = Path(__file__).resolve().parents[3]
KILLS_PER_SIGNAL = 10


def harness_process(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HARNESS_HEARTBEAT_SECONDS": "1"}
    return subprocess.Popen([sys.executable, "-c", "from harness.cli import main; main()", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def snapshot(store: Store, run_id: str) -> tuple:
    return (store.find_run(run_id)["status"], store.run_metrics(run_id), len(store.run_predictions(run_id)))


def check_killed_run(store: Store, run_ids_before: set[str]) -> str:
    """The killed run's status as readers show it; a `finished` one must be whole (it completed first)."""
    new = [r for r in store.runs() if r["id"] not in run_ids_before]
    if not new:
        return "none"  # killed before it was recorded: nothing stored, which is honest too
    [run] = new
    assert run["status"] != "running", f"killed run {run['id']} left running"
    if run["status"] == "finished":
        finished = read_finished(Path(run["folder"]))  # the folder is complete and verified
        assert len(store.run_predictions(run["id"])) == len(finished.predictions) == 4
    return run["status"]


@pytest.mark.timeout(900)
def test_runs_killed_at_random_moments_leave_an_honest_store(tiny_data):
    ft_gen = tiny_run_args(tiny_data, "ft_gen")
    started = time.monotonic()
    first = harness_process(ft_gen)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    lifetime = time.monotonic() - started
    store = Store(os.environ["HARNESS_DB"])
    [earlier] = store.runs()
    before = snapshot(store, earlier["id"])
    rng = random.Random(14)
    outcomes: dict[int, list[str]] = {signal.SIGKILL: [], signal.SIGTERM: []}
    kills = {signal.SIGKILL: 0, signal.SIGTERM: 0}
    for _ in range(3 * KILLS_PER_SIGNAL):
        if min(kills.values()) >= KILLS_PER_SIGNAL:
            break
        sig = signal.SIGKILL if kills[signal.SIGKILL] <= kills[signal.SIGTERM] else signal.SIGTERM
        ids = {r["id"] for r in store.runs()}
        proc = harness_process([*ft_gen, "--force"])
        time.sleep(rng.uniform(0.2, 0.9 * lifetime))
        if proc.poll() is not None:  # it finished before the signal: not a kill
            outcomes[sig].append("completed")
            continue
        proc.send_signal(sig)
        code = proc.wait(timeout=120)
        if code == 0:  # the signal landed after the run was stored, while the process was exiting
            assert store.runs()[-1]["status"] == "finished"
            outcomes[sig].append("completed")
            continue
        err = proc.stderr.read()
        status = check_killed_run(store, ids)
        if status == "none" and sig == signal.SIGTERM:
            # landed before the run was recorded, e.g. while torch was importing: the exit is then torch's
            # (seen: 1 with a RuntimeError, -6 from a C++ abort); nothing is stored, which is what matters here
            assert code != 0
        else:
            assert code in (-sig, 128 + sig, 130), (sig, code, err[-2000:])
        outcomes[sig].append(status)
        kills[sig] += 1
        assert snapshot(store, earlier["id"]) == before
    print({signal.Signals(s).name: o for s, o in outcomes.items()})
    assert min(kills.values()) >= KILLS_PER_SIGNAL
    assert "interrupted" in outcomes[signal.SIGKILL] and "interrupted" in outcomes[signal.SIGTERM]
    rerun = harness_process([*ft_gen, "--force"])
    assert rerun.wait(timeout=300) == 0
    assert [r["status"] for r in store.runs()][-1] == "finished"


def finished_folders(runs: Path) -> set[str]:
    """Run folders whose status.json says finished (the run's last write)."""
    done = set()
    for status in runs.glob(f"*/{STATUS_FILE}"):
        with contextlib.suppress(ValueError, OSError):
            if json.loads(status.read_text())["status"] == "finished":
                done.add(status.parent.name)
    return done


@pytest.mark.timeout(900)
def test_a_grid_driver_killed_mid_grid_reruns_only_the_unfinished_cells(tiny_data):
    """SIGKILL the local grid driver once its first cell is stored; the same command then runs only the
    cells that had not finished, under the same grid id, and the finished cell is not run again."""
    grid = ["grid", *tiny_run_args(tiny_data, "ft_gen")[1:], "--gen-lr", "1e-4,3e-4,1e-3"]
    runs = Path(os.environ["HARNESS_RUNS"])
    driver = harness_process(grid)
    deadline = time.monotonic() + 300
    while not finished_folders(runs) and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert driver.poll() is None, "the grid ended before a cell finished: nothing was killed mid-grid"
    driver.send_signal(signal.SIGKILL)
    assert driver.wait(timeout=60) == -signal.SIGKILL
    killed_with = finished_folders(runs)
    store = Store(os.environ["HARNESS_DB"])
    stored_before = {r["id"] for r in store.runs() if r["status"] == "finished"}
    assert 1 <= len(killed_with) < 3 and stored_before <= killed_with

    rerun = subprocess.run([sys.executable, "-c", "from harness.cli import main; main()", *grid], timeout=600,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    finished = [r for r in store.runs() if r["status"] == "finished"]
    assert len(finished) == 3 and len({r["grid_id"] for r in finished}) == 1  # one grid, every cell once
    assert {r["id"] for r in finished} >= stored_before  # the cells stored before the kill were kept...
    assert rerun.stdout.count("skipped") >= len(stored_before)  # ...and not run again
    assert not [r for r in store.runs() if r["status"] == "running"]  # the cell the kill cut reads interrupted
