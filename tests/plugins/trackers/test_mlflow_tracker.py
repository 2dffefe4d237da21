"""The MLflow tracker for real: a tiny run logged to a local file store, read back with MLflow's client."""

import json
import os

import pytest

from harness.store.db import Store
from tests.conftest import run_cli, tiny_run_args

mlflow = pytest.importorskip("mlflow")


@pytest.fixture
def file_store(tmp_path, monkeypatch):
    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps file stores behind this switch
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "harness-test")
    return uri


def test_run_with_track_mlflow_logs_params_metrics_history_and_artifacts(tiny_data, file_store):
    assert run_cli(tiny_run_args(tiny_data, "ft_gen", "--gen-lr", "2e-3", "--track", "mlflow")) == 0
    store = Store(os.environ["HARNESS_DB"])
    run = store.query("SELECT * FROM runs")[0]
    client = mlflow.MlflowClient(file_store)
    experiment = client.get_experiment_by_name("harness-test")
    [logged] = client.search_runs([experiment.experiment_id])
    assert logged.data.tags["harness.run_id"] == run["id"] and logged.data.tags["harness.strategy"] == "ft_gen"
    config = json.loads(run["config"])
    assert logged.data.params["gen_lr"] == "0.002" == str(config["gen_lr"])
    assert logged.data.params["generator"] == "tiny-llama" and logged.data.params["eval_splits"] == "dev,test"
    metrics = store.run_metrics(run["id"])
    assert logged.data.metrics["test/em"] == metrics["test"]["em"]
    assert logged.data.metrics["dev/recall_at_5"] == metrics["dev"]["recall@5"]
    assert logged.data.metrics["cost/fit_seconds"] == metrics["cost"]["fit_seconds"]
    history = client.get_metric_history(logged.info.run_id, "train/loss")
    stored_losses = [(s["step"], s["value"]) for s in store.run_steps(run["id"]) if s["name"] == "loss"]
    assert sorted((m.step, m.value) for m in history) == stored_losses and len(stored_losses) >= 2
    files = {a.path for a in client.list_artifacts(logged.info.run_id, "run")}
    assert {"run/config.toml", "run/metrics.json", "run/predictions.jsonl", "run/steps.jsonl"} <= files
    adapter = {a.path for a in client.list_artifacts(logged.info.run_id, "adapter")}
    assert "adapter/adapter_config.json" in adapter


def test_export_track_mlflow_logs_a_stored_run_again(tiny_data, file_store, capsys):
    assert run_cli(tiny_run_args(tiny_data)) == 0
    run_id = Store(os.environ["HARNESS_DB"]).query("SELECT id FROM runs")[0]["id"]
    assert run_cli(["export", run_id, "--track", "mlflow"]) == 0
    assert "mlflow: run" in capsys.readouterr().out
    client = mlflow.MlflowClient(file_store)
    [logged] = client.search_runs([client.get_experiment_by_name("harness-test").experiment_id])
    assert logged.data.tags["harness.run_id"] == run_id and logged.data.params["strategy"] == "no_ft"


def test_a_failing_tracker_warns_and_keeps_the_run(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "false")  # MLflow refuses the file store: a real failure
    assert run_cli(tiny_run_args(tiny_data, "no_ft", "--track", "mlflow")) == 0
    err = capsys.readouterr().err
    assert "warning: mlflow export of run" in err and "harness export" in err
    assert Store(os.environ["HARNESS_DB"]).query("SELECT status FROM runs")[0]["status"] == "finished"


def test_unknown_tracker_in_the_environment_is_refused_before_the_run(tiny_data, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_TRACKERS", "mlflow,tensorboard")
    assert run_cli(tiny_run_args(tiny_data)) == 2
    err = capsys.readouterr().err
    assert "HARNESS_TRACKERS: unknown tracker 'tensorboard'; trackers: mlflow, wandb" in err
    assert Store(os.environ["HARNESS_DB"]).query("SELECT id FROM runs") == []
