"""Progress where there is no terminal: plain lines (phase, done/total, rate, time left) in a log file."""

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.runtime.progress import LineProgress, duration, interval_seconds, per_second, progress
from tests.conftest import tiny_run_args


def test_lines_carry_phase_count_rate_and_time_left():
    out = io.StringIO()
    bar = LineProgress(None, "encoding corpus", 40, "passages", every=0, stream=out)
    for _ in range(4):
        time.sleep(0.01)
        bar.update(10)
    bar.close()
    bar.close()  # idempotent: one closing line
    lines = out.getvalue().splitlines()
    assert lines[0] == "[progress] encoding corpus: 0/40 passages (0%)"
    assert re.fullmatch(r"\[progress\] encoding corpus: 10/40 passages \(25%\), [\d.]+ passages/s, \d+s left", lines[1])
    assert lines[4].startswith("[progress] encoding corpus: 40/40 passages (100%)")
    assert re.fullmatch(r"\[progress\] encoding corpus: done, 40 passages in \d+s \([\d.]+ passages/s\)", lines[5])
    assert len(lines) == 6


def test_lines_follow_the_interval_not_every_update():
    out = io.StringIO()
    bar = LineProgress(range(1000), "steps", None, "steps", every=3600, stream=out)
    assert sum(1 for _ in bar) == 1000
    first, last = out.getvalue().splitlines()  # the start and the end, nothing between within the hour
    assert first == "[progress] steps: 0/1,000 steps (0%)"
    assert last.startswith("[progress] steps: done, 1,000 steps in ")


def test_interval_from_the_environment(monkeypatch):
    monkeypatch.setenv("HARNESS_PROGRESS_SECONDS", "5")
    assert interval_seconds() == 5
    for bad in ("soon", "-1", "nan"):  # never silently replaced: one clear error (exit 2 from the CLI)
        monkeypatch.setenv("HARNESS_PROGRESS_SECONDS", bad)
        with pytest.raises(UserError, match=f"HARNESS_PROGRESS_SECONDS must be a number of seconds >= 0.*'{bad}'"):
            interval_seconds()
    monkeypatch.delenv("HARNESS_PROGRESS_SECONDS")
    assert interval_seconds() == 30
    assert duration(42) == "42s" and duration(291) == "4m51s" and duration(3720) == "1h02m"
    assert per_second(31.4, "passages") == "31.4 passages/s" and per_second(0.04, "steps") == "25.0 s/step"


def test_not_a_terminal_gives_lines(monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_PROGRESS_SECONDS", "0")
    assert list(progress([1, 2], "phase", unit="items")) == [1, 2]
    err = capsys.readouterr().err
    assert "[progress] phase: 2/2 items (100%)" in err and "[progress] phase: done, 2 items in" in err


def harness_command() -> list[str]:
    """The console script a user runs, beside this interpreter (as installed by `make`)."""
    script = Path(sys.executable).with_name("harness")
    return [str(script)] if script.is_file() else [sys.executable, "-c", "from harness.cli import main; main()"]


def test_real_run_logged_to_a_file_shows_every_phase(tiny_data, tmp_path):
    """`harness run ... > run.log 2>&1`: encoding, training steps and evaluation each leave progress lines."""
    env = dict(os.environ, HARNESS_CACHE=str(tmp_path / "cold-cache"), HARNESS_PROGRESS_SECONDS="0")
    log = tmp_path / "run.log"
    with log.open("w") as fh:
        done = subprocess.run([*harness_command(), *tiny_run_args(tiny_data, "ft_gen")], stdout=fh,
                              stderr=subprocess.STDOUT, env=env, timeout=600)
    text = log.read_text()
    assert done.returncode == 0, text
    assert "\r" not in text  # no bar redrawn in place: a log is lines
    for phase, unit, total in (("encoding corpus", "passages", 10), ("ft_gen", "steps", 2),
                               ("evaluating dev", "questions", 2), ("evaluating test", "questions", 2)):
        assert f"[progress] {phase}: 0/{total} {unit} (0%)" in text
        rate = rf"[\d.]+ ({unit}/s|s/{unit[:-1]})"  # 31.4 passages/s, or 2.5 s/step for slow work
        assert re.search(rf"\[progress\] {phase}: {total}/{total} {unit} \(100%\), {rate}, \d+s left", text)
        assert re.search(rf"\[progress\] {phase}: done, {total} {unit} in \d+", text)
    order = [text.index(f"[progress] {phase}") for phase in ("encoding corpus", "ft_gen", "evaluating test")]
    assert order == sorted(order)
