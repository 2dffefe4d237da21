"""The W&B tracker for real, offline: a tiny run logged to a temp dir, read back from W&B's run file."""

import json
import os
import struct
from pathlib import Path

import pytest

from harness.store.db import Store
from tests.conftest import run_cli, tiny_run_args

wandb = pytest.importorskip("wandb")


def wandb_records(path: Path) -> list:
    """The records of an offline run's .wandb file (a LevelDB-style log: 32 KiB blocks of CRC, length, type)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block, pos, parts, records = path.read_bytes(), 32768, 7, b"", []
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:  # block padding
            pos += left
            continue
        parts, pos = parts + data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(parts)
            records.append(record)
            parts = b""
    return records


def test_run_with_track_wandb_offline_logs_config_history_summary_and_artifacts(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_PROJECT", "harness-test")
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert run_cli(tiny_run_args(tiny_data, "ft_gen", "--gen-lr", "2e-3", "--track", "wandb")) == 0
    store = Store(os.environ["HARNESS_DB"])
    run = store.query("SELECT * FROM runs")[0]
    [run_file] = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")
    records = wandb_records(run_file)
    by_type = {}
    for record in records:
        by_type.setdefault(record.WhichOneof("record_type"), []).append(record)
    [header] = by_type["run"]
    assert header.run.project == "harness-test" and header.run.display_name == f"ft_gen-{run['id']}"
    config = {item.key: json.loads(item.value_json) for item in header.run.config.update}
    assert config["gen_lr"] == 2e-3 and config["generator"] == "tiny-llama"
    summary = {}
    for record in by_type["summary"]:
        summary.update({item.key: json.loads(item.value_json) for item in record.summary.update if item.key})
    metrics = store.run_metrics(run["id"])
    assert summary["test/em"] == metrics["test"]["em"] and summary["dev/recall_at_5"] == metrics["dev"]["recall@5"]
    assert summary["harness_run_id"] == run["id"]
    history = []
    for record in by_type["history"]:
        items = {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.history.item}
        if "train/loss" in items:
            history.append((items["_step"], items["train/loss"]))
    assert history == [(s["step"], s["value"]) for s in store.run_steps(run["id"]) if s["name"] == "loss"]
    artifacts = {(r.artifact.type, r.artifact.name) for r in by_type["artifact"]}
    assert artifacts == {("harness-run", f"run-{run['id']}"), ("model", f"adapter-{run['id']}")}
