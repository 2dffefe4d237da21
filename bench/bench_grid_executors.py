"""A learning-rate grid on Ray with 2 workers vs the local executor (one cell after the other), side by side.

    python bench/bench_grid_executors.py [--cells 4] [--repeats 1]

The same ft_gen grid (`--gen-lr` with CELLS rates) on the tiny test models and a 10-passage local dataset,
each variant a fresh `harness grid` process with its own store and run folders, alternating (local, ray,
local, ray, ...). Printed: wall seconds of each whole command (Ray's start-up included, as a user waits for
it), the ratio ray/local, and whether both selected the same cell. On a 2-core machine two workers share
what one process used: little to gain, and Ray's start-up costs; the scaling case is one GPU per cell.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def grid_command(data: Path, rates: str, executor: str) -> list[str]:
    return [sys.executable, "-c", "from harness.cli import main; main()", "grid", "--plugin", "ft_gen",
            "--dataset", "local", "--data-dir", str(data), "--embedder", "tiny-embedder", "--generator", "tiny-llama",
            "--max-new-tokens", "4", "--gen-lr", rates, "--executor", executor,
            *(["--cell-cpus", "1"] if executor == "ray" else [])]


def timed(command: list[str], workdir: Path, env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(command, env={**env, "HARNESS_DB": str(workdir / "h.duckdb"),
                                       "HARNESS_RUNS": str(workdir / "runs")},
                         capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{command[-1]} grid failed:\n{out.stderr[-2000:]}")
    line = next(x for x in out.stdout.splitlines() if x.startswith("selected run"))
    return wall, line.split("·")[0].split(":", 1)[1].strip()


def main() -> None:
    from tests.conftest import write_tiny_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    rates = ",".join(f"{10 ** -(i + 1):.0e}" for i in range(args.cells))
    with tempfile.TemporaryDirectory() as tmp:
        data = write_tiny_dataset(Path(tmp) / "data")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HARNESS_THREADS": "1", "RAY_AUTH_MODE": "disabled",
               "HARNESS_CACHE": str(Path(tmp) / "cache")}
        subprocess.run(grid_command(data, "1e-3", "local"), env={**env, "HARNESS_DB": f"{tmp}/warm.duckdb",
                       "HARNESS_RUNS": f"{tmp}/warm"}, capture_output=True, timeout=1800)  # builds the tiny models once
        walls: dict[str, list[float]] = {"local": [], "ray": []}
        chosen: dict[str, set[str]] = {"local": set(), "ray": set()}
        for r in range(args.repeats):
            for executor in ("local", "ray"):
                workdir = Path(tmp) / f"{executor}-{r}"
                workdir.mkdir()
                wall, selected = timed(grid_command(data, rates, executor), workdir, env)
                walls[executor].append(wall)
                chosen[executor].add(selected)
                print(f"{executor:5s} repeat {r}: {wall:.1f} s, selected {selected}", flush=True)
    local, ray = statistics.median(walls["local"]), statistics.median(walls["ray"])
    print(f"{args.cells} cells on {os.cpu_count()} CPUs: local {local:.1f} s, ray (2 workers) {ray:.1f} s, "
          f"ray/local = {ray / local:.2f}; same selection: {chosen['local'] == chosen['ray']}")


if __name__ == "__main__":
    main()
