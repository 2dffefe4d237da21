"""Progress on long work, on a terminal and in a log file alike.

    for batch in progress(batches, "jsa_rag", total=len(batches), unit="steps"): ...
    with progress(desc="encoding corpus", total=len(corpus), unit="passages") as bar:
        bar.update(64)
    with phase("converting SmolLM2 to float32 (once)"): ...

On a terminal (stderr is a TTY) this is a tqdm bar. Elsewhere (CI, `nohup`, Slurm, `> run.log`) a bar
switches off, so a plain line goes to stderr when the work starts, every `HARNESS_PROGRESS_SECONDS`
(default 30) while it runs, and when it ends:

    [progress] encoding corpus: 3,200/12,324 passages (26%), 31.4 passages/s, 4m51s left
    [progress] encoding corpus: done, 12,324 passages in 6m32s (31.4 passages/s)
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from tqdm.auto import tqdm

from harness import env

DEFAULT_SECONDS = 30.0


def interval_seconds() -> float:
    return env.progress_seconds(DEFAULT_SECONDS)


def on_terminal() -> bool:
    return sys.stderr.isatty()


def progress(iterable: Iterable | None = None, desc: str = "", total: int | None = None, unit: str = "it"):
    """A tqdm bar on a terminal, `LineProgress` otherwise; both iterate, `update(n)` and work as context managers.

    In a run launched on several processes only the main one (RANK 0) reports.
    """
    if int(os.environ.get("RANK", "0")) > 0:
        return tqdm(iterable, desc=desc, total=total, unit=unit, disable=True)
    if on_terminal():
        return tqdm(iterable, desc=desc, total=total, unit=unit)
    return LineProgress(iterable, desc, total, unit, interval_seconds())


def duration(seconds: float) -> str:
    """`4m51s`, `1h02m`, `12s`."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def per_second(rate: float, unit: str) -> str:
    """`31.4 passages/s`, or `24.5 s/step` for slow work (a rate of 0.0 steps/s says nothing)."""
    return f"{rate:.1f} {unit}/s" if rate >= 1 else f"{1 / rate:.1f} s/{unit.removesuffix('s')}"


class LineProgress:
    """Plain progress lines at a steady rhythm: phase, done/total, rate, time left."""

    def __init__(self, iterable: Iterable | None, desc: str, total: int | None, unit: str, every: float,
                 stream: Any = None):
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.desc, self.total, self.unit, self.every = iterable, desc, total, unit, every
        self.stream = stream or sys.stderr
        self.n = 0
        self.start = time.monotonic()
        self.last_line = self.start
        self.closed = False
        self._emit(self.status())

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return self.total if self.total is not None else len(self.iterable)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last_line >= self.every:
            self.last_line = now
            self._emit(self.status(now))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        elapsed = time.monotonic() - self.start
        rate = f" ({per_second(self.n / elapsed, self.unit)})" if elapsed > 0 and self.n else ""
        self._emit(f"{self.desc}: done, {self.n:,} {self.unit} in {duration(elapsed)}{rate}")

    def status(self, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self.start
        done = f"{self.n:,}/{self.total:,}" if self.total else f"{self.n:,}"
        parts = [f"{self.desc}: {done} {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.n / self.total:.0f}%)"
        if self.n and elapsed > 0:
            rate = self.n / elapsed
            parts.append(per_second(rate, self.unit))
            if self.total:
                parts.append(f"{duration(max(self.total - self.n, 0) / rate)} left")
        return ", ".join(parts)

    def _emit(self, text: str) -> None:
        print(f"[progress] {text}", file=self.stream, flush=True)


@contextmanager
def phase(desc: str):
    """One step with nothing to count (a model conversion): a line when it starts and one when it ends."""
    start = time.monotonic()
    print(f"[progress] {desc} ...", file=sys.stderr, flush=True)
    yield
    print(f"[progress] {desc}: done in {duration(time.monotonic() - start)}", file=sys.stderr, flush=True)
