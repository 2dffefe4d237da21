"""Joint training step, one question at a time (`micro_batch=1`, the default) vs the whole batch at once.

    python bench/bench_micro_batch.py [--steps 3] [--batch-size 4] [-k 5] [--repeats 2]

rag_token's loop (`plugins.strategies.rag_token.train_rag`) on the packaged MiniLM + SmolLM2-135M with
LoRA r=16, the offline default's first `steps × batch` training questions, the full cached index, from the
same weights. Each variant runs in a fresh child process so its peak RSS is its own; children alternate
(whole, micro, whole, micro, ...). Printed: seconds of training (the loop only, model loading excluded),
peak RSS of the child, the ratios micro/whole, and whether the per-step losses agree (the same maths).
Dropout is set to 0 in both variants (MiniLM's 0.1 would draw different masks when the batch is split,
so the losses would differ by the masks, not the maths); it does not change the cost.
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def child(micro_batch: int, steps: int, batch_size: int, k: int, threads: int) -> None:
    """Train `steps` steps with the given micro batch; print one JSON line."""
    import torch

    from harness import plugins
    from harness.builtins.strategies.rag_token import DEFAULT_EMBED_LR, DEFAULT_GEN_LR, rag_token_loss, train_rag
    from harness.config import RunConfig
    from harness.models.lora import prepare_generator_for_lora
    from harness.runner.assemble import build_pipeline, load_dataset, resolve
    from harness.store.layout import create_run_folder
    from harness.training.context import FitContext
    from harness.training.loop import unfreeze

    torch.set_num_threads(threads)
    plugins.load_plugins()
    cfg = RunConfig(strategy="rag_token", batch_size=batch_size, k=k)
    resolved = resolve(cfg)
    cfg = resolved.config
    dataset = load_dataset(cfg, resolved)
    dataset.train = dataset.train[: steps * batch_size]
    torch.manual_seed(0)
    pipeline = build_pipeline(cfg, resolved, dataset, "cpu")
    with tempfile.TemporaryDirectory() as workdir:
        ctx = FitContext(pipeline, dataset, cfg, None, "cpu", "bench", create_run_folder(cfg, Path(workdir) / "runs"))
        prepare_generator_for_lora(ctx)
        unfreeze(pipeline.query_encoder)
        for module in (*pipeline.query_encoder.modules(), *pipeline.generator.model.modules()):
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0  # MiniLM's dropout draws different masks per chunking: off, so losses compare
        start = time.perf_counter()
        train_rag(ctx, rag_token_loss, DEFAULT_EMBED_LR, DEFAULT_GEN_LR, "bench", micro_batch=micro_batch)
        seconds = time.perf_counter() - start
        ctx.flush_log()
        losses = [r["value"] for r in sorted(ctx.folder.steps(), key=lambda r: r["step"]) if r["name"] == "loss"]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "losses": losses}))


def run_child(micro_batch: int, args) -> dict:
    command = [sys.executable, __file__, "--child", str(micro_batch), "--steps", str(args.steps),
               "--batch-size", str(args.batch_size), "-k", str(args.k), "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        return child(args.child, args.steps, args.batch_size, args.k, args.threads)
    import torch
    from _machine import header

    torch.set_num_threads(args.threads)
    header("rag_token step: one question at a time (micro_batch=1) vs the whole batch (micro_batch=0)")
    print(f"minilm + smollm2-135m (LoRA r=16); {args.steps} steps of {args.batch_size} questions, k={args.k}; "
          f"each variant in its own process, alternating")
    results = {"whole": [], "micro": []}
    for repeat in range(args.repeats):
        for name, micro in (("whole", 0), ("micro", 1)) if repeat % 2 == 0 else (("micro", 1), ("whole", 0)):
            result = run_child(micro, args)
            results[name].append(result)
            print(f"  repeat {repeat + 1} {name:5s} train {result['seconds']:7.1f}s  peak RSS {result['peak_mb']:7.0f} MB"
                  f"  losses {', '.join(f'{x:.4f}' for x in result['losses'])}", flush=True)
    seconds = {n: statistics.median(r["seconds"] for r in rs) for n, rs in results.items()}
    peak = {n: statistics.median(r["peak_mb"] for r in rs) for n, rs in results.items()}
    same = all(abs(a - b) <= 1e-3 * max(1.0, abs(a)) for w, m in zip(results["whole"], results["micro"])
               for a, b in zip(w["losses"], m["losses"]))
    print(f"whole batch: {seconds['whole']:.1f}s, {peak['whole']:.0f} MB   micro_batch=1: {seconds['micro']:.1f}s, "
          f"{peak['micro']:.0f} MB")
    print(f"time ratio whole/micro {seconds['whole'] / seconds['micro']:.2f}x   peak memory ratio whole/micro "
          f"{peak['whole'] / peak['micro']:.2f}x   same losses (rel 1e-3): {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
