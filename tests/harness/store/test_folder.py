"""Every run is a folder: written while the run works, finalised atomically (status.json last, with every
file's sha256), read back verified; artifact paths stay inside their folder; the store is never open while
a model works; a run whose process is gone reads `interrupted`."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.store.db import Store
from harness.store.folder import RunFolder, effective_status, lost_reason, read_finished, resolve_artifact
from tests.conftest import run_cli, tiny_run_args

CONFIG = {"strategy": "no_ft", "dataset": "d", "embedder": "e", "generator": "g", "seed": 0}


def new_folder(tmp_path, name="0123456789ab") -> RunFolder:
    folder = RunFolder.create(tmp_path / name, CONFIG, {"run_id": name, "run_key": "k"})
    folder.start_attempt({"device": "cpu"})
    return folder


def test_a_tiny_run_writes_one_self_contained_folder(tiny_data):
    assert run_cli(tiny_run_args(tiny_data, "ft_gen")) == 0
    [run] = Store(os.environ["HARNESS_DB"]).query("SELECT * FROM runs")
    folder = Path(run["folder"])
    assert folder.parent == Path(os.environ["HARNESS_RUNS"]).resolve() and folder.name == run["id"]
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "meta.json", "heartbeat.json", "steps.jsonl", "metrics.json", "predictions.jsonl",
            "artifacts.json", "status.json", "artifacts"} <= names
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["host"] == socket.gethostname() and meta["pid"] == os.getpid() and meta["run_id"] == run["id"]
    assert json.loads((folder / "config.json").read_text()) == json.loads(run["config"])
    finished = read_finished(folder)
    assert finished.status == "finished" and finished.artifacts["adapter"]["path"] == "artifacts/adapter"
    assert {n for _, n, _, _ in finished.steps} >= {"loss", "lr"} and len(finished.predictions) == 4


def test_status_is_written_last_and_names_every_file(tmp_path):
    folder = new_folder(tmp_path)
    folder.append_steps([(1, "loss", 2.0, 0.1)])
    assert folder.status() is None
    with pytest.raises(UserError, match="unfinished"):
        read_finished(folder.path)
    folder.finalise("finished", metrics=[("dev", "em", 50.0)], predictions=[])
    status = folder.status()
    assert status["status"] == "finished" and set(status["files"]) >= {"config.json", "meta.json", "steps.jsonl", "metrics.json"}
    assert [p.name for p in folder.path.iterdir() if p.name.startswith(".")] == []  # no temp files left behind
    with pytest.raises(UserError, match="already finalised"):
        folder.start_attempt()


@pytest.mark.parametrize("damage, needle", [
    (lambda f: (f / "steps.jsonl").write_text('{"step": 1'), "steps.jsonl is missing or does not match"),
    (lambda f: (f / "metrics.json").unlink(), "metrics.json is missing"),
    (lambda f: (f / "status.json").write_text("{"), "status.json is not valid JSON"),
    (lambda f: (f / "status.json").write_text('{"status": "finished"}'), "status.json: field 'error' is missing"),
    (lambda f: (f / "artifacts" / "adapter" / "w.bin").write_bytes(b"changed"), "artifact 'adapter'"),
])
def test_a_damaged_folder_is_one_clear_error(tmp_path, damage, needle):
    folder = new_folder(tmp_path)
    folder.append_steps([(1, "loss", 2.0, 0.1)])
    folder.save_artifact("adapter", lambda d: (d / "w.bin").write_bytes(b"weights"))
    folder.finalise("finished", metrics=[("dev", "em", 50.0)], predictions=[])
    read_finished(folder.path)  # intact: reads
    damage(folder.path)
    with pytest.raises(UserError, match=needle):
        read_finished(folder.path)


def test_a_retried_attempt_starts_clean(tmp_path):
    folder = new_folder(tmp_path)
    folder.append_steps([(1, "loss", 2.0, 0.1)])
    folder.save_artifact("adapter", lambda d: (d / "w.bin").write_bytes(b"half"))
    folder.start_attempt()  # the worker died; the retry starts over in the same folder
    assert folder.steps() == [] and folder.artifacts() == {} and folder.meta["attempts"] == 2


def test_artifact_paths_never_leave_their_folder(tmp_path):
    root = tmp_path / "run"
    (root / "artifacts" / "adapter").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "artifacts" / "link").symlink_to(tmp_path / "elsewhere")
    assert resolve_artifact(root, "artifacts/adapter") == (root / "artifacts" / "adapter").resolve()
    for bad in (str(tmp_path / "elsewhere"), "../elsewhere", "artifacts/../../elsewhere", "artifacts/link"):
        with pytest.raises(UserError, match="absolute|outside its run folder"):
            resolve_artifact(root, bad)


STRATEGY_THAT_PROBES_THE_STORE = '''
import subprocess, sys
from harness.hookspecs import hookimpl

class ProbeStore:
    name = "probe_store"
    citation = ""
    description = "a test strategy"
    needs_context_labels = False
    learning_rates = {}

    def fit(self, ctx):
        import os
        code = "import duckdb, sys; duckdb.connect(sys.argv[1]).close()"
        result = subprocess.run([sys.executable, "-c", code, os.environ["HARNESS_DB"]], capture_output=True)
        ctx.log(1, store_free=float(result.returncode == 0))

@hookimpl
def register_strategies(register):
    register(ProbeStore)
'''


def test_the_store_is_not_open_while_the_model_works(tmp_path, tiny_data, clean_plugins):
    """Another process can open the store for writing while `fit` runs: the run holds no connection."""
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "probe.py").write_text(STRATEGY_THAT_PROBES_THE_STORE)
    assert run_cli(["--plugins-dir", str(tmp_path / "plugins"), *tiny_run_args(tiny_data, "probe_store")]) == 0
    store = Store(os.environ["HARNESS_DB"])
    [row] = store.query("SELECT value FROM train_log WHERE name = 'store_free'")
    assert row["value"] == 1.0


# -- liveness ---------------------------------------------------------------------------------------
def test_a_dead_process_on_this_host_is_lost(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    folder = new_folder(tmp_path)
    beat = json.loads((folder.path / "heartbeat.json").read_text())
    (folder.path / "heartbeat.json").write_text(json.dumps({**beat, "pid": child.pid, "pid_start": None}))
    assert "is gone" in lost_reason(str(folder.path), None, None, None)
    assert lost_reason(str(new_folder(tmp_path, "a1a1a1a1a1a1").path), None, None, None) is None  # this process


def test_a_stale_heartbeat_from_another_host_is_lost(tmp_path):
    folder = new_folder(tmp_path)
    beat = {"host": "other-node", "pid": 4242, "interval": 10, "time": time.time()}
    (folder.path / "heartbeat.json").write_text(json.dumps(beat))
    row = {"status": "running", "folder": str(folder.path), "host": "other-node", "pid": 4242}
    assert effective_status(row)["status"] == "running"  # fresh beat: may be working
    (folder.path / "heartbeat.json").write_text(json.dumps({**beat, "time": time.time() - 120}))
    shown = effective_status(row)
    assert shown["status"] == "interrupted" and "no heartbeat for 120s" in shown["error"]


def test_a_reused_pid_does_not_keep_a_run_alive(tmp_path):
    folder = new_folder(tmp_path)
    beat = json.loads((folder.path / "heartbeat.json").read_text())
    (folder.path / "heartbeat.json").write_text(json.dumps({**beat, "pid_start": beat["pid_start"] - 1}))
    assert "is gone" in lost_reason(str(folder.path), None, None, None)


def test_a_forged_heartbeat_never_keeps_a_run_alive(tmp_path):
    """A beat naming a live process that did not write it (no start time, or another one), or dated in the
    future, reads as lost."""
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        folder = new_folder(tmp_path)
        beat = json.loads((folder.path / "heartbeat.json").read_text())
        for forged in ({**beat, "pid": unrelated.pid, "pid_start": None},
                       {k: v for k, v in {**beat, "pid": unrelated.pid}.items() if k != "pid_start"},
                       {**beat, "pid": unrelated.pid, "pid_start": beat["pid_start"]}):
            (folder.path / "heartbeat.json").write_text(json.dumps(forged))
            assert "is gone" in lost_reason(str(folder.path), None, None, None)
        future = {"host": "other-node", "pid": 4242, "interval": 10, "time": time.time() + 3600}
        (folder.path / "heartbeat.json").write_text(json.dumps(future))
        row = {"status": "running", "folder": str(folder.path), "host": "other-node", "pid": 4242}
        shown = effective_status(row)
        assert shown["status"] == "interrupted" and "in the future" in shown["error"]
    finally:
        unrelated.kill()
        unrelated.wait()


def test_results_that_do_not_fit_the_format_finalise_the_run_failed(tmp_path):
    folder = new_folder(tmp_path)
    bad = {"split": "test", "example_id": "", "question": "q", "prediction": "p", "golds": [], "gold_passage_ids": [],
           "retrieved_ids": [], "em": 1.0, "f1": 1.0, "hit": None, "answer_hit": 1.0}
    folder.finalise("finished", metrics=[("test", "em", 1.0)], predictions=[bad])
    run = read_finished(folder.path)  # still a folder every reader takes
    assert run.status == "failed" and "example_id" in run.error and run.metrics == []
