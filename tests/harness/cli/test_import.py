"""`harness import`: finished run folders into a store in one transaction; twice is one run; a truncated or
unfinished folder is one line, exit 2, nothing imported; folders from elsewhere merge and keep working."""

import json
import os
import shutil
from pathlib import Path

import pytest

from harness.store.db import Store
from tests.conftest import run_cli, tiny_run_args


@pytest.fixture
def finished_folder(tiny_data) -> Path:
    """One finished ft_gen run (it saves an adapter), made in the default store."""
    assert run_cli(tiny_run_args(tiny_data, "ft_gen")) == 0
    [run] = Store(os.environ["HARNESS_DB"]).query("SELECT folder FROM runs")
    return Path(run["folder"])


def table_counts(path) -> dict:
    store = Store(str(path))
    return {t: store.query(f"SELECT count(*) AS n FROM {t}")[0]["n"]
            for t in ("runs", "metrics", "predictions", "train_log", "artifacts")}


def test_importing_twice_is_one_run(finished_folder, tmp_path, capsys):
    other = tmp_path / "other.duckdb"
    assert run_cli(["--db", str(other), "import", str(finished_folder)]) == 0
    assert "imported 1 run(s)" in capsys.readouterr().out
    first = table_counts(other)
    assert first["runs"] == 1 and first["predictions"] == 4 and first["artifacts"] == 1 and first["train_log"] > 0
    assert first == {**table_counts(os.environ["HARNESS_DB"])}  # the same rows the run stored itself
    assert run_cli(["--db", str(other), "import", str(finished_folder), str(finished_folder.parent)]) == 0
    assert "imported 0 run(s)" in capsys.readouterr().out and table_counts(other) == first


def test_a_truncated_folder_is_one_line_and_imports_nothing(finished_folder, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(finished_folder, broken)
    data = (broken / "predictions.jsonl").read_bytes()
    (broken / "predictions.jsonl").write_bytes(data[: len(data) // 2])
    other = tmp_path / "other.duckdb"
    capsys.readouterr()
    assert run_cli(["--db", str(other), "import", str(finished_folder), str(broken)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "corrupt" in err and "predictions.jsonl" in err and "Traceback" not in err
    assert not other.exists() or table_counts(other)["runs"] == 0


def test_an_unfinished_folder_is_refused_by_name_and_skipped_in_a_directory(finished_folder, tmp_path, capsys):
    runs = tmp_path / "shared-runs"
    shutil.copytree(finished_folder, runs / finished_folder.name)
    shutil.copytree(finished_folder, runs / "killed")
    (runs / "killed" / "status.json").unlink()
    other = tmp_path / "other.duckdb"
    capsys.readouterr()
    assert run_cli(["--db", str(other), "import", str(runs / "killed")]) == 2
    assert "unfinished" in capsys.readouterr().err
    assert run_cli(["--db", str(other), "import", str(runs)]) == 0
    assert "1 unfinished folder(s) skipped" in capsys.readouterr().out and table_counts(other)["runs"] == 1


def test_runs_from_another_machine_merge_and_their_artifacts_reload(finished_folder, tmp_path, capsys):
    """Someone sends their run folder: it moves, imports into my store, and `evaluate` finds its adapter
    by its path relative to the folder."""
    moved = tmp_path / "from-alice" / finished_folder.name
    shutil.copytree(finished_folder, moved)
    shutil.rmtree(finished_folder)
    mine = tmp_path / "mine.duckdb"
    assert run_cli(["--db", str(mine), "import", str(moved.parent)]) == 0
    [run] = Store(str(mine)).query("SELECT id, folder, status FROM runs")
    assert run["folder"] == str(moved.resolve()) and run["status"] == "finished"
    capsys.readouterr()
    assert run_cli(["--db", str(mine), "evaluate", run["id"], "--splits", "test"]) == 0
    assert "re-evaluated" in capsys.readouterr().out


FAILING_STRATEGY = """
from harness.hookspecs import hookimpl

class Diverges:
    name = "diverges"
    citation = ""
    description = "a test strategy"
    needs_context_labels = False
    learning_rates = {}

    def fit(self, ctx):
        ctx.log(1, loss=1.0)
        raise FloatingPointError("loss is nan at step 1")

@hookimpl
def register_strategies(register):
    register(Diverges)
"""


def test_a_failed_run_is_stored_and_imported_with_its_error(tiny_data, tmp_path, capsys, clean_plugins):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "diverges.py").write_text(FAILING_STRATEGY)
    assert run_cli(["--plugins-dir", str(tmp_path / "plugins"), *tiny_run_args(tiny_data, "diverges")]) == 1
    [row] = Store(os.environ["HARNESS_DB"]).query("SELECT status, error, folder FROM runs")
    assert row["status"] == "failed" and "loss is nan at step 1" in row["error"]
    assert json.loads((Path(row["folder"]) / "status.json").read_text())["status"] == "failed"
    other = tmp_path / "other.duckdb"
    assert run_cli(["--db", str(other), "import", row["folder"]]) == 0
    [copy] = Store(str(other)).query("SELECT status, error FROM runs")
    assert copy == {"status": "failed", "error": row["error"]}
    assert table_counts(other)["train_log"] == 1  # what it logged before failing is kept
