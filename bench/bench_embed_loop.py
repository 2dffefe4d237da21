"""Embedder fine-tuning: the harness's ft_embed loop vs a bare PyTorch loop of the same steps.

    python bench/bench_embed_loop.py [--epochs 1] [--repeats 5] [--threads 2]

Both fine-tune the packaged MiniLM with MultipleNegativesRankingLoss (batch 8, scale 20) on the offline
default's (question, gold passage) pairs, from the same weights, in the same batch order, with AdamW and
the same linear decay. The harness loop (`plugins.strategies.ft_embed.train_embedder`) adds what every
strategy loop carries: the progress bar, token counting, `StepMeter` (loss, lr, tokens/s, peak memory per
step) and the buffered DuckDB training log. The bare loop is only forward, loss, backward, step. The two
alternate (which one goes first flips every repeat). Prints each pair, the overhead ratio of the medians
and of the minima (the least disturbed run of each, as timeit reports), and whether both ended on
bit-identical weights (the same maths).
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
from harness.builtins.strategies.ft_embed import DEFAULT_BATCH, EmbedOptions, mnrl_loss, train_embedder  # noqa: E402
from harness.config import RunConfig  # noqa: E402
from harness.pipeline import RagPipeline  # noqa: E402
from harness.retrieval.index import PassageIndex, encode_with_grad  # noqa: E402
from harness.runner.assemble import load_dataset, resolve  # noqa: E402
from harness.store.layout import create_run_folder  # noqa: E402
from harness.training.context import FitContext  # noqa: E402
from harness.training.loop import epoch_batches, gold_passage, steps_per_run  # noqa: E402
from harness.types import ModelOptions  # noqa: E402

LR = 1e-4


def fresh_encoder(resolved):
    torch.manual_seed(0)
    return resolved.embedder_spec.load(ModelOptions(device="cpu"))


def harness_loop(resolved, dataset, cfg, workdir) -> tuple[float, torch.nn.Module]:
    encoder = fresh_encoder(resolved)
    index = PassageIndex.build(torch.zeros(1, 384).numpy())  # ft_embed's default never reads the index
    pipeline = RagPipeline(encoder, encoder, index, dataset.corpus, None, 5)
    ctx = FitContext(pipeline, dataset, cfg, EmbedOptions(), "cpu", "bench",
                     create_run_folder(cfg, Path(workdir) / "runs"))
    torch.manual_seed(0)
    start = time.perf_counter()
    train_embedder(ctx, LR, EmbedOptions(), DEFAULT_BATCH)
    ctx.flush_log()
    return time.perf_counter() - start, encoder


def bare_loop(resolved, dataset, cfg) -> tuple[float, torch.nn.Module]:
    encoder = fresh_encoder(resolved)
    gold = {ex.id: gold_passage(ex, dataset.corpus) for ex in dataset.train}
    examples = [ex for ex in dataset.train if gold[ex.id] is not None]
    total = steps_per_run(len(examples), DEFAULT_BATCH, cfg.epochs)
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=LR, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1.0 - s / total))
    encoder.train()
    torch.manual_seed(0)
    start = time.perf_counter()
    for _, batch in epoch_batches(examples, DEFAULT_BATCH, cfg.epochs, cfg.seed):
        q = encode_with_grad(encoder, [ex.question for ex in batch])
        d = encode_with_grad(encoder, [gold[ex.id].as_text() for ex in batch])
        loss = mnrl_loss(q, d, 1.0 / cfg.tau, [gold[ex.id].id for ex in batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    return time.perf_counter() - start, encoder


def same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    header("embedder fine-tuning: harness ft_embed loop vs bare PyTorch loop")
    plugins.load_plugins()
    cfg = RunConfig(strategy="ft_embed", epochs=args.epochs)
    resolved = resolve(cfg)
    cfg = resolved.config
    dataset = load_dataset(cfg, resolved)
    steps = steps_per_run(len(dataset.train), DEFAULT_BATCH, args.epochs)
    print(f"packaged MiniLM, {len(dataset.train)} (question, gold passage) pairs, batch {DEFAULT_BATCH}, "
          f"{args.epochs} epochs = {steps} steps, lr {LR}")
    harness_times, bare_times, identical = [], [], []
    with tempfile.TemporaryDirectory() as workdir:
        for repeat in range(args.repeats):
            if repeat % 2 == 0:
                h_time, h_model = harness_loop(resolved, dataset, cfg, f"{workdir}/{repeat}")
                b_time, b_model = bare_loop(resolved, dataset, cfg)
            else:
                b_time, b_model = bare_loop(resolved, dataset, cfg)
                h_time, h_model = harness_loop(resolved, dataset, cfg, f"{workdir}/{repeat}")
            harness_times.append(h_time)
            bare_times.append(b_time)
            identical.append(same_weights(h_model, b_model))
            print(f"  repeat {repeat + 1}: harness {h_time:.2f}s  bare {b_time:.2f}s  ratio {h_time / b_time:.3f}",
                  flush=True)
    h, b = statistics.median(harness_times), statistics.median(bare_times)
    print(f"median  harness {h:.2f}s ({h / steps:.2f}s/step)  bare {b:.2f}s ({b / steps:.2f}s/step)  ratio {h / b:.3f}x")
    h, b = min(harness_times), min(bare_times)
    print(f"minimum harness {h:.2f}s ({h / steps:.2f}s/step)  bare {b:.2f}s ({b / steps:.2f}s/step)  ratio {h / b:.3f}x")
    print(f"bit-identical final weights: {sum(identical)}/{len(identical)}")


if __name__ == "__main__":
    main()
