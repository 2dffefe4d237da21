"""Where and how code runs: processes and devices, progress, timing, the verified cache.

    distributed.py  one run on N processes (torchrun / accelerate): shards, gathers, launching
    gpu.py          device policy: dtype, attention, QLoRA, batch sizes that fit, peak FLOP/s and MFU
    progress.py     bars on a terminal, a `[progress]` line every 30 s in a log
    timing.py       timers, peak memory, the device a run uses
    cache.py        cache entries written whole (temp folder + rename) and verified before use

Public (plugins import these from `harness.runtime`): the names in `__all__`.
"""

from harness._exports import exports

__all__, __getattr__ = exports(__name__, {
    "cache": ("cache",),
    "distributed": ("launch", "launched_processes", "main_process_first", "start_accelerator"),
    "progress": ("phase",),
    "timing": ("Timer", "pick_device", "peak_memory_mb"),
})
