"""The CLI behaves like its peers: --db after the command, a run ends with where its results are and what to
type next, counts print as integers, every --help has its examples under an Examples heading."""

import os

import pytest

from harness.store.db import Store
from tests.conftest import run_cli, tiny_run_args


def test_db_works_after_the_subcommand(tiny_data, tmp_path, capsys):
    other = str(tmp_path / "other.duckdb")
    assert run_cli([*tiny_run_args(tiny_data), "--db", other]) == 0
    [run] = Store(other).query("SELECT id FROM runs")
    assert not os.path.exists(os.environ["HARNESS_DB"])  # the default store was never touched
    capsys.readouterr()
    assert run_cli(["leaderboard", "--db", other]) == 0
    assert run["id"] in capsys.readouterr().out
    assert run_cli(["show", run["id"], "--db", other, "--config"]) == 0
    assert 'strategy = "no_ft"' in capsys.readouterr().out
    assert run_cli(["leaderboard"]) == 0  # without it: the default store, still empty
    assert "no finished runs" in capsys.readouterr().out


def test_a_run_ends_with_where_results_are_and_what_to_type_next(tiny_data, capsys):
    assert run_cli(tiny_run_args(tiny_data, "ft_gen")) == 0
    run_id = Store(os.environ["HARNESS_DB"]).query("SELECT id FROM runs")[0]["id"]
    lines = capsys.readouterr().out.strip().splitlines()
    adapter = next(line for line in lines if line.startswith("adapter: "))
    assert os.path.isfile(os.path.join(adapter.split(": ", 1)[1], "adapter_config.json"))
    assert lines[-2] == f"results: {os.environ['HARNESS_DB']} (run {run_id})"
    assert lines[-1].startswith(f"next: harness show {run_id}") and f"harness export {run_id}" in lines[-1]


def test_example_counts_print_as_integers(tiny_data, capsys):
    assert run_cli(tiny_run_args(tiny_data)) == 0
    rows = [line.split("│") for line in capsys.readouterr().out.splitlines() if line.startswith("│ dev")]
    [cells] = rows
    assert [c.strip() for c in cells][6] == "2"  # n: 2 questions, not 2.0


def all_commands():
    from harness import cli, plugins

    plugins.load_plugins()
    cli._register_plugin_commands()
    return sorted(cli.cli.commands)


@pytest.mark.parametrize("command", [None, *all_commands()])
def test_every_help_has_examples_under_an_examples_heading(command, capsys):
    assert run_cli([*([command] if command else []), "--help"]) == 0
    out = capsys.readouterr().out
    assert "Examples:" in out, out
    examples = out.split("Examples:", 1)[1].splitlines()[1:]
    assert examples and examples[0].strip().startswith(("harness", "HARNESS_")), out
    if command and command != "dashboard":
        assert "--db" in out  # every store command takes --db after its name
