"""Cost measurement: wall-clock timers, peak memory, and the device a run used."""

from __future__ import annotations

import resource
import time
from contextlib import contextmanager

import torch


class Timer:
    """Named wall-clock sections: `with timer.section("fit"): ...`, then `timer.seconds["fit"]`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    @contextmanager
    def section(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def elapsed(self) -> float:
        return time.perf_counter() - self._start


def peak_memory_mb(device: str) -> float:
    """CUDA max allocated on a GPU run, else the process's peak resident set size."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def device_description(device: str) -> tuple[str, int]:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0), torch.cuda.device_count()
    import platform

    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)", 0


def pick_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
