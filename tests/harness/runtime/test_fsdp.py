"""The generator sharded over two processes (FSDP2) trains as one process does.

Two CPU processes (torchrun, gloo) with HARNESS_FSDP=1 (accelerate has no FSDP on the CPU; on GPUs an
FSDP accelerate config does the same, docs/scaling.md): each process holds half of the generator's weights
and gathers a layer's only while it computes; LoRA adapters stay whole on every process. Per-step losses and
the trained weights equal the one-process run; every process calls the generator as often as the others
(a shorter shard makes zero-weight calls), so odd batches (3 over 2 processes, a last batch of 1) and odd
evaluation splits (7 and 3) complete, each example once, in order. A strategy that does not declare its
generator calls in step (`jsa_rag`) is refused with one line, and nothing is stored.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness.store.db import Store
from tests.conftest import run_cli
from tests.harness.runtime.test_distributed import (
    check_stored_once_in_order,
    compare,
    launch_in_fresh_folder,
    launch_two_processes,
    nodrop_plugins_dir,
    run_args,
    stored_run,
    write_odd_dataset,
)

pytestmark = pytest.mark.xdist_group("processes")  # as test_distributed.py: one 2-process launch at a time

SHARDED = {"ft_gen": (), "rag_token": ("--batch-size", "3"), "vrag": ()}


def launch(root: Path, commands: list[list[str]], cache: Path) -> subprocess.CompletedProcess:
    return launch_two_processes(root, commands, cache, HARNESS_FSDP="1")


def sharded_strategies(root: Path) -> list[list[str]]:
    data, plugins_dir = write_odd_dataset(root / "data"), nodrop_plugins_dir(root)
    return [run_args(data, plugins_dir, name, root / f"{name}.duckdb", *extra) for name, extra in SHARDED.items()]


@pytest.fixture(scope="module")
def sharded_runs(tmp_path_factory, session_cache):
    root = launch_in_fresh_folder(tmp_path_factory, "fsdp", sharded_strategies, session_cache, HARNESS_FSDP="1")
    return root, root / "data", root / "plugins"


def step_flops(db: Path) -> list[float]:
    store = Store(str(db))
    [run] = store.query("SELECT id FROM runs")
    return [r["value"] for r in store.query(
        "SELECT value FROM train_log WHERE run_id = ? AND name = 'train_flops' ORDER BY step", [run["id"]])]


@pytest.mark.parametrize("name", list(SHARDED))
def test_a_sharded_generator_trains_as_one_process(sharded_runs, tmp_path, name):
    root, data, plugins_dir = sharded_runs
    assert run_cli(run_args(data, plugins_dir, name, tmp_path / "one.duckdb", *SHARDED[name])) == 0
    one, two = stored_run(tmp_path / "one.duckdb"), stored_run(root / f"{name}.duckdb")
    loss_diff, weight_diff = compare(one, two)
    print(f"{name} under FSDP: max |loss difference| {loss_diff:.2e}, max |weight difference| {weight_diff:.2e}")
    check_stored_once_in_order(two)
    assert one["metrics"]["test"]["em"] == two["metrics"]["test"]["em"]
    # the zero-weight calls count no tokens and no FLOPs: the steps' FLOPs are one process's
    assert one["metrics"]["cost"]["trained_tokens"] == pytest.approx(two["metrics"]["cost"]["trained_tokens"], rel=1e-9)
    steps_one, steps_two = step_flops(tmp_path / "one.duckdb"), step_flops(root / f"{name}.duckdb")
    assert steps_one == pytest.approx(steps_two, rel=1e-9) and sum(steps_one) > 0
    # the run's total also holds the setup's retrieval encodes, which every process runs for itself
    assert two["metrics"]["cost"]["train_flops"] >= one["metrics"]["cost"]["train_flops"]
    store = Store(str(root / f"{name}.duckdb"))
    [held] = [r["value"] for r in store.query("SELECT value FROM train_log WHERE run_id = ? AND name = "
                                              "'generator_weights_held'", [two["id"]])]
    assert 0.45 <= held <= 0.55  # each of the 2 processes holds half of the generator's weights
    meta = json.loads((Path(store.find_run(two["id"])["folder"]) / "meta.json").read_text())
    assert meta["generator_sharded"] is True and two["processes"] == 2


def test_a_strategy_not_in_step_is_refused_with_one_line(tmp_path, session_cache, clean_plugins):
    data = write_odd_dataset(tmp_path / "data")
    plugins_dir = nodrop_plugins_dir(tmp_path)
    done = launch(tmp_path, [run_args(data, plugins_dir, "jsa_rag", tmp_path / "jsa.duckdb")], session_cache)
    assert done.returncode != 0
    refusal = "error: strategy 'jsa_rag' does not run with the generator sharded (FSDP)"
    assert done.stderr.count(refusal) == 2, done.stderr[-3000:]  # one line from each process
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing stored


def test_4bit_weights_with_fsdp_are_refused_with_one_line(tmp_path, session_cache, clean_plugins):
    data = write_odd_dataset(tmp_path / "data")
    plugins_dir = nodrop_plugins_dir(tmp_path)
    done = launch(tmp_path, [run_args(data, plugins_dir, "ft_gen", tmp_path / "q.duckdb", "--quantize", "4bit")],
                  session_cache)
    assert done.returncode != 0
    assert done.stderr.count("error: --quantize 4bit with the generator sharded (FSDP)") == 2, done.stderr[-3000:]
