"""`harness import` of a run folder with many predictions: streamed vs one statement per row.

    python bench/bench_import.py [--rows 1000000] [--row-by-row-rows 20000]

Writes one valid finished run folder with `--rows` predictions (as the harness writes them), then:
  streamed     `harness import FOLDER` in a fresh process (the real command: every line checked against the
               folder format, then DuckDB reads the file in one streamed statement): wall time, CPU time and
               peak RSS of that process (its ru_maxrss, from its start);
  row by row   the same predictions inserted with one `executemany` statement per row, as import did before
               it streamed (`--row-by-row-rows` of them only: it is slow), into a fresh store.
Prints rows per second of each and their ratio, and the streamed import's absolute time and peak memory.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import header

from harness.store.db import Store
from harness.store.folder import RunFolder

CONFIG = {"strategy": "no_ft", "dataset": "local", "embedder": "tiny-embedder", "generator": "tiny-llama", "seed": 0}


def prediction(i: int) -> dict:
    """A realistic line: a question, an answer, two golds, five retrieved ids."""
    return {"split": "test", "example_id": f"q{i:08d}", "question": f"who wrote the book number {i} in the list?",
            "prediction": "jane austen", "golds": ["Jane Austen", "Austen"], "gold_passage_ids": [f"p{i}"],
            "retrieved_ids": [f"p{i + j}" for j in range(5)], "em": float(i % 2), "f1": 0.5, "hit": 1.0,
            "answer_hit": 1.0}


def write_folder(root: Path, rows: int) -> Path:
    run_id = "0123456789ab"
    folder = RunFolder.create(root / run_id, CONFIG, {"run_id": run_id, "run_key": "bench"})
    folder.start_attempt({"device": "cpu"})
    with (folder.path / "predictions.jsonl").open("w") as fh:
        for start in range(0, rows, 10_000):
            fh.write("".join(json.dumps(prediction(i)) + "\n" for i in range(start, min(rows, start + 10_000))))
    folder.finalise("finished", metrics=[("test", "em", 50.0)])
    return folder.path


def streamed(folder: Path, db: Path) -> tuple[float, float, float]:
    """(wall seconds, peak RSS in MB, CPU seconds) of `harness import FOLDER` in its own process."""
    code = ("import resource, sys, time; from harness.cli import main; t = time.perf_counter()\n"
            "try:\n    main(['--db', sys.argv[1], 'import', sys.argv[2]])\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "u = resource.getrusage(resource.RUSAGE_SELF)\n"
            "print(time.perf_counter() - t, u.ru_maxrss / 1024, u.ru_utime + u.ru_stime)")
    out = subprocess.run([sys.executable, "-c", code, str(db), str(folder)], check=True, capture_output=True,
                         text=True, env={**os.environ, "HARNESS_RUNS": str(folder.parent)}).stdout
    seconds, peak, cpu = out.strip().splitlines()[-1].split()
    return float(seconds), float(peak), float(cpu)


def row_by_row(rows: int, db: Path) -> float:
    """Seconds to insert `rows` predictions one statement per row (the import before streaming)."""
    store = Store(str(db))
    store.check()
    values = [("0123456789ab", p["split"], p["example_id"], p["question"], p["prediction"], json.dumps(p["golds"]),
               json.dumps(p["gold_passage_ids"]), json.dumps(p["retrieved_ids"]), p["em"], p["f1"], p["hit"],
               p["answer_hit"]) for p in map(prediction, range(rows))]
    start = time.perf_counter()
    with store.transaction() as con:
        con.executemany("INSERT INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--row-by-row-rows", type=int, default=20_000)
    args = parser.parse_args()
    header("harness import: streamed vs one statement per row")
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_folder(Path(tmp) / "runs", args.rows)
        size = (folder / "predictions.jsonl").stat().st_size
        print(f"folder: {args.rows:,} predictions, predictions.jsonl {size / 2**20:.0f} MiB")
        seconds, peak, cpu = streamed(folder, Path(tmp) / "streamed.duckdb")
        load = os.getloadavg()[0]
        stored = Store(str(Path(tmp) / "streamed.duckdb")).query("SELECT count(*) AS n FROM predictions")[0]["n"]
        assert stored == args.rows, stored
        slow = row_by_row(args.row_by_row_rows, Path(tmp) / "rows.duckdb")
    fast_rate, slow_rate = args.rows / seconds, args.row_by_row_rows / slow
    print(f"streamed:   {args.rows:,} rows in {seconds:.1f}s wall, {cpu:.1f}s CPU ({fast_rate:,.0f} rows/s), "
          f"peak RSS {peak:.0f} MB (the whole `harness import` process, from its start)")
    print(f"machine load when the import ended: {load:.1f} (1-min load average, {os.cpu_count()} CPUs)")
    print(f"row by row: {args.row_by_row_rows:,} rows in {slow:.1f}s ({slow_rate:,.0f} rows/s)")
    print(f"ratio (rows/s): {fast_rate / slow_rate:.1f}x")


if __name__ == "__main__":
    main()
