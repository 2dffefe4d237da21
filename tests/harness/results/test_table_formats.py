"""`harness leaderboard --format csv|json|markdown`: the same rows as the table, read back by real parsers."""

import csv
import io
import json
import os

import pytest

from harness.cli.leaderboard import LEADERBOARD_COLUMNS, RUN_COLUMNS
from harness.results.table_formats import rows_as_text
from harness.store.db import Store
from tests.conftest import run_cli, tiny_run_args


@pytest.fixture
def two_runs(tiny_data, capsys):
    assert run_cli(tiny_run_args(tiny_data)) == 0
    assert run_cli(tiny_run_args(tiny_data, "no_ft", "--seed", "1")) == 0
    capsys.readouterr()
    return Store(os.environ["HARNESS_DB"])


def leaderboard(capsys, *args) -> str:
    assert run_cli(["leaderboard", *args]) == 0
    return capsys.readouterr().out


def test_the_ranking_rows_are_one_cell_with_its_seeds(two_runs, capsys):
    runs = {r["id"]: two_runs.run_metrics(r["id"]) for r in two_runs.query("SELECT id FROM runs")}
    [row] = list(csv.DictReader(io.StringIO(leaderboard(capsys, "--format", "csv"))))  # seeds 0 and 1: one cell
    assert list(row) == list(LEADERBOARD_COLUMNS) and row["seeds"] == "2" and row["strategy"] == "no_ft"
    assert set(row["run_ids"].split()) == set(runs) and row["id"] in runs
    assert float(row["em"]) == pytest.approx(sum(m["test"]["em"] for m in runs.values()) / 2)
    assert row["id"] in leaderboard(capsys)


def test_csv_json_and_markdown_hold_the_tables_rows(two_runs, capsys):
    table = leaderboard(capsys, "--all")
    runs = {r["id"]: two_runs.run_metrics(r["id"]) for r in two_runs.query("SELECT id FROM runs")}
    order = [run_id for line in table.splitlines() for run_id in runs if run_id in line]

    rows = list(csv.DictReader(io.StringIO(leaderboard(capsys, "--all", "--format", "csv"))))
    assert list(rows[0]) == list(RUN_COLUMNS)
    assert [r["id"] for r in rows] == order and len(order) == 2
    for row in rows:
        test = runs[row["id"]]["test"]
        assert float(row["em"]) == test["em"] and float(row["em_low"]) == test["em_low"] and row["n"] == "2"
        assert float(row["recall@5"]) == test["recall@5"] and row["strategy"] == "no_ft"

    records = json.loads(leaderboard(capsys, "--all", "--format", "json"))
    assert [r["id"] for r in records] == order and records[0]["f1"] == runs[order[0]]["test"]["f1"]
    assert records[0]["grid_id"] is None and records[0]["n"] == 2

    markdown = leaderboard(capsys, "--all", "--format", "markdown").splitlines()
    assert markdown[0] == "| " + " | ".join(RUN_COLUMNS) + " |" and len(markdown) == 4
    assert markdown[2].startswith(f"| {order[0]} | no_ft |")


def test_dev_split_and_db_after_the_command(two_runs, tmp_path, capsys):
    rows = list(csv.DictReader(io.StringIO(leaderboard(capsys, "--all", "--format", "csv", "--split", "dev",
                                                       "--db", os.environ["HARNESS_DB"]))))
    assert {float(r["em"]) for r in rows} == {two_runs.run_metrics(r["id"])["dev"]["em"] for r in rows}


def test_an_empty_store_gives_a_header_or_an_empty_list(capsys):
    assert leaderboard(capsys, "--format", "csv") == ",".join(LEADERBOARD_COLUMNS) + "\n"
    assert json.loads(leaderboard(capsys, "--format", "json")) == []


def test_bad_format_is_a_usage_error(capsys):
    assert run_cli(["leaderboard", "--format", "xlsx"]) == 2
    assert "'xlsx' is not one of 'table', 'csv', 'json', 'markdown'" in capsys.readouterr().err


def test_missing_values_and_pipes():
    rows = [{"id": "a|b", "em": float("nan"), "f1": None, "n": 3.0}]
    assert rows_as_text(rows, ["id", "em", "f1", "n"], "markdown").splitlines()[2] == "| a\\|b | – | – | 3.0 |"
    assert rows_as_text(rows, ["id", "n"], "markdown", integers=["n"]).splitlines()[2] == "| a\\|b | 3 |"
    assert rows_as_text(rows, ["id", "em", "f1"], "csv").splitlines()[1] == "a|b,,"
    assert json.loads(rows_as_text(rows, ["em"], "json")) == [{"em": None}]
