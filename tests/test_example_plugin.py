"""The example package under examples/: installed (into a temporary target, through its pyproject entry
point) and loaded by path (--plugins-dir), it is listed by `harness plugins`, runs on the tiny models, and
its run is on the store and the leaderboard like any built-in's."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.store.db import Store
from tests.conftest import run_cli, tiny_run_args

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "harness-example-strategy"
HARNESS = [sys.executable, "-c", "import sys; from harness.cli import main; main(sys.argv[1:])"]


def test_loaded_by_path_it_is_listed_runs_and_is_stored(clean_plugins, tiny_data, capsys):
    assert run_cli(["--plugins-dir", str(EXAMPLE), "plugins"]) == 0
    listing = capsys.readouterr().out
    assert "harness_example_strategy" in listing and "register_strategies" in listing
    assert run_cli(["--plugins-dir", str(EXAMPLE), *tiny_run_args(tiny_data, "ft_gen_gold")]) == 0
    store = Store(os.environ["HARNESS_DB"])
    [run] = store.query("SELECT id, status FROM runs WHERE strategy = 'ft_gen_gold'")
    assert run["status"] == "finished"
    assert store.run_metrics(run["id"])["cost"]["trained_tokens"] > 0
    assert {a["kind"] for a in store.query("SELECT kind FROM artifacts")} == {"adapter"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """pip-install the example (no deps, no build isolation: offline) into a throwaway target folder."""
    source, target = tmp_path_factory.mktemp("src") / "example", tmp_path_factory.mktemp("site")
    shutil.copytree(EXAMPLE, source)  # the build writes build/ and egg-info next to the sources: not in the repo
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True, timeout=300)
    return target


def harness(installed: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(installed), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([*HARNESS, *args], env=env, capture_output=True, text=True, timeout=300,
                          cwd=EXAMPLE.parent.parent)


def test_installed_through_its_entry_point_it_is_listed_runs_and_leads_a_row(installed, tiny_data):
    listing = harness(installed, "plugins")
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if "example_gold_context" in line)
    assert "entry point" in row and "register_strategies" in row
    result = harness(installed, *tiny_run_args(tiny_data, "ft_gen_gold"))
    assert result.returncode == 0, result.stderr
    store = Store(os.environ["HARNESS_DB"])
    [run] = store.query("SELECT id, status FROM runs WHERE strategy = 'ft_gen_gold'")
    assert run["status"] == "finished"
    board = harness(installed, "leaderboard")
    assert run["id"] in board.stdout and "ft_gen_gold" in board.stdout


def test_an_allowlist_without_it_keeps_it_out(installed):
    env_off = {**os.environ, "HARNESS_LOAD_PLUGINS": "", "PYTHONPATH": str(installed)}
    off = subprocess.run([*HARNESS, "plugins"], env=env_off, capture_output=True, text=True, timeout=300)
    assert off.returncode == 0 and "example_gold_context" not in off.stdout
