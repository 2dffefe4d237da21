"""One real run: packaged MiniLM + SmolLM2-135M + the fanoutqa_wiki default data, on a handful of questions."""

import json
import os

import pytest

from harness.store.db import Store
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


@pytest.mark.packaged
def test_default_corpus_vectors_ship_with_the_package(capsys):
    """A first run on the default takes MiniLM's vectors of the 12,324 passages from the package, checked."""
    from harness import plugins
    from harness.retrieval.index import build_or_load_index
    from harness.types import DatasetOptions, ModelOptions

    plugins.load_plugins()
    corpus = plugins.datasets().get("fanoutqa_wiki").load(DatasetOptions()).corpus
    embedder = plugins.models()["embedder"].get("minilm").load(ModelOptions(device="cpu"))
    capsys.readouterr()
    index = build_or_load_index(embedder, corpus)  # the session's cache is empty: shipped or encoded
    err = capsys.readouterr().err
    assert "using the shipped vectors" in err and "encoding corpus" not in err
    assert len(index) == len(corpus) == 12_324
