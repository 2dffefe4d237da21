"""A grid on a Ray cluster that is already running (`--ray-address`), as on a real cluster: the head is
started with `ray start --head` in its own process group, the grid runs as a user types it in another
process, and the driver only connects to the head."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from harness.store.db import Store
from tests.conftest import free_port, stop_process_group, tiny_run_args

pytestmark = pytest.mark.xdist_group("ray")  # one Ray cluster at a time under pytest -n 2 (Makefile)

pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[3]


def wait_started(head: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 180
    while "Ray runtime started" not in log.read_text():
        assert head.poll() is None and time.monotonic() < deadline, f"ray start --head failed:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)


@pytest.fixture
def ray_head(tmp_path):
    """`ray start --head --block` on a free port (2 CPUs); the whole process group is stopped afterwards."""
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    port = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT), "HARNESS_THREADS": "1"}
    log_path = tmp_path / "ray-head.log"
    log = log_path.open("w")
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must stay under 108 bytes
    head = subprocess.Popen([ray_cli, "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
                             "--include-dashboard=false", f"--temp-dir={temp_dir}"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_started(head, log_path)
        yield f"127.0.0.1:{port}", env
    finally:
        stop_process_group(head, timeout=60)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def grid_on(address: str, env: dict, data: Path) -> subprocess.CompletedProcess:
    args = ["grid", *tiny_run_args(data, "ft_gen")[1:], "--gen-lr", "1e-4,1e-3", "--executor", "ray",
            "--ray-address", address]
    return subprocess.run([sys.executable, "-c", "from harness.cli import main; main()", *args], env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.timeout(900)
def test_a_grid_runs_on_a_running_cluster_given_its_address(ray_head, tiny_data):
    address, env = ray_head
    result = grid_on(address, env, tiny_data)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "selected run" in result.stdout
    rows = Store(os.environ["HARNESS_DB"]).query("SELECT status, grid_id FROM runs")
    assert len(rows) == 2 and {r["status"] for r in rows} == {"finished"} and len({r["grid_id"] for r in rows}) == 1


def test_an_address_where_no_cluster_answers_is_one_line(tiny_data):
    result = grid_on(f"127.0.0.1:{free_port()}", dict(os.environ), tiny_data)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "no Ray cluster answers at 127.0.0.1:" in result.stderr and "ray start --head" in result.stderr
