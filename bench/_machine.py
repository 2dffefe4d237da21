"""What every benchmark prints first: the command that ran it and the machine it ran on."""

import os
import platform
import sys

import torch


def header(title: str) -> None:
    from harness.cli.common import quiet_libraries

    quiet_libraries()
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"# {title}")
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"machine: {cpu}; {os.cpu_count()} logical CPUs; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; cuda={'yes' if torch.cuda.is_available() else 'no'}")
