"""`harness evaluate RUN_ID`: a run's saved embedder (re-indexed or not) and adapter reload onto its base
models and reproduce its stored predictions and retrieval; runs without artifacts are a clean error."""

import json
import os

import pytest

from harness.runner.artifacts import reevaluate
from harness.store.db import Store
from tests.conftest import run_cli, tiny_run_args


def db() -> Store:
    return Store(os.environ["HARNESS_DB"])


@pytest.mark.parametrize("extra", [(), ("--set", "reindex=true")])
def test_a_tuned_embedder_reloads_to_the_same_retrieval(tiny_data, extra):
    # a large rate, so the tuned tower retrieves differently from the base one
    assert run_cli(tiny_run_args(tiny_data, "ft_embed", "--embed-lr", "3e-2", *extra)) == 0
    [run] = db().query("SELECT id FROM runs WHERE status = 'finished'")
    _, results = reevaluate(db(), run["id"], ["dev", "test"])
    stored = {(p["split"], p["example_id"]): (json.loads(p["retrieved_ids"]), p["prediction"])
              for p in db().run_predictions(run["id"])}
    fresh = {(p["split"], p["example_id"]): (p["retrieved_ids"], p["prediction"])
             for r in results.values() for p in r.predictions}
    assert fresh == stored


def test_a_run_without_artifacts_or_unknown_is_one_line(tiny_data, capsys):
    assert run_cli(tiny_run_args(tiny_data)) == 0
    [run] = db().query("SELECT id FROM runs")
    capsys.readouterr()
    assert run_cli(["evaluate", run["id"]]) == 2
    assert "saved no artifacts" in capsys.readouterr().err
    assert run_cli(["evaluate", "nosuchrun"]) == 2
    assert run_cli(["evaluate", run["id"], "--splits", "validation"]) == 2
    err = capsys.readouterr().err
    assert "no run with id" in err and "--splits" in err and "Traceback" not in err


@pytest.mark.parametrize("command", [["grid"], ["evaluate"]])
def test_new_commands_explain_themselves(command, capsys):
    assert run_cli([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage:" in out and "harness" in out
