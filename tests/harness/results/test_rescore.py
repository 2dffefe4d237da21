"""Migration m002 on a store written before it: old runs are marked, then rescored with DPR's has_answer
from their stored retrieved ids where the corpus loads, and left marked where it does not."""

import json
import os

import duckdb
import pytest

from harness.config import RunConfig
from harness.store.db import Store
from harness.store.migrations import ANSWER_MATCH, OLD_ANSWER_MATCH, m001_initial
from tests.conftest import run_cli, sigterm_inside_a_c_extension_import


def write_corpus(root):
    root.mkdir()
    passages = {"p1": "Obama's policy on trade was debated.", "p2": "She was born in the U.S. in 1961.",
                "p3": "Nothing relevant here."}
    (root / "corpus.jsonl").write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in passages.items()))
    for split in ("train", "dev", "test"):
        (root / f"{split}.jsonl").write_text(json.dumps({"question": "q?", "answers": ["x"]}) + "\n")


def store_before_m002(path, runs):
    """A database at m001 (as written by the harness before this change) holding `runs`:
    (run id, config, [(example id, golds, retrieved ids, stored answer_hit)])."""
    con = duckdb.connect(path)
    m001_initial(con)
    con.execute("CREATE TABLE _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
    con.execute("INSERT INTO _migrations VALUES ('m001_initial', now())")
    for run_id, config, preds in runs:
        con.execute("INSERT INTO runs (id, run_key, config, strategy, dataset, embedder, generator, seed, status, "
                    "started_at) VALUES (?, ?, ?, 'no_ft', 'local', 'tiny-embedder', 'tiny-llama', 0, 'finished', now())",
                    [run_id, run_id, json.dumps(config)])
        for ex_id, golds, retrieved, old_hit in preds:
            con.execute("INSERT INTO predictions VALUES (?, 'test', ?, 'q?', 'p', ?, '[]', ?, 0, 0, NULL, ?)",
                        [run_id, ex_id, json.dumps(golds), json.dumps(retrieved), old_hit])
        mean = 100 * sum(p[3] for p in preds) / len(preds)
        con.execute("INSERT INTO metrics VALUES (?, 'test', 'answer_recall@5', ?)", [run_id, mean])
    con.close()


def test_old_runs_are_marked_then_rescored_from_their_retrieved_passages(tmp_path, capsys):
    data = tmp_path / "data"
    write_corpus(data)
    config = RunConfig(strategy="no_ft", dataset="local", data_dir=str(data), embedder="tiny-embedder",
                       generator="tiny-llama").to_dict()
    gone = dict(config, data_dir=str(tmp_path / "gone"))
    store_before_m002(os.environ["HARNESS_DB"], [
        # old substring matcher: "Obama" missed in "Obama's", "US" found in "U.S." -> new: both flip
        ("r1", config, [("a", ["Obama"], ["p1", "p3"], 0.0), ("b", ["US"], ["p2", "p3"], 1.0),
                        ("c", ["1961"], ["p2"], 1.0)]),
        ("r2", config, [("a", ["Obama"], ["p9"], 0.0)]),  # a retrieved id the corpus lacks
        ("r3", gone, [("a", ["Obama"], ["p1"], 0.0)]),  # a dataset that no longer loads
    ])
    assert run_cli(["migrate"]) == 0
    out = capsys.readouterr().out
    assert "m002_answer_match_definition" in out and "3 runs have answer_recall computed with the old" in out
    store = Store(os.environ["HARNESS_DB"])
    assert {r["id"] for r in store.runs_with_answer_match(OLD_ANSWER_MATCH)} == {"r1", "r2", "r3"}

    assert run_cli(["migrate", "--recompute-answer-recall"]) == 0
    out = capsys.readouterr().out
    assert "1 runs" in out and "r2: retrieved passage ids of example a are not in the corpus" in out
    assert "r3: its corpus cannot be loaded" in out
    hits = {p["example_id"]: p["answer_hit"] for p in store.run_predictions("r1")}
    assert hits == {"a": 1.0, "b": 0.0, "c": 1.0}
    assert store.run_metrics("r1")["test"]["answer_recall@5"] == pytest.approx(200 / 3)
    assert store.run_metrics("r2")["test"]["answer_recall@5"] == 0.0  # kept as stored
    assert [r["id"] for r in store.runs_with_answer_match(ANSWER_MATCH)] == ["r1"]
    assert {r["id"] for r in store.runs_with_answer_match(OLD_ANSWER_MATCH)} == {"r2", "r3"}


def test_a_signal_while_a_corpus_loads_stops_the_rescore_and_leaves_the_run_marked(tmp_path):
    """A corpus that fails to load leaves its run marked and the rescore goes on; a SIGTERM that came out as
    that failure (inside a C extension's import) stops it instead of being reported as an unloadable corpus."""
    from harness import errors
    from harness.results.rescore import rescore_old_runs

    config = RunConfig(strategy="no_ft", dataset="local", data_dir=str(tmp_path), embedder="tiny-embedder",
                       generator="tiny-llama").to_dict()
    store_before_m002(os.environ["HARNESS_DB"], [("r1", config, [("a", ["Obama"], ["p1"], 0.0)])])
    assert run_cli(["migrate"]) == 0
    store = Store(os.environ["HARNESS_DB"])
    with pytest.raises(errors.Terminated):
        rescore_old_runs(store, sigterm_inside_a_c_extension_import)
    assert [r["id"] for r in store.runs_with_answer_match(OLD_ANSWER_MATCH)] == ["r1"]
    errors.forget_interrupts()

    def corpus_failing(config):
        raise ImportError("initialization failed")

    report = rescore_old_runs(store, corpus_failing)
    assert report.kept_old == [("r1", "its corpus cannot be loaded (initialization failed)")]


def test_runs_stored_after_m002_use_the_new_definition(tiny_data):
    from tests.conftest import tiny_run_args

    assert run_cli(tiny_run_args(tiny_data)) == 0
    store = Store(os.environ["HARNESS_DB"])
    assert [r["id"] for r in store.runs_with_answer_match(ANSWER_MATCH)] == [store.query("SELECT id FROM runs")[0]["id"]]
