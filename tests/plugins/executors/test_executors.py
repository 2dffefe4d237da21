"""Grids on the real engines, on this CPU: a local Ray cluster (2 CPUs) and submitit's local executor. Every
cell is stored once by the driver, the selection equals the local executor's, a raising cell is stored failed
while the others finish, a worker killed mid-cell is retried, and re-running the grid runs nothing new."""

import os
from pathlib import Path

import pytest

from harness.store.db import Store
from tests.conftest import run_cli, tiny_run_args

ray = pytest.importorskip("ray")
submitit = pytest.importorskip("submitit")
pytestmark = pytest.mark.xdist_group("ray")  # one Ray cluster at a time under pytest -n 2 (Makefile)

CELLS = ["--gen-lr", "1e-4,1e-3,1e-2,1e-1"]

FLAKY_STRATEGY = """
import os, signal
from pathlib import Path
from harness import hookimpl

class Flaky:
    name = "flaky"
    citation = ""
    description = "dies once (SIGKILL) in its 1e-2 cell, raises in its 1e-1 cell"
    needs_context_labels = False
    learning_rates = {"gen_lr": 1e-3}

    def fit(self, ctx):
        ctx.log(1, loss=1.0)
        marker = Path(os.environ["FLAKY_MARKER"])
        if ctx.config.gen_lr == 1e-2 and not marker.exists():
            marker.write_text("died once")
            os.kill(os.getpid(), signal.SIGKILL)
        if ctx.config.gen_lr == 1e-1:
            raise FloatingPointError("loss is nan")

@hookimpl
def register_strategies(register):
    register(Flaky)
"""


def grid_args(data, strategy, *extra):
    return ["grid", *tiny_run_args(data, strategy)[1:], *CELLS, *extra]


def grid_rows(db: str) -> list[dict]:
    return Store(db).query("SELECT id, status, error, grid_id, config FROM runs ORDER BY id")


@pytest.fixture(scope="module")
def ray_cluster():
    root = Path(__file__).resolve().parents[3]
    # The head and its workers must agree on authentication: switching it off only in the workers' env makes
    # every worker fail to register ("InvalidAuthToken") wherever Ray's token auth is on (~/.ray/auth_token).
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_AUTH_MODE", "disabled")  # the head's setting; its workers inherit it
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(root), "HARNESS_THREADS": "1"}})
        yield
        ray.shutdown()


def selected(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("selected run")).split("·")[0].split(":", 1)[1]


def test_a_grid_on_ray_stores_every_cell_and_selects_as_local(tiny_data, tmp_path, capsys, ray_cluster, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", os.environ["HARNESS_CACHE"])
    assert run_cli(grid_args(tiny_data, "ft_gen", "--executor", "ray")) == 0
    out = capsys.readouterr().out
    rows = grid_rows(os.environ["HARNESS_DB"])
    assert len(rows) == 4 and {r["status"] for r in rows} == {"finished"} and len({r["grid_id"] for r in rows}) == 1
    assert run_cli(grid_args(tiny_data, "ft_gen", "--executor", "ray")) == 0  # again: nothing new runs
    assert len(grid_rows(os.environ["HARNESS_DB"])) == 4 and "skipped" in capsys.readouterr().out
    local_db = str(tmp_path / "local.duckdb")
    monkeypatch.setenv("HARNESS_RUNS", str(tmp_path / "local-runs"))
    assert run_cli(["--db", local_db, *grid_args(tiny_data, "ft_gen")]) == 0
    assert selected(capsys.readouterr().out) == selected(out)


def test_a_dead_worker_is_retried_and_a_raising_cell_is_stored_failed(tiny_data, tmp_path, capsys, ray_cluster,
                                                                      monkeypatch, clean_plugins):
    plugins_dir = tmp_path / "plugins"
    plugins_dir.mkdir()
    (plugins_dir / "flaky.py").write_text(FLAKY_STRATEGY)
    monkeypatch.setenv("FLAKY_MARKER", str(tmp_path / "died-once"))
    ray.shutdown()  # the workers need FLAKY_MARKER: a cluster started with it
    root = Path(__file__).resolve().parents[3]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {
        "PYTHONPATH": str(root), "HARNESS_THREADS": "1", "FLAKY_MARKER": os.environ["FLAKY_MARKER"]}})
    assert run_cli(["--plugins-dir", str(plugins_dir), *grid_args(tiny_data, "flaky", "--executor", "ray")]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "died-once").exists()  # the 1e-2 worker was killed mid-cell ...
    by_lr = {__import__("json").loads(r["config"])["gen_lr"]: r for r in grid_rows(os.environ["HARNESS_DB"])}
    assert by_lr[1e-2]["status"] == "finished"  # ... and retried
    assert by_lr[1e-1]["status"] == "failed" and "loss is nan" in by_lr[1e-1]["error"]
    assert by_lr[1e-4]["status"] == by_lr[1e-3]["status"] == "finished" and "-> failed" in out


def test_the_same_grid_through_submitit_local(tiny_data, capsys):
    assert run_cli(grid_args(tiny_data, "ft_gen", "--executor", "slurm", "--slurm-cluster", "local")) == 0
    rows = grid_rows(os.environ["HARNESS_DB"])
    assert len(rows) == 4 and {r["status"] for r in rows} == {"finished"}
    assert run_cli(grid_args(tiny_data, "ft_gen", "--executor", "slurm", "--slurm-cluster", "local")) == 0
    assert len(grid_rows(os.environ["HARNESS_DB"])) == 4


def test_an_unknown_executor_is_one_line(tiny_data, capsys):
    assert run_cli(grid_args(tiny_data, "ft_gen", "--executor", "kubernetes")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "local, ray, slurm" in err


def test_two_stores_in_one_folder_never_ingest_each_others_runs(tiny_data, tmp_path, capsys, ray_cluster,
                                                                  monkeypatch):
    """a.duckdb and b.duckdb share `harness-runs/` beside them: a grid on b (Ray) runs every cell itself and
    stores only its own runs, though a's finished folders of the same cells lie in the same root."""
    monkeypatch.delenv("HARNESS_RUNS")
    shared = tmp_path / "shared"
    shared.mkdir()
    a, b = str(shared / "a.duckdb"), str(shared / "b.duckdb")
    cells = ["--gen-lr", "1e-4,1e-3"]
    assert run_cli(["--db", a, "grid", *tiny_run_args(tiny_data, "ft_gen")[1:], *cells]) == 0
    a_ids = {r["id"] for r in grid_rows(a)}
    assert len(a_ids) == 2 and len(list((shared / "harness-runs").iterdir())) == 2
    capsys.readouterr()
    assert run_cli(["--db", b, "grid", *tiny_run_args(tiny_data, "ft_gen")[1:], *cells, "--executor", "ray"]) == 0
    out = capsys.readouterr().out
    b_rows = grid_rows(b)
    assert len(b_rows) == 2 and not a_ids & {r["id"] for r in b_rows}, b_rows
    assert {r["status"] for r in b_rows} == {"finished"} and "skipped" not in out
    chosen = next(line for line in out.splitlines() if line.startswith("selected run")).split()[2].rstrip(":")
    assert chosen in {r["id"] for r in b_rows}
    assert {r["id"] for r in grid_rows(a)} == a_ids  # and a is untouched
