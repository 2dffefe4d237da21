"""The contributor's guide is tested: its example strategy, as printed in docs/writing-a-strategy.md, runs
on the tiny models through --plugins-dir, so the guide cannot drift from the code."""

import json
import re
from pathlib import Path

from harness.store.db import Store
from tests.conftest import run_cli, tiny_run_args

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "writing-a-strategy.md"
MARKER = "<!-- example-strategy:"


def guide_example() -> str:
    text = GUIDE.read_text()
    assert MARKER in text, f"{GUIDE} lost its example-strategy block"
    block = re.search(r"```python\n(.*?)```", text[text.index(MARKER):], flags=re.S)
    return block.group(1)


def test_the_guides_example_strategy_runs_as_printed(clean_plugins, tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DB", str(tmp_path / "guide.duckdb"))
    folder = tmp_path / "my_plugins"
    folder.mkdir()
    (folder / "gold_context.py").write_text(guide_example())
    args = tiny_run_args(tiny_data, "gold_context", "--set", "max_examples=4", "--eval-splits", "test")
    assert run_cli(["--plugins-dir", str(folder), *args]) == 0
    store = Store(str(tmp_path / "guide.duckdb"))
    [run] = store.query("SELECT id, status, config FROM runs")
    assert run["status"] == "finished"
    assert json.loads(run["config"])["gen_lr"] == 1e-3  # the default the example declares, stored
    assert store.run_metrics(run["id"])["cost"]["trained_tokens"] > 0
    assert "adapter" in store.run_artifact_paths(run["id"])
    steps = store.run_steps(run["id"])
    assert any(s["name"] == "loss" for s in steps) and any(s["name"] == "gen_lr" for s in steps)
