"""Retrieval on `synthbio`: the base retriever's recall@k, and after the real `ft_embed` loop (per seed).

    flock /tmp/rag-heavy.lock python bench/synthbio_retrieval.py --datasets synthbio --train-seeds 0,1,2

No generation: ft_embed trains only the query tower and retrieval does not depend on the generator, so
recall@k of `ft_embed` vs `no_ft` is measured here at a fraction of a full run's cost (a full `harness run`
also generates an answer for every dev and test question). The loop is the strategy's own
(`plugins.strategies.ft_embed.train_embedder`, default options: lr 1e-5, batch 8, one epoch, corpus
vectors kept as indexed, as the paper does); the pipeline's generator is the tiny test model, never
called. Prints recall@k with 95% bootstrap intervals over test questions, split into questions that name
the person and questions that only describe them, and the paired bootstrap p-value against the base.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import numpy as np

from harness import plugins
from harness.builtins.strategies.ft_embed import DEFAULT_BATCH, DEFAULT_EMBED_LR, EmbedOptions, train_embedder
from harness.config import RunConfig
from harness.metrics import bootstrap_interval, paired_bootstrap, passage_hit
from harness.models.generation import Generator
from harness.pipeline import RagPipeline
from harness.retrieval.index import build_or_load_index, encode_texts
from harness.runner.assemble import configure_torch
from harness.store.layout import create_run_folder
from harness.training.context import FitContext
from harness.types import DatasetOptions, ModelOptions


def recall_hits(encoder, index, corpus, examples, k: int) -> np.ndarray:
    """100 or 0 per question: a gold passage among the top k."""
    rows, _ = index.search(encode_texts(encoder, [ex.question for ex in examples]), k)
    return np.array([100 * passage_hit([corpus[int(r)].id for r in row if int(r) >= 0], ex.gold_passage_ids, k)
                     for ex, row in zip(examples, rows)])


def described(ex) -> bool:
    return " graduate of " in ex.question or "the person born on " in ex.question


def report(label: str, values: np.ndarray, kinds: np.ndarray, base: np.ndarray | None = None) -> None:
    low, high = bootstrap_interval(values)
    parts = [f"{label:28s} recall@5 {values.mean():5.1f} ({low:4.1f}–{high:4.1f})",
             f"named {values[~kinds].mean():5.1f}", f"described {values[kinds].mean():5.1f}"]
    if base is not None:
        parts.append(f"paired p vs base {paired_bootstrap(values, base):.4f}")
    print("  ".join(parts), flush=True)


def tuned_encoder(base_encoder, dataset, index, seed: int, limit_train: int | None, lr: float, options: EmbedOptions):
    """ft_embed's own loop on a copy of the base encoder; returns (encoder, the index it retrieves from, FLOPs):
    the kept index, or with `options.reindex` the corpus re-encoded through `ctx.refresh_index`, as the
    strategy does (nothing written to the index cache)."""
    configure_torch(seed)
    encoder = copy.deepcopy(base_encoder)
    tiny, tokenizer = plugins.models()["generator"].get("tiny-llama").load(ModelOptions())
    pipeline = RagPipeline(encoder, encoder, index, dataset.corpus, Generator(tiny, tokenizer), 5)
    cfg = RunConfig(strategy="ft_embed", dataset=dataset.name, seed=seed)
    train = dataset.train[:limit_train] if limit_train else dataset.train
    ctx = FitContext(pipeline, type(dataset)(dataset.name, train, dataset.dev, dataset.test, dataset.corpus), cfg,
                     options, "cpu", f"bench-{seed}", create_run_folder(cfg, Path(tempfile.mkdtemp()) / "runs"))
    train_embedder(ctx, lr, options, DEFAULT_BATCH)
    tuned_index = ctx.refresh_index(encoder) if options.reindex else index
    return encoder, tuned_index, ctx.train_flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="synthbio", help="';'-separated dataset names")
    parser.add_argument("--train-seeds", default="", help="comma-separated seeds for ft_embed (none: base only)")
    parser.add_argument("--limit-train", type=int, default=None, help="train on the first N training questions")
    parser.add_argument("--split", default="test")
    parser.add_argument("--reindex", action="store_true",
                        help="re-encode the corpus with the tuned tower before measuring (ft_embed --set reindex=true)")
    parser.add_argument("--passages", choices=["tower", "index"], default="tower",
                        help="ft_embed's gold passages: encoded by the tower with grad (default) or the frozen indexed vectors")
    parser.add_argument("--lr", type=float, default=DEFAULT_EMBED_LR, help="ft_embed's learning rate (default: the strategy's)")
    args = parser.parse_args()
    plugins.load_plugins(None)
    base_encoder = plugins.models()["embedder"].get("minilm").load(ModelOptions())
    for name in args.datasets.split(";"):
        dataset = plugins.datasets().get(name).load(DatasetOptions())
        index = build_or_load_index(base_encoder, dataset.corpus)
        examples = dataset.split(args.split)
        kinds = np.array([described(ex) for ex in examples])
        print(f"{name}: {len(examples)} {args.split} questions ({kinds.sum()} describe the person), "
              f"{len(dataset.train)} train, corpus {len(dataset.corpus)}", flush=True)
        base = recall_hits(base_encoder, index, dataset.corpus, examples, 5)
        report("no_ft (base MiniLM)", base, kinds)
        tuned_all = []
        for seed in [int(s) for s in args.train_seeds.split(",") if s.strip()]:
            encoder, tuned_index, flops = tuned_encoder(base_encoder, dataset, index, seed, args.limit_train, args.lr,
                                                        EmbedOptions(reindex=args.reindex, passages=args.passages))
            tuned = recall_hits(encoder, tuned_index, dataset.corpus, examples, 5)
            label = f"ft_embed seed {seed} lr {args.lr:g} passages={args.passages}{' reindex' if args.reindex else ''}"
            report(f"{label} ({flops:.2g} FLOPs)", tuned, kinds, base)
            tuned_all.append(tuned.mean())
        if len(tuned_all) > 1:
            print(f"ft_embed mean ± std over {len(tuned_all)} seeds: {np.mean(tuned_all):.1f} ± "
                  f"{np.std(tuned_all, ddof=1):.1f}", flush=True)


if __name__ == "__main__":
    main()
