"""One real run: packaged MiniLM + SmolLM2-135M + the fanoutqa_wiki default data, on a handful of questions."""

import json
import os

import pytest

from harness.store import Store
from tests.conftest import run_cli


@pytest.mark.packaged
def test_no_ft_on_the_packaged_default(capsys):
    assert run_cli(["run", "--plugin", "no_ft", "--limit", "3", "--corpus-limit", "300", "--eval-splits", "test"]) == 0
    store = Store(os.environ["HARNESS_DB"])
    [run] = store.query("SELECT * FROM runs")
    assert run["status"] == "finished"
    assert (run["embedder"], run["generator"], run["dataset"]) == ("minilm", "smollm2-135m", "fanoutqa_wiki")
    metrics = store.run_metrics(run["id"])["test"]
    assert metrics["n"] == 3
    # MiniLM retrieves the gold Wikipedia chunk for most questions among ~300 passages
    assert metrics["recall@5"] >= 33.3
    preds = store.run_predictions(run["id"])
    assert all(p["prediction"].strip() for p in preds)  # SmolLM2 answers something for every question
    assert all(len(json.loads(p["retrieved_ids"])) == 5 for p in preds)

