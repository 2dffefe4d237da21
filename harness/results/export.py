"""What leaves the harness for one run: plain files (`harness export`) and the record trackers log.

    harness export RUN_ID --to DIR        DIR/config.toml   re-runs the run (`harness run --config`)
                                          DIR/config.json   the resolved config, exactly as stored
                                          DIR/run.json      status, error, code version, packages, device, times
                                          DIR/metrics.json  {split: {metric: value}} (cost metrics under "cost")
                                          DIR/predictions.jsonl  one evaluated example per line
                                          DIR/steps.jsonl   the training log: {"step", "name", "value", "elapsed"}
    harness export RUN_ID --adapter DIR   DIR/<kind>/       the trained adapter / embedders, ready to upload
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.config_file import config_to_toml
from harness.errors import UserError
from harness.runner.artifacts import run_artifacts
from harness.store.db import Store
from harness.store.schema import KIND

RUN_FILES = ("config.toml", "config.json", "run.json", "metrics.json", "predictions.jsonl", "steps.jsonl")


@dataclass
class RunRecord:
    """Everything stored about one run, read once from the store."""

    run: dict  # the `runs` row
    config: dict
    metrics: dict[str, dict[str, float]]
    steps: list[dict]
    predictions: list[dict]
    artifacts: dict[str, Path]  # kind -> folder, sha256-checked

    @property
    def id(self) -> str:
        return self.run["id"]


def load_run_record(store: Store, run_id: str) -> RunRecord:
    run = store.find_run(run_id)
    config = json.loads(run["config"]) if isinstance(run["config"], str) else dict(run["config"])
    predictions = [_decoded(p) for p in store.run_predictions(run["id"])]
    return RunRecord(run, config, store.run_metrics(run["id"]), store.run_steps(run["id"]), predictions,
                     run_artifacts(store, run["id"]))


def _decoded(prediction: dict) -> dict:
    out = {k: v for k, v in prediction.items() if k != "run_id"}
    for key in ("golds", "gold_passage_ids", "retrieved_ids"):
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    return out


def run_summary(record: RunRecord) -> dict:
    """The run's row without its config and with its artifacts: what run.json holds."""
    summary = {k: v for k, v in record.run.items() if k != "config"}
    if isinstance(summary.get("packages"), str):
        summary["packages"] = json.loads(summary["packages"])
    summary["artifacts"] = {kind: str(path) for kind, path in record.artifacts.items()}
    return summary


def write_run_files(record: RunRecord, folder: Path) -> list[Path]:
    """Write RUN_FILES into `folder` (created if needed); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    header = (f"run {record.id}: {record.run['strategy']} on {record.run['dataset']}, "
              f"code {record.run['harness_version']} @ {record.run['git_sha']}")
    texts = {
        "config.toml": config_to_toml(record.config, header),
        "config.json": json.dumps(record.config, indent=1, sort_keys=True),
        "run.json": json.dumps(run_summary(record), indent=1, default=str),
        "metrics.json": json.dumps(record.metrics, indent=1, sort_keys=True),
        "predictions.jsonl": "".join(json.dumps(p, default=str) + "\n" for p in record.predictions),
        "steps.jsonl": "".join(json.dumps(s) + "\n" for s in record.steps),
    }
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    return [folder / name for name in RUN_FILES]


def copy_artifacts(record: RunRecord, folder: Path) -> dict[str, Path]:
    """Copy each trained artifact folder to `folder/<kind>`; refuses to overwrite an existing one."""
    if not record.artifacts:
        raise UserError(f"run {record.id} ({record.run['strategy']}) saved no adapter or embedder: it trains nothing "
                        "or its artifacts were not kept")
    copied = {}
    for kind, source in record.artifacts.items():
        if not KIND.fullmatch(kind):  # a kind is a name: `../../x` must not write outside the target
            raise UserError(f"run {record.id} has an artifact of kind '{kind[:40]}': kinds are names of a-z, 0-9 and _")
        target = folder / kind
        if target.exists():
            raise UserError(f"{target} already exists; pick an empty --adapter folder")
        shutil.copytree(source, target, symlinks=False)  # files' bytes, never a link (run_artifacts checked them)
        copied[kind] = target
    return copied
