"""One run and one corpus encode on 2 processes vs 1 (`--processes`: torchrun + gloo on the CPU), side by side.

    flock /tmp/rag-heavy.lock python bench/bench_ddp.py [--passages 1000] [--questions 48]
    python bench/bench_ddp.py --embedder tiny-embedder         # no packaged model: no lock needed

1) `harness run --plugin rag_token` on the tiny models and a synthetic local dataset (`--questions` training
   questions, batch 4), `--processes 1` vs `--processes 2`: wall time of the whole command (start-up,
   fit, evaluation) and the fit seconds it stores. The losses are the same (tests/harness/runtime/test_distributed.py).
2) `harness index` of the first `--passages` passages of the offline default corpus with MiniLM (the real
   packaged embedder), 1 vs 2 processes, each in a fresh cache: the encode+build seconds it prints, and
   the passages per second, from which the time per million passages follows.
This machine has 2 vCPUs that behave as one core (docs/architecture.md §9): two processes share it, so expect no
speed-up here; the case for processes is one per GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _machine import header  # noqa: E402

ROOT = Path(__file__).parents[1]


def harness(args: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return time.perf_counter() - start, done.stdout


def synthetic_dataset(folder: Path, questions: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w") as fh:
        for i in range(questions):
            passage = {"id": f"p{i}", "title": f"Item {i}", "text": f"Item {i} has the code {i * 7919 % 1000}."}
            fh.write(json.dumps(passage) + "\n")
    for split, rows in (("train", range(questions)), ("dev", range(8)), ("test", range(8, 17))):
        with (folder / f"{split}.jsonl").open("w") as fh:
            for i in rows:
                fh.write(json.dumps({"id": f"{split}{i}", "question": f"What code has item {i}?",
                                     "answers": [str(i * 7919 % 1000)], "gold_passage_ids": [f"p{i}"]}) + "\n")
    return folder


def bench_run(tmp: Path, questions: int, env: dict) -> None:
    data = synthetic_dataset(tmp / "data", questions)
    print(f"\n## harness run --plugin rag_token, tiny models, {questions} training questions (batch 4)")
    print("| processes | wall s | fit s |\n| --- | --- | --- |")
    walls = {}
    for processes in (1, 2):
        db = tmp / f"run{processes}.duckdb"
        args = ["--db", str(db), "run", "--plugin", "rag_token", "--dataset", "local", "--data-dir", str(data),
                "--embedder", "tiny-embedder", "--generator", "tiny-llama", "--max-new-tokens", "4",
                "--processes", str(processes)]
        wall, out = harness(args, env)
        fit = float(re.search(r"fit ([\d.]+)s", out).group(1))
        walls[processes] = (wall, fit)
        print(f"| {processes} | {wall:.1f} | {fit:.1f} |")
    print(f"ratio 2 processes / 1 process: wall {walls[2][0] / walls[1][0]:.2f}x, fit {walls[2][1] / walls[1][1]:.2f}x")


def bench_encode(tmp: Path, passages: int, embedder: str, env: dict) -> None:
    print(f"\n## harness index: the first {passages} passages of fanoutqa_wiki with {embedder}, fresh cache each")
    print("| processes | encode + build s | passages/s | hours per million passages |\n| --- | --- | --- | --- |")
    seconds = {}
    for processes in (1, 2):
        cache = tmp / f"cache{processes}"
        _, out = harness(["index", "--embedder", embedder, "--corpus-limit", str(passages), "--processes",
                          str(processes)], {**env, "HARNESS_CACHE": str(cache), "HARNESS_SHIPPED_VECTORS": "0"})
        seconds[processes] = float(re.search(r"in ([\d.]+)s", out).group(1))
        rate = passages / seconds[processes]
        print(f"| {processes} | {seconds[processes]:.1f} | {rate:.1f} | {1e6 / rate / 3600:.1f} |")
    print(f"ratio 2 processes / 1 process: {seconds[2] / seconds[1]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=1000)
    parser.add_argument("--questions", type=int, default=48)
    parser.add_argument("--embedder", default="minilm", help="minilm (packaged: run under the heavy lock) or tiny-embedder")
    args = parser.parse_args()
    header("2 processes vs 1 (torchrun on the CPU, gloo): one run, one corpus encode")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HARNESS_RUNS": f"{tmp}/runs", "HARNESS_THREADS": "1"}
        env.setdefault("HARNESS_CACHE", f"{tmp}/cache")
        bench_run(Path(tmp), args.questions, env)
        bench_encode(Path(tmp), args.passages, args.embedder, env)


if __name__ == "__main__":
    main()
