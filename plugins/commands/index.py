"""`harness index`: encode a dataset's corpus and build its index once, into the cache runs load it from.

    harness index --dataset wikipedia --data-dir ./medrag --embedder mpnet --index ivfpq
    harness index --dataset wikipedia --data-dir ./medrag --embedder mpnet --index ivfpq --processes 8
    accelerate launch --num_processes 8 -m harness index --dataset wikipedia ...   # the same, by hand

With several processes each encodes a contiguous shard of the corpus (whole batches) into one
memory-mapped vectors file, and the main process builds the index once (harness/retrieval/index.py); a later
`harness run` with the same embedder, corpus and index finds it in the cache. docs/scaling.md has the sizes.
"""

from __future__ import annotations

import os
import sys
import time

import click

from harness import RunConfig, hookimpl
from harness.retrieval import INDEX_KINDS


def build_index(cfg: RunConfig) -> tuple[int, float]:
    """(passages, seconds) of indexing cfg's dataset corpus under cfg's embedder and index kind."""
    from harness import ModelOptions
    from harness.retrieval import build_or_load_index, index_params
    from harness.runner import load_dataset, resolve
    from harness.runtime import main_process_first, pick_device, start_accelerator

    resolved = resolve(cfg)
    accelerator = start_accelerator()
    corpus = load_dataset(cfg, resolved).corpus
    device = str(accelerator.device) if accelerator is not None else pick_device()
    with main_process_first(accelerator):  # built into the cache once
        embedder = resolved.embedder_spec.load(ModelOptions(device=device))
    start = time.perf_counter()
    build_or_load_index(embedder, corpus, index_params(cfg), accelerator=accelerator)
    return len(corpus), time.perf_counter() - start


@hookimpl
def register_commands(cli):
    @cli.command(name="index")
    @click.option("--dataset", default="fanoutqa_wiki", show_default=True, help="dataset whose corpus is indexed")
    @click.option("--data-dir", default=None, help="local copy of the dataset (see docs/datasets.md)")
    @click.option("--embedder", default="minilm", show_default=True, help="embedder that encodes the passages")
    @click.option("--index", type=click.Choice(INDEX_KINDS), default="flat", show_default=True,
                  help="flat (exact), hnsw, or ivfpq (compressed; the choice for tens of millions of passages)")
    @click.option("--corpus-limit", type=int, default=None, help="index only the first N passages")
    @click.option("--processes", type=click.IntRange(min=1), default=1, show_default=True,
                  help="encode on N processes (one per GPU with accelerate, else CPU processes with torchrun)")
    def index_command(dataset, data_dir, embedder, index, corpus_limit, processes):
        """Encode a corpus and build its index once (cached), sharded over --processes.

        \b
        Examples:
          harness index --dataset wikipedia --data-dir ./medrag --embedder mpnet --index ivfpq --processes 8
          accelerate launch --num_processes 8 -m harness index --dataset wikipedia --data-dir ./medrag
        """
        from harness.cli.common import launch_argv, quiet_libraries
        from harness.runtime import launch, launched_processes

        cfg = RunConfig(dataset=dataset, data_dir=data_dir, embedder=embedder, index=index, corpus_limit=corpus_limit)
        if processes > 1 and launched_processes() == 1:
            sys.exit(launch(processes, launch_argv()))
        quiet_libraries()
        count, seconds = build_index(cfg)
        if int(os.environ.get("RANK", "0")) == 0:  # the main process of a launched group reports
            click.echo(f"{count:,} passages indexed ({index}) in {seconds:.1f}s, cached: runs with this embedder, "
                       "corpus and index load it")
