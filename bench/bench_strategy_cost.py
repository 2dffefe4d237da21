"""Strategy cost on identical data and steps: indp, rag_sequence, rag_token, two_phase, relative to indp.

    python bench/bench_strategy_cost.py --models small --train 8 [--repeats 1]    # MiniLM + SmolLM2-135M
    python bench/bench_strategy_cost.py --models tiny --train 16 --repeats 3      # the random test models

Every strategy's `fit` runs on the same training questions (the first --train of the offline default),
the same batch size, 1 epoch, k = 5, from freshly loaded base models, one after the other in one process,
repeated and interleaved. Timed: the whole `fit` (LoRA set-up, loops, artifact saving), as `fit_seconds`
on the leaderboard. Lawton et al. (Table 3, HotPotQA) measured RAG-Sequence and RAG-Token at 1.80x and two-phase at 2.23x
the time of independent fine-tuning; their generator dominated (7-8B parameters vs a 22-109M embedder).
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _machine import header  # noqa: E402

from harness import plugins  # noqa: E402
from harness.config import RunConfig  # noqa: E402
from harness.runner.assemble import build_pipeline, load_dataset, resolve  # noqa: E402
from harness.store.layout import create_run_folder  # noqa: E402
from harness.training.context import FitContext  # noqa: E402
from harness.training.loop import steps_per_run  # noqa: E402

STRATEGIES = ("indp", "rag_sequence", "rag_token", "two_phase")
PAPER = {"indp": 1.0, "rag_sequence": 1.80, "rag_token": 1.80, "two_phase": 2.23}  # HotPotQA, Table 3
MODELS = {"small": ("minilm", "smollm2-135m", None), "tiny": ("tiny-embedder", "tiny-llama", 300)}


def fit_once(strategy: str, args, workdir: str) -> dict:
    embedder, generator, corpus_limit = MODELS[args.models]
    cfg = RunConfig(strategy=strategy, embedder=embedder, generator=generator, corpus_limit=corpus_limit,
                    batch_size=args.batch_size)
    resolved = resolve(cfg)
    cfg = resolved.config
    dataset = load_dataset(cfg, resolved)
    dataset.train = dataset.train[: args.train]
    torch.manual_seed(0)
    pipeline = build_pipeline(cfg, resolved, dataset, "cpu")
    ctx = FitContext(pipeline, dataset, cfg, resolved.options, "cpu", f"bench-{strategy}",
                     create_run_folder(cfg, Path(workdir) / "runs"))
    start = time.perf_counter()
    resolved.strategy_cls().fit(ctx)
    seconds = time.perf_counter() - start
    ctx.flush_log()
    return {"seconds": seconds, "tokens": ctx.trained_tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", choices=sorted(MODELS), default="small")
    parser.add_argument("--train", type=int, default=8, help="training questions (the same for every strategy)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    header("strategy cost on identical data and steps, relative to indp")
    plugins.load_plugins()
    embedder, generator, _ = MODELS[args.models]
    steps = steps_per_run(args.train, args.batch_size, 1)
    print(f"{embedder} + {generator}; {args.train} training questions, batch {args.batch_size}, 1 epoch = {steps} "
          f"generator steps per phase, k=5; indp's embedder half: ft_embed's defaults (batch 8, 1 epoch)")
    results: dict[str, list[dict]] = {s: [] for s in STRATEGIES}
    with tempfile.TemporaryDirectory() as workdir:
        for repeat in range(args.repeats):
            for strategy in STRATEGIES:
                result = fit_once(strategy, args, f"{workdir}/{repeat}")
                results[strategy].append(result)
                print(f"  repeat {repeat + 1} {strategy:13s} fit {result['seconds']:8.2f}s  tokens {result['tokens']}",
                      flush=True)
    median = {s: statistics.median(r["seconds"] for r in results[s]) for s in STRATEGIES}
    least = {s: min(r["seconds"] for r in results[s]) for s in STRATEGIES}  # the least disturbed run
    print(f"{'strategy':13s} {'median s':>9s} {'x indp':>7s} {'min s':>9s} {'x indp':>7s} {'paper':>6s} {'trained tokens':>15s}")
    for strategy in STRATEGIES:
        print(f"{strategy:13s} {median[strategy]:9.2f} {median[strategy] / median['indp']:7.2f} {least[strategy]:9.2f} "
              f"{least[strategy] / least['indp']:7.2f} {PAPER[strategy]:6.2f} {results[strategy][0]['tokens']:15d}")

if __name__ == "__main__":
    main()
