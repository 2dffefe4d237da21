"""Re-indexing while training: train only vs train + synchronous refresh vs train + background refresh.

    python bench/bench_refresh.py [--steps 6] [--refresh-every 3] [--passages 1000] [--threads 1]

The same rag_end2end training (packaged MiniLM towers + SmolLM2-135M LoRA, the offline default's
training questions, fixed order) three times from the same weights:
  train only   no re-indexing at all;
  sync         every N steps the corpus is re-encoded and re-indexed, training waits (`refresh=sync`);
  background   the same refreshes in a worker thread while training continues (`refresh=background`);
                a refresh still running after the last step is waited for.
Prints each wall time, the ratios to train-only, the seconds the refreshes took, and the share of the
refresh cost the background mode hid, per refresh done: 1 − ((T_bg − T_train)/n_bg) / ((T_sync − T_train)/n_sync).
A background refresh that is still running when the next one is due is not doubled up, so the two modes may
complete a different number of refreshes. The corpus is the first `--passages` passages (plus the gold
ones), so a refresh costs a known, modest amount of time.
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _machine import header

from harness import plugins
from harness.builtins.strategies.rag_end2end import DEFAULT_EMBED_LR, DEFAULT_GEN_LR, End2EndOptions, train_end2end
from harness.config import RunConfig
from harness.models.lora import prepare_generator_for_lora
from harness.retrieval.refresh import IndexRefresher, separate_passage_tower
from harness.runner.assemble import build_pipeline, load_dataset, resolve
from harness.store.layout import create_run_folder
from harness.training.context import FitContext
from harness.training.loop import unfreeze


def run_once(cfg: RunConfig, mode: str | None, refresh_every: int, workdir: str) -> dict:
    """One timed training run; mode None = no re-indexing."""
    resolved = resolve(cfg)
    cfg = resolved.config
    dataset = load_dataset(cfg, resolved)
    torch.manual_seed(cfg.seed)
    pipeline = build_pipeline(cfg, resolved, dataset, "cpu")
    run_id = f"bench-{mode or 'train'}"
    folder = create_run_folder(cfg, Path(workdir) / "runs")
    ctx = FitContext(pipeline, dataset, cfg, None, "cpu", run_id, folder)
    prepare_generator_for_lora(ctx)
    unfreeze(pipeline.query_encoder)
    passage_tower = separate_passage_tower(pipeline)
    options = End2EndOptions(refresh_every=refresh_every if mode else 0, refresh=mode or "sync")
    refresher = IndexRefresher(ctx, passage_tower, options.refresh_every, options.refresh)  # closed below
    start = time.perf_counter()
    try:
        last = train_end2end(ctx, options, DEFAULT_EMBED_LR, DEFAULT_GEN_LR, refresher)
        refresher.finish(last, final_refresh=False, wait_in_flight=True)
    finally:
        refresher.close()
    wall = time.perf_counter() - start
    return {"wall": wall, "refreshes": ctx.index_refreshes, "refresh_seconds": ctx.refresh_seconds,
            "wait": refresher.wait_seconds, "staleness": refresher.staleness, "steps": last}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--refresh-every", type=int, default=3)
    parser.add_argument("--passages", type=int, default=1000, help="corpus size (first N passages + gold ones)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("-k", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads of the training thread")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    header("re-indexing while training: train only vs sync refresh vs background refresh (rag_end2end)")
    plugins.load_plugins()
    cfg = RunConfig(strategy="rag_end2end", corpus_limit=args.passages, limit=args.steps * args.batch_size,
                    batch_size=args.batch_size, k=args.k)
    dataset = load_dataset(cfg, resolve(cfg))
    print(f"corpus {len(dataset.corpus)} passages, {args.steps} steps of {args.batch_size} questions, k={args.k}, "
          f"refresh every {args.refresh_every} steps, {args.threads} training thread(s)")
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for mode in (None, "sync", "background"):
            results[mode or "train only"] = run_once(cfg, mode, args.refresh_every, workdir)
    base = results["train only"]["wall"]
    print(f"{'run':<12} {'wall s':>8} {'× train':>8} {'refreshes':>9} {'refresh s':>9} {'waited s':>9}  staleness")
    for name, r in results.items():
        print(f"{name:<12} {r['wall']:8.1f} {r['wall'] / base:8.2f} {r['refreshes']:9d} {r['refresh_seconds']:9.1f} "
              f"{r['wait']:9.1f}  {r['staleness']}")
    sync, bg = results["sync"], results["background"]
    if sync["wall"] > base and sync["refreshes"] and bg["refreshes"]:
        # a background refresh still running when the next is due is not doubled up, so the two modes can do a
        # different number of refreshes: compare the wall time each adds per refresh it completed
        per_sync = (sync["wall"] - base) / sync["refreshes"]
        per_bg = (bg["wall"] - base) / bg["refreshes"]
        print(f"added per refresh: sync {per_sync:.1f} s, background {per_bg:.1f} s: background hid "
              f"{100 * (1 - per_bg / per_sync):.0f}% of a refresh's cost "
              f"({sync['refreshes']} vs {bg['refreshes']} refreshes done)")

if __name__ == "__main__":
    main()
