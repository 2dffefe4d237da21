"""Cost per training step of jsa_rag and vrag relative to rag_token, on identical data and models.

    python bench/bench_jsa_cost.py [--steps 3] [--batch-size 4] [--proposals 8] [--candidates 5]

Each strategy starts from the same packaged weights (MiniLM, SmolLM2-135M + fresh LoRA r=16) and runs the
same batches of the offline default's training questions (full 12k-passage index, cached); one warm-up
step, then `--steps` timed steps (forward, backward, optimizer step). Printed per strategy: seconds per
step, its ratio to rag_token, and the (question, passage) pairs the generator reads per question with and
without grad. The rag_token step is written here with harness/training/loop.py's functions (the same
computation as the rag_token plugin), so the comparison does not depend on that plugin.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _machine import header

from harness import plugins
from harness.builtins.strategies.jsa_rag import JsaModels, JsaOptions, jsa_step, make_posterior_retriever
from harness.builtins.strategies.rag_token import rag_token_loss
from harness.builtins.strategies.vrag import VragOptions, accumulate_gradients
from harness.config import RunConfig
from harness.models.lora import prepare_generator_for_lora
from harness.runner.assemble import build_pipeline, load_dataset, resolve
from harness.store.layout import create_run_folder
from harness.training.context import FitContext
from harness.training.likelihoods import (
    indexed_passage_vectors,
    passage_answer_log_probs,
    retrieval_log_probs,
    retrieve_rows,
)
from harness.training.loop import gold_answer, linear_schedule, unfreeze


def rag_token_step(ctx, batch, k):
    """rag_token's step (whole batch, as its plugin): top-k under E_q, p_η over indexed vectors,
    per-passage likelihoods, RAG-Token loss, backward."""
    pipeline = ctx.pipeline
    questions, answers = [ex.question for ex in batch], [gold_answer(ex) for ex in batch]
    rows = retrieve_rows(pipeline, questions, k)
    passages = [pipeline.passages(r) for r in rows]
    log_pz = retrieval_log_probs(pipeline.query_encoder, questions, indexed_passage_vectors(pipeline, rows), ctx.config.tau)
    token_lp, mask = passage_answer_log_probs(pipeline.generator, questions, passages, answers)
    rag_token_loss(log_pz, token_lp, mask).backward()
    return {"grad_pairs": k, "nograd_pairs": 0}


def setup(cfg, workdir, name):
    resolved = resolve(cfg)
    cfg = resolved.config
    dataset = load_dataset(cfg, resolved)
    torch.manual_seed(0)
    pipeline = build_pipeline(cfg, resolved, dataset, "cpu")
    folder = create_run_folder(cfg, Path(workdir) / "runs")
    ctx = FitContext(pipeline, dataset, cfg, None, "cpu", name, folder)
    prepare_generator_for_lora(ctx)
    return ctx


def make_step(name, ctx, args):
    """(modules trained, step function: batch -> pairs read per question, after back-propagating)."""
    prior, k = ctx.pipeline.query_encoder, ctx.config.k
    unfreeze(prior)
    if name == "rag_token":
        return [prior], lambda batch: rag_token_step(ctx, batch, k)
    posterior = make_posterior_retriever(prior)
    if name == "vrag":
        def step(batch):
            accumulate_gradients(ctx, prior, posterior, batch, k, VragOptions())
            return {"grad_pairs": k, "nograd_pairs": 0}
        return [prior, posterior], step
    options = JsaOptions(proposals=args.proposals, candidates=args.candidates)
    models, chains, rng = JsaModels(prior, posterior, None), {}, torch.Generator().manual_seed(0)

    def step(batch):
        _, stats, _ = jsa_step(ctx, models, batch, chains, options, rng)
        return {"grad_pairs": stats["distinct_samples"], "nograd_pairs": stats["distinct_proposals"]}
    return [prior, posterior], step


def time_strategy(name, cfg, args, workdir):
    ctx = setup(cfg, workdir, name)
    towers, step = make_step(name, ctx, args)
    generator = ctx.pipeline.generator.model
    groups = [(list(t.parameters()), 1e-5) for t in towers] + [(list(generator.parameters()), 1e-3)]
    optimizer, _ = linear_schedule(groups, args.steps + 1)
    for module in (*towers, generator):
        module.train()
    batches = [ctx.train[i * args.batch_size : (i + 1) * args.batch_size] for i in range(args.steps + 1)]
    seconds, pairs = [], []
    for i, batch in enumerate(batches):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        read = step(batch)  # forward and backward, as each strategy's loop does it
        optimizer.step()
        if i > 0:  # the first step warms up allocators and caches
            seconds.append(time.perf_counter() - start)
            pairs.append(read)
    return {"step": statistics.mean(seconds), "spread": (min(seconds), max(seconds)),
            "grad_pairs": statistics.mean(p["grad_pairs"] for p in pairs),
            "nograd_pairs": statistics.mean(p["nograd_pairs"] for p in pairs)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--proposals", type=int, default=JsaOptions.proposals)
    parser.add_argument("--candidates", type=int, default=JsaOptions.candidates)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("HARNESS_THREADS", "2")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    header("cost per training step: jsa_rag and vrag relative to rag_token")
    plugins.load_plugins()
    cfg = RunConfig(strategy="rag_token", batch_size=args.batch_size)
    print(f"{args.steps} timed steps (+1 warm-up) of {args.batch_size} questions, k={cfg.k}; jsa_rag n={args.proposals} "
          f"proposals, K={args.candidates}; {args.threads} thread(s)")
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for name in ("rag_token", "vrag", "jsa_rag"):
            results[name] = time_strategy(name, cfg, args, workdir)
    base = results["rag_token"]["step"]
    print(f"{'strategy':<10} {'s/step':>7} {'× rag_token':>11} {'min–max s':>13} {'pairs w/ grad':>14} {'pairs no grad':>14}")
    for name, r in results.items():
        lo, hi = r["spread"]
        print(f"{name:<10} {r['step']:7.1f} {r['step'] / base:11.2f} {lo:6.1f}–{hi:<6.1f} {r['grad_pairs']:14.2f} "
              f"{r['nograd_pairs']:14.2f}")
    print("pairs = (question, passage) prompts the generator reads per question and step")


if __name__ == "__main__":
    main()
