"""`harness lm-eval`: a tiny ft_gen run's generator on local lm-evaluation-harness tasks, without and with its
adapter, through the real entry point and lm-eval's Python API (offline: the tasks read local JSON lines)."""

import json
import math
import os
import sys
from pathlib import Path

import pytest

from harness.store.db import Store
from tests.conftest import run_cli, tiny_run_args

NEEDS_LM_EVAL = "harness lm-eval needs the lm-eval extra: pip install 'rag-harness[lm-eval]'"

QUESTIONS = [
    ("What is the capital of France?", ["Paris", "Rome", "Berlin"], 0),
    ("Which river runs through Cairo?", ["Thames", "Nile", "Danube"], 1),
    ("Who wrote Hamlet?", ["Dickens", "Austen", "Shakespeare"], 2),
    ("How many legs has a spider?", ["eight", "six", "four"], 0),
    ("Which planet is red?", ["Venus", "Mars", "Jupiter"], 1),
    ("What colour is the sky?", ["green", "red", "blue"], 2),
]

MULTIPLE_CHOICE = """\
task: tiny_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_choice: choices
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""

LOGLIKELIHOOD = """\
task: tiny_answer
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: loglikelihood
doc_to_text: "Question: {{{{question}}}}\\nAnswer:"
doc_to_target: " {{{{answer}}}}"
metric_list:
  - metric: perplexity
    aggregation: perplexity
    higher_is_better: false
"""


def db() -> Store:
    return Store(os.environ["HARNESS_DB"])


def newest_run() -> str:
    return db().query("SELECT id FROM runs ORDER BY started_at DESC LIMIT 1")[0]["id"]


def write_tasks(folder: Path) -> Path:
    folder.mkdir()
    data = folder / "questions.jsonl"
    data.write_text("".join(json.dumps({"question": q, "choices": c, "label": i, "answer": c[i]}) + "\n"
                            for q, c, i in QUESTIONS))
    (folder / "tiny_choice.yaml").write_text(MULTIPLE_CHOICE.format(data=data))
    (folder / "tiny_answer.yaml").write_text(LOGLIKELIHOOD.format(data=data))
    return folder


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_datasets"))  # the tasks' data, not the user's cache


def test_lm_eval_scores_the_base_and_tuned_generator_and_stores_both(tiny_data, tmp_path, capsys, offline):
    pytest.importorskip("lm_eval", reason=NEEDS_LM_EVAL)
    assert run_cli(tiny_run_args(tiny_data, "ft_gen")) == 0
    run_id = newest_run()
    tasks = write_tasks(tmp_path / "tasks")
    capsys.readouterr()
    assert run_cli(["lm-eval", run_id[:6], "--tasks", "tiny_choice,tiny_answer", "--include-path", str(tasks),
                    "--limit", "4"]) == 0
    out = capsys.readouterr().out
    assert "tiny_choice" in out and "perplexity" in out and "change" in out
    stored = db().run_metrics(run_id)["lm_eval"]
    for name in ("tiny_choice/acc", "tiny_answer/perplexity"):
        base, tuned = stored[f"{name}_base"], stored[f"{name}_tuned"]
        assert math.isfinite(base) and math.isfinite(tuned), (name, base, tuned)
    assert 0.0 <= stored["tiny_choice/acc_base"] <= 1.0 and 0.0 <= stored["tiny_choice/acc_tuned"] <= 1.0
    assert stored["tiny_choice/n"] == 4 and stored["tiny_answer/n"] == 4
    # the adapter was applied: the trained LoRA weights move the answer's likelihood
    assert stored["tiny_answer/perplexity_base"] > 1.0
    assert stored["tiny_answer/perplexity_tuned"] != stored["tiny_answer/perplexity_base"]
    # the run's own metrics are untouched
    assert {"dev", "test"} <= set(db().run_metrics(run_id))
    capsys.readouterr()
    assert run_cli(["show", run_id, "--predictions", "0"]) == 0  # harness show prints them beside the run's own
    shown = capsys.readouterr().out
    assert "lm-evaluation-harness" in shown and "tiny_answer/perplexity" in shown

    # an unknown task is one line, before any model loads
    assert run_cli(["lm-eval", run_id, "--tasks", "tiny_choise", "--include-path", str(tasks)]) == 2
    err = capsys.readouterr().err
    assert "unknown lm-eval task 'tiny_choise'" in err and "tiny_choice" in err and "Traceback" not in err


def test_lm_eval_on_a_run_without_an_adapter_is_one_line(tiny_data, tmp_path, capsys, offline):
    pytest.importorskip("lm_eval", reason=NEEDS_LM_EVAL)
    assert run_cli(tiny_run_args(tiny_data)) == 0  # no_ft: the base models, nothing trained
    capsys.readouterr()
    assert run_cli(["lm-eval", newest_run(), "--tasks", "tiny_choice", "--include-path", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "has no LoRA adapter" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_lm_eval_without_the_extra_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # what Python sees when the package is not installed
    assert run_cli(["lm-eval", "anyrun", "--tasks", "arc_easy"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'rag-harness[lm-eval]'" in err and len(err.strip().splitlines()) == 1, err
