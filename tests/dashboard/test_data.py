"""The data module: read-only, no external access, allowlisted identifiers, bound values, never writes."""

import hashlib

import duckdb
import pytest

from harness.dashboard import data
from tests.dashboard.conftest import app_test

PAGES = [None, "quality_vs_cost", "run", "compare", "learning_rates", "published"]


def test_the_dashboard_reads_through_a_read_only_store(filled_db):
    """What a read-only store may not do is tested with the store (tests/harness/store/test_db.py)."""
    store = data.reader(str(filled_db))
    assert store.read_only and store.path == str(filled_db)
    with store.transaction() as con, pytest.raises(duckdb.Error, match="read-only|Cannot execute"):
        con.execute("DELETE FROM runs")


def test_filters_and_sort_keys_come_from_allowlists(filled_db):
    with pytest.raises(ValueError, match="cannot filter on 'id; DROP TABLE runs'"):
        data.finished_runs(str(filled_db), (("id; DROP TABLE runs", ("x",)),))
    with pytest.raises(ValueError, match="cannot sort by"):
        data.leaderboard(str(filled_db), (), "em DESC; DROP TABLE runs")


def test_filter_values_are_bound_not_spliced(filled_db):
    rows = data.finished_runs(str(filled_db), (("dataset", ("tiny' OR '1'='1",)),))
    assert rows.empty
    assert len(data.finished_runs(str(filled_db), (("dataset", ("tiny",)),))) == 15


def test_store_state_kinds(filled_db, tmp_path):
    assert data.store_state(str(filled_db)) == data.StoreState("ok")
    assert data.store_state(str(tmp_path / "missing.duckdb")).kind == "missing"


def test_db_path_from_command_line_then_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HARNESS_DB", str(tmp_path / "env.duckdb"))
    monkeypatch.setattr("sys.argv", ["streamlit_app.py"])
    assert data.db_path() == str(tmp_path / "env.duckdb")
    monkeypatch.setattr("sys.argv", ["streamlit_app.py", "--db", "cli.duckdb"])
    assert data.db_path() == "cli.duckdb"


def test_mark_gold():
    assert data.mark_gold(["p1", "p2", "p3"], ["p2"]) == "p1, ✓p2, p3"


def test_the_dashboard_never_writes(filled_db):
    before = hashlib.sha256(filled_db.read_bytes()).hexdigest()
    for page in PAGES:
        at = app_test(page)
        assert not at.exception, page
    assert hashlib.sha256(filled_db.read_bytes()).hexdigest() == before
    assert not filled_db.with_suffix(".duckdb.wal").exists()


def test_terminal_and_dashboard_list_the_same_rows_in_the_same_order(filled_db, capsys):
    """One ranking (harness/results/leaderboard.py) behind `harness leaderboard` and the dashboard's leaderboard, on a
    store with grids, seeds and a staged grid's first-stage cell."""
    import json

    from tests.conftest import run_cli

    assert run_cli(["leaderboard", "--format", "json", "--db", str(filled_db)]) == 0
    terminal = json.loads(capsys.readouterr().out)
    board = data.leaderboard(str(filled_db)).to_dict("records")
    key = ("strategy", "dataset", "embedder", "generator", "run_ids", "seeds")
    assert [tuple(r[k] for k in key) for r in terminal] == [tuple(r[k] for k in key) for r in board]
    assert len(terminal) == 6 and any(r["seeds"] > 1 for r in terminal)  # grids collapsed to their best cell
    for mine, theirs in zip(terminal, board):
        for name in ("em", "em_low", "em_high", "f1_low", "f1_high", "dev_em"):
            assert mine[name] == pytest.approx(theirs[name], nan_ok=True)
        assert mine["vs_best"] == theirs["vs_best"]
    assert not any(r["strategy"] == "two_phase" and r["run_ids"].count(" ") == 0 for r in terminal)


def test_a_single_run_row_carries_the_interval_its_run_page_shows(filled_db):
    """One bootstrap interval per run: the one computed when the run was evaluated (the run page's)."""
    from harness.store.db import Store

    board = data.leaderboard(str(filled_db)).to_dict("records")
    single = [r for r in board if r["seeds"] == 1]
    assert single
    for row in single:
        stored = Store(str(filled_db)).run_metrics(row["run_id"])["test"]
        assert (row["em_low"], row["em_high"], row["f1_low"], row["f1_high"]) == (
            stored["em_low"], stored["em_high"], stored["f1_low"], stored["f1_high"])
