"""`wandb`: log every finished run to Weights & Biases (`harness run --track wandb`, or HARNESS_TRACKERS=wandb).

One W&B run per harness run in project $WANDB_PROJECT (default `rag-harness`), named STRATEGY-RUN_ID; W&B's
own variables apply (WANDB_MODE=offline writes under $WANDB_DIR for a later `wandb sync`):
- config: the resolved config (learning rates included);
- history: the step log, `train/NAME` at each training step;
- summary: `SPLIT/METRIC` per split (`test/em`, `test/recall_at_5`, `cost/fit_seconds`, ...);
- artifacts: `run-RUN_ID` (type harness-run: config.toml, metrics, predictions.jsonl, steps.jsonl) and
  `KIND-RUN_ID` (type model) for each trained adapter / embedder folder.
Install with `pip install 'rag-harness[wandb]'`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from harness import hookimpl
from harness.results import (
    RunRecord,
    final_metrics,
    is_enabled,
    load_run_record,
    steps_by_step,
    tracker_failure_warning,
    write_run_files,
)
from harness.store import Store

PROJECT = "rag-harness"


def log_to_wandb(record: RunRecord) -> str:
    """Log `record` as one W&B run; returns the W&B run's directory."""
    import wandb

    run = wandb.init(project=os.environ.get("WANDB_PROJECT") or PROJECT, name=f"{record.run['strategy']}-{record.id}",
                     config=record.config, job_type="harness-run", reinit="create_new",
                     tags=[record.run["strategy"], record.run["dataset"]])
    try:
        for step, values in steps_by_step(record.steps).items():
            run.log(values, step=step)
        run.summary.update(final_metrics(record.metrics))
        run.summary["harness_run_id"] = record.id
        with tempfile.TemporaryDirectory() as tmp:
            write_run_files(record, Path(tmp))
            files = wandb.Artifact(f"run-{record.id}", type="harness-run")
            files.add_dir(tmp)
            run.log_artifact(files)
            for kind, folder in record.artifacts.items():
                model = wandb.Artifact(f"{kind}-{record.id}", type="model", metadata={"kind": kind})
                model.add_dir(str(folder))
                run.log_artifact(model)
            directory = run.dir
            run.finish()  # artifacts are staged before the temp folder goes
    except BaseException:
        run.finish(exit_code=1)
        raise
    return directory


@hookimpl
def run_finished(run):
    if is_enabled("wandb") and run.get("db"):
        with tracker_failure_warning("wandb", run["id"]):
            log_to_wandb(load_run_record(Store(run["db"]), run["id"]))
