"""`harness export`: a run's files, its trained adapter, and bad input, through the real entry point."""

import json
import os
from pathlib import Path

from harness.config import RunConfig
from harness.config_file import load_run_file
from harness.store.db import Store
from tests.conftest import run_cli, tiny_run_args


def db() -> Store:
    return Store(os.environ["HARNESS_DB"])


def tiny_ft_gen_run(tiny_data: Path) -> str:
    assert run_cli(tiny_run_args(tiny_data, "ft_gen")) == 0
    return db().query("SELECT id FROM runs ORDER BY started_at DESC LIMIT 1")[0]["id"]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_export_writes_config_metrics_predictions_and_step_log(tiny_data, tmp_path, capsys):
    run_id = tiny_ft_gen_run(tiny_data)
    out = tmp_path / "out"
    capsys.readouterr()
    assert run_cli(["export", run_id[:5], "--to", str(out)]) == 0
    assert str(out.resolve()) in capsys.readouterr().out
    stored = json.loads(db().find_run(run_id)["config"])
    assert json.loads((out / "config.json").read_text()) == stored
    assert RunConfig(**load_run_file(out / "config.toml")).to_dict() == stored  # re-runnable as it is
    assert json.loads((out / "metrics.json").read_text()) == db().run_metrics(run_id)
    predictions = read_jsonl(out / "predictions.jsonl")
    assert len(predictions) == 4 and {p["split"] for p in predictions} == {"dev", "test"}
    assert all(isinstance(p["golds"], list) and len(p["retrieved_ids"]) == 5 for p in predictions)
    steps = read_jsonl(out / "steps.jsonl")
    assert steps == db().run_steps(run_id) and any(s["name"] == "loss" for s in steps)
    summary = json.loads((out / "run.json").read_text())
    assert summary["status"] == "finished" and Path(summary["artifacts"]["adapter"]).is_dir()


def test_export_adapter_copies_the_trained_folder_and_never_overwrites(tiny_data, tmp_path, capsys):
    run_id = tiny_ft_gen_run(tiny_data)
    hub = tmp_path / "hub"
    capsys.readouterr()
    assert run_cli(["export", run_id, "--adapter", str(hub)]) == 0
    assert "huggingface-cli upload" in capsys.readouterr().out
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in (hub / "adapter").iterdir()}
    assert run_cli(["export", run_id, "--adapter", str(hub)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_export_bad_input_is_one_line(tiny_data, tmp_path, capsys):
    assert run_cli(tiny_run_args(tiny_data)) == 0
    run_id = db().query("SELECT id FROM runs")[0]["id"]
    capsys.readouterr()
    for args, needle in [([run_id], "needs --to DIR, --adapter DIR, --corpus FILE or --track"),
                         ([run_id, "--adapter", str(tmp_path / "a")], "saved no adapter or embedder"),
                         (["nope", "--to", str(tmp_path / "x")], "no run with id 'nope'"),
                         ([run_id, "--track", "neptune"], "unknown tracker 'neptune'")]:
        assert run_cli(["export", *args]) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
