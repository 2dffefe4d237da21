"""`mlflow`: log every finished run to MLflow (`harness run --track mlflow`, or HARNESS_TRACKERS=mlflow).

One MLflow run per harness run, in experiment $MLFLOW_EXPERIMENT_NAME (default `rag-harness`) at
$MLFLOW_TRACKING_URI (MLflow's own default if unset; e.g. `file:///path/mlruns`, `http://host:5000`):
- params: the resolved config (learning rates included), strategy options as `strategy_options.KEY`;
- metrics: `SPLIT/METRIC` per split (`test/em`, `test/recall_at_5`, `cost/fit_seconds`, ...);
- metric history: the step log as `train/NAME` at each step (loss, lr, acceptance, ...);
- artifacts: `run/` (config.toml, metrics, predictions.jsonl, steps.jsonl) and each trained
  adapter / embedder folder under its kind;
- tags: `harness.run_id`, `harness.strategy`, `harness.dataset`, `harness.version`.
Install with `pip install 'rag-harness[mlflow]'` (mlflow-skinny).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from harness import hookimpl
from harness.results import (
    RunRecord,
    final_metrics,
    flat_params,
    is_enabled,
    load_run_record,
    steps_by_step,
    tracker_failure_warning,
    write_run_files,
)
from harness.store import Store

EXPERIMENT = "rag-harness"


def log_to_mlflow(record: RunRecord) -> str:
    """Log `record` as one MLflow run; returns the MLflow run id."""
    import mlflow
    from mlflow.entities import Metric

    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT)
    tags = {"harness.run_id": record.id, "harness.strategy": record.run["strategy"],
            "harness.dataset": record.run["dataset"], "harness.version": str(record.run["harness_version"])}
    with mlflow.start_run(run_name=f"{record.run['strategy']}-{record.id}", tags=tags) as active:
        client, mlflow_id = mlflow.MlflowClient(), active.info.run_id
        mlflow.log_params(flat_params(record.config))
        now = int(time.time() * 1000)
        history = [Metric(key, value, now, step) for step, values in steps_by_step(record.steps).items()
                   for key, value in values.items()]
        for start in range(0, len(history), 1000):  # MLflow takes at most 1000 metrics per batch
            client.log_batch(mlflow_id, metrics=history[start:start + 1000])
        mlflow.log_metrics(final_metrics(record.metrics))
        with tempfile.TemporaryDirectory() as tmp:
            write_run_files(record, Path(tmp))
            mlflow.log_artifacts(tmp, "run")
        for kind, folder in record.artifacts.items():
            mlflow.log_artifacts(str(folder), kind)
    return mlflow_id


@hookimpl
def run_finished(run):
    if is_enabled("mlflow") and run.get("db"):
        with tracker_failure_warning("mlflow", run["id"]):
            log_to_mlflow(load_run_record(Store(run["db"]), run["id"]))
