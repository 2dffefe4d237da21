"""Silver context labels: ft_embed trains on a dataset without gold passage ids, its positives are the base
top-N passages containing an answer (DPR's matcher), unlabelled questions are dropped and counted."""

import json
import os

from harness.store.db import Store
from tests.conftest import run_cli, tiny_run_args, write_tiny_dataset


def test_ft_embed_runs_on_a_label_free_dataset_with_silver_labels(tmp_path, capsys):
    data = write_tiny_dataset(tmp_path / "unlabelled", with_labels=False)
    assert run_cli(tiny_run_args(data, "ft_embed")) == 2  # refused without labels...
    assert "--silver-labels N" in capsys.readouterr().err
    assert run_cli(tiny_run_args(data, "ft_embed", "--silver-labels", "3")) == 0  # ...trained with silver ones
    out = capsys.readouterr().out
    assert "│ train" not in out  # no empty row for the training split: its counts are said in words
    store = Store(os.environ["HARNESS_DB"])
    [run] = store.query("SELECT id, config, status FROM runs")
    assert run["status"] == "finished" and json.loads(run["config"])["silver_labels"] == 3
    train = store.run_metrics(run["id"])["train"]
    # 6 training questions: kept + dropped add up, and at least one has its answer in the random tower's top 3
    assert train["silver_top_n"] == 3 and train["silver_labelled"] + train["silver_dropped"] == 6
    assert train["silver_labelled"] >= 1
    assert (f"silver labels (answer-bearing passages in the base top 3): {int(train['silver_labelled'])} training "
            f"questions labelled, {int(train['silver_dropped'])} dropped without one") in out
    capsys.readouterr()
    assert run_cli(["show", run["id"]]) == 0 and "dropped without one" in capsys.readouterr().out  # and in show
    steps = store.query("SELECT DISTINCT step FROM train_log WHERE run_id = ? AND name = 'loss'", [run["id"]])
    assert len(steps) == -(-int(train["silver_labelled"]) // 8)  # ft_embed's batch of 8 over the kept questions
    capsys.readouterr()
    assert run_cli(["leaderboard"]) == 0
    assert "silver@3" in capsys.readouterr().out


def test_silver_labels_are_the_answer_bearing_passages_of_the_base_top_n(tiny_data):
    from harness import plugins
    from harness.config import RunConfig
    from harness.runner.assemble import build_pipeline, load_dataset, resolve
    from harness.training.silver import with_silver_labels

    cfg = RunConfig(strategy="ft_embed", dataset="local", data_dir=str(tiny_data), embedder="tiny-embedder",
                    generator="tiny-llama")
    plugins.load_plugins(None)
    resolved = resolve(cfg)
    dataset = load_dataset(cfg, resolved)
    pipeline = build_pipeline(cfg, resolved, dataset, "cpu")
    relabelled, labels = with_silver_labels(pipeline, dataset, 10)  # the whole tiny corpus: every answer is found
    assert labels.dropped == 0 and labels.labelled == 6
    by_id = {ex.id: ex for ex in dataset.train}
    for ex in relabelled.train:  # with the whole corpus, silver = every passage holding the answer = gold here
        assert set(ex.gold_passage_ids) == set(by_id[ex.id].gold_passage_ids)
    assert relabelled.test == dataset.test


def test_silver_labels_must_be_a_positive_count(tiny_data, capsys):
    assert run_cli(tiny_run_args(tiny_data, "ft_embed", "--silver-labels", "0")) == 2
    assert "--silver-labels must be an integer >= 1" in capsys.readouterr().err
