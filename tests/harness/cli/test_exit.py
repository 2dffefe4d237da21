"""Ctrl-C and SIGTERM from the real entry point: the run is stored `interrupted`, one documented line, exit
130 (SIGINT) or 143 (SIGTERM: `timeout`, Slurm preemption, `docker stop`), earlier runs untouched; also when
the signal's exception comes out as another one (a C extension's import turns it into `ImportError:
initialization failed`, as CI saw in a lazy `import sklearn`) or a library swallows it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.store.db import Store
from tests.conftest import tiny_run_args

HARNESS = str(Path(sys.executable).parent / "harness")

WAITING_STRATEGY = '''
import os, time
from pathlib import Path
from harness.hookspecs import hookimpl

class Waiting:
    name = "waiting"
    citation = ""
    needs_context_labels = False
    description = "waits in fit until a signal comes"
    learning_rates = dict()
    def fit(self, ctx):
        ctx.log(0, loss=1.0)
        Path(os.environ["READY_FILE"]).write_text("fitting")
        how = os.environ["WHERE_THE_SIGNAL_LANDS"]
        try:
            time.sleep(120)
        except BaseException:
            if how == "plain":
                raise
            if how == "in_a_c_extension_import":
                raise ImportError("initialization failed") from None
            # how == "in_a_library_that_swallows_it": training goes on
        for step in ctx.progress(range(600), "waiting"):
            time.sleep(0.2)

@hookimpl
def register_strategies(register):
    register(Waiting)
'''


CTRL_C = (signal.SIGINT, 130, "interrupted (Ctrl-C): a run in progress is stored as interrupted; earlier runs are intact")
SIGTERM = (signal.SIGTERM, 143, "terminated (SIGTERM): a run in progress is stored as interrupted; earlier runs are intact")


@pytest.mark.parametrize("sig, code, line, where", [
    (*CTRL_C, "plain"), (*SIGTERM, "plain"),
    (*SIGTERM, "in_a_c_extension_import"), (*CTRL_C, "in_a_c_extension_import"),
    (*CTRL_C, "in_a_library_that_swallows_it"),
])
def test_a_signal_mid_fit_stores_interrupted_and_says_so(tiny_data, tmp_path, sig, code, line, where):
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "waiting.py").write_text(WAITING_STRATEGY)
    ready = tmp_path / "ready"
    env = dict(os.environ, READY_FILE=str(ready), WHERE_THE_SIGNAL_LANDS=where)
    assert subprocess.run([HARNESS, *tiny_run_args(tiny_data)], env=env, capture_output=True, timeout=300).returncode == 0
    # Ctrl-C reaches a foreground program: a shell starts background jobs with SIGINT ignored, which their
    # children inherit (and Python then keeps), so a suite run in the background would never see it
    proc = subprocess.Popen([HARNESS, "--plugins-dir", str(plugin_dir), *tiny_run_args(tiny_data, "waiting")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 240
        while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ready.exists(), proc.communicate(timeout=10)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert [x for x in err.splitlines() if x.strip() and not x.startswith("[progress]")] == [line]
    assert "Aborted!" not in out + err and "Traceback" not in err
    runs = {r["strategy"]: r for r in Store(os.environ["HARNESS_DB"]).query("SELECT * FROM runs")}
    assert runs["waiting"]["status"] == "interrupted"
    assert runs["waiting"]["error"] == ("terminated by SIGTERM" if sig == signal.SIGTERM else "interrupted by the user (Ctrl-C)")
    assert runs["no_ft"]["status"] == "finished"  # the earlier run is untouched
    store = Store(os.environ["HARNESS_DB"])
    assert store.run_metrics(runs["waiting"]["id"]) == {}  # never a half-written result
    assert store.query("SELECT * FROM train_log WHERE run_id = ?", [runs["waiting"]["id"]])  # its log is kept


def holds_signals(pid: int) -> bool:
    """Whether process `pid`'s main thread has SIGINT and SIGTERM blocked (held pending), per /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    blocked = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")), 16)
    wanted = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    return blocked & wanted == wanted


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the signal mask from /proc")
def test_a_signal_while_the_command_starts_is_one_line_or_nothing(tiny_data):
    """Ctrl-C or SIGTERM at any moment of `harness run`'s start (torch importing) gives the documented line and
    code, or ends the process before it printed anything; never a traceback, an abort or a segfault (the
    signals are held pending from the package's first import until the handlers are in place and the heavy
    imports done). The moments count from when the package holds them (Python's own start before that is
    ~50 ms on an idle machine, far longer on a loaded one), two processes at a time (a Ctrl-C and a SIGTERM)."""
    for delay in (0.05, 0.2, 0.5, 0.9, 1.4):
        started = [(subprocess.Popen([HARNESS, *tiny_run_args(tiny_data)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)), sig)
                   for sig in (signal.SIGINT, signal.SIGTERM)]
        try:
            for proc, sig in started:
                deadline = time.monotonic() + 60
                while not holds_signals(proc.pid):
                    assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=60)
                    time.sleep(0.002)
            time.sleep(delay)
            for proc, sig in started:
                proc.send_signal(sig)
            for proc, sig in started:
                out, err = proc.communicate(timeout=240)
                line, code = (CTRL_C if sig == signal.SIGINT else SIGTERM)[2], 130 if sig == signal.SIGINT else 143
                said = [x for x in err.splitlines() if x.strip() and not x.startswith("[progress]")]
                quiet_end = proc.returncode in (-sig, 128 + sig) and not out and not said
                assert (proc.returncode == code and said == [line]) or quiet_end, \
                    (sig, delay, proc.returncode, err[-2000:])
        finally:
            for proc, _ in started:
                proc.kill()
                proc.wait()
