"""Every built-in study at smoke scale through Ray (a local cluster of 2 CPUs), and a driver killed mid-study
(SIGKILL, its process group) whose re-run resumes: what finished is kept, no run is done twice, and the
report has every cell."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.store.db import Store
from tests.conftest import run_cli

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")  # one Ray cluster at a time under pytest -n 2 (Makefile)
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def ray_cluster():
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_AUTH_MODE", "disabled")  # the head's setting; its workers and a second driver share it
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(ROOT), "HARNESS_THREADS": "1"}})
        yield ray.get_runtime_context().gcs_address
        ray.shutdown()


def finished_runs() -> list[dict]:
    return Store(os.environ["HARNESS_DB"]).query("SELECT id, run_key, status FROM runs WHERE status = 'finished'")


def report(name: str, capsys) -> dict:
    capsys.readouterr()
    assert run_cli(["study", "report", name, "--scale", "smoke", "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_siriwardhana_at_smoke_scale_on_ray(ray_cluster, capsys):
    assert run_cli(["study", "run", "siriwardhana2021", "--scale", "smoke", "--executor", "ray"]) == 0
    data = report("siriwardhana2021", capsys)
    assert all(r["verdict"] != "not run" for r in data["rows"] if r["metric"] != "hours")
    assert data["claims"][0]["verdict"] != "not run"


def folders_finished(root: Path) -> int:
    return sum(1 for status in root.rglob("status.json") if json.loads(status.read_text()).get("status") == "finished")


def test_lawton_on_ray_survives_a_killed_driver_and_resumes(ray_cluster, capsys):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = ["study", "run", "lawton2025", "--scale", "smoke", "--executor", "ray", "--ray-address", ray_cluster]
    driver = subprocess.Popen([sys.executable, "-m", "harness", *args], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    runs_root, deadline = Path(os.environ["HARNESS_RUNS"]), time.monotonic() + 300
    while folders_finished(runs_root) < 3:
        assert driver.poll() is None, driver.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "the driver finished no 3 runs in 300 s"
        time.sleep(0.5)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    before = folders_finished(runs_root)
    assert run_cli(args) == 0  # the same command again: resumes
    runs = finished_runs()
    assert len({r["run_key"] for r in runs}) == len(runs)  # nothing done twice
    assert len(runs) >= before
    data = report("lawton2025", capsys)
    assert all(r["verdict"] != "not run" for r in data["rows"] if r["metric"] != "hours")
    assert run_cli(args) == 0 and len(finished_runs()) == len(runs)  # and again: nothing new


def test_siriwardhana_at_smoke_scale_through_submitit_local(capsys):
    pytest.importorskip("submitit")
    args = ["study", "run", "siriwardhana2021", "--scale", "smoke", "--executor", "slurm", "--slurm-cluster", "local"]
    assert run_cli(args) == 0
    runs = finished_runs()
    assert len(runs) == 2
    assert run_cli(args) == 0 and len(finished_runs()) == 2  # again: nothing new
    assert report("siriwardhana2021", capsys)["claims"][0]["verdict"] != "not run"
