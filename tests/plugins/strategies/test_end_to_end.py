"""Every strategy of the paper, end to end through the CLI on the tiny models: stored with all metrics,
its training log and its artifacts (sha256 of the folder as written)."""

import json
import os
from pathlib import Path

import pytest

from harness.store.db import Store
from harness.store.folder import folder_sha256
from tests.conftest import run_cli, tiny_run_args

ARTIFACTS = {
    "ft_embed": {"embedder"}, "ft_gen": {"adapter"}, "indp": {"adapter", "embedder"},
    "rag_sequence": {"adapter", "embedder"}, "rag_token": {"adapter", "embedder"}, "two_phase": {"adapter", "embedder"},
}


@pytest.mark.parametrize("strategy", sorted(ARTIFACTS))
def test_strategy_runs_end_to_end_and_is_stored_whole(tiny_data, strategy, capsys):
    assert run_cli(tiny_run_args(tiny_data, strategy, "--epochs", "1")) == 0
    assert "finished" in capsys.readouterr().out
    store = Store(os.environ["HARNESS_DB"])
    [run] = store.query("SELECT * FROM runs")
    assert run["status"] == "finished" and run["strategy"] == strategy and run["error"] is None
    metrics = store.run_metrics(run["id"])
    for split in ("dev", "test"):
        assert {"em", "f1", "recall@5", "answer_recall@5", "em_low", "em_high", "n"} <= set(metrics[split])
    cost = metrics["cost"]
    assert cost["fit_seconds"] > 0 and cost["trained_tokens"] > 0 and cost["peak_memory_mb"] > 0
    names = {r["name"] for r in store.query("SELECT DISTINCT name FROM train_log WHERE run_id = ?", [run["id"]])}
    assert {"loss", "lr", "tokens_per_second", "peak_memory_mb"} <= names
    artifacts = store.query("SELECT kind, path, sha256 FROM artifacts WHERE run_id = ?", [run["id"]])
    assert {a["kind"] for a in artifacts} == ARTIFACTS[strategy]
    for a in artifacts:
        assert not Path(a["path"]).is_absolute()  # relative to the run folder, which can move
        assert folder_sha256(Path(run["folder"]) / a["path"]) == a["sha256"]
    assert len(store.run_predictions(run["id"])) == 4
    assert json.loads(run["config"])["strategy"] == strategy
