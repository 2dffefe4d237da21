"""`harness run`: one strategy end to end, once or once per seed."""

from __future__ import annotations

import dataclasses
import sys

import click
from rich.table import Table

from harness.cli.common import (
    HELP,
    build_config,
    console,
    flags_given,
    launch_argv,
    open_store,
    parse_lr,
    print_metrics,
    print_where_results_are,
    quiet_libraries,
    run_options,
)
from harness.errors import UserError


@click.command()
@run_options
@click.option("--seed", type=int, default=0, show_default=True, help=HELP["seed"])
@click.option("--embed-lr", default=None, help=HELP["embed_lr"])
@click.option("--gen-lr", default=None, help=HELP["gen_lr"])
@click.option("--force", is_flag=True, help="run even if an identical run (same config and code) is stored")
@click.option("--config", "config_file", default=None, metavar="FILE",
              help="TOML or YAML file of RunConfig keys (strategy, dataset, gen_lr, ...); flags given override it")
@click.option("--processes", type=click.IntRange(min=1), default=1, show_default=True,
              help="train and evaluate on N processes (one per GPU, else CPU); the same as `accelerate launch "
                   "--num_processes N -m harness run ...` on GPUs, `torchrun --standalone --nproc_per_node N -m "
                   "harness run ...` on the CPU (docs/scaling.md)")
@click.option("--seeds", default=None, metavar="S[,S...]",
              help="one run per seed (instead of --seed), then their mean ± std; the leaderboard and dashboard "
                   "average a configuration's seeds and test it against the best with the paired bootstrap")
@click.pass_context
def run(ctx: click.Context, force: bool, embed_lr: str | None, gen_lr: str | None, config_file: str | None,
        processes: int, seeds: str | None, **kwargs) -> None:
    """Run one strategy end to end: fit, evaluate on dev and test, store the run.

    \b
    Examples:
      harness run --plugin no_ft
      harness run --plugin rag_token --embed-lr 3e-7 --gen-lr 1e-5
      harness run --plugin jsa_rag --set proposals=8
      harness run --plugin no_ft --dataset local --data-dir ./my_data
      harness run --config examples/configs/ft_gen.yaml --epochs 2
      harness show RUN_ID --config > again.toml && harness run --config again.toml --seed 1
      harness run --plugin rag_token --processes 2        # DDP on 2 GPUs (or 2 CPU processes)
      harness run --plugin ft_embed --dataset synthbio --seeds 0,1,2
    """
    from harness.config_file import load_run_file
    from harness.runner.assemble import resolve
    from harness.runner.lifecycle import execute
    from harness.runtime.distributed import launch, launched_processes

    file_values = load_run_file(config_file) if config_file else None
    cfg = build_config(kwargs, ctx, file_values, embed_lr=parse_lr(embed_lr, "--embed-lr"), gen_lr=parse_lr(gen_lr, "--gen-lr"))
    if processes > 1 and launched_processes() == 1:
        resolve(cfg)  # a misspelt name is one line here, not one per process
        sys.exit(launch(processes, launch_argv()))
    from harness.grid.plan import parse_seeds

    seed_list = parse_seeds(seeds)
    if seed_list and "seed" in flags_given(ctx):
        raise UserError("give --seed or --seeds, not both")
    store = open_store(ctx)
    quiet_libraries()
    outcomes = []
    for seed in seed_list or [cfg.seed]:
        outcome = execute(dataclasses.replace(cfg, seed=seed), store, force=force)
        if outcome.status == "worker":
            continue  # another process of this run reports
        if outcome.status == "skipped":
            console.print(f"[yellow]identical run {outcome.run_id} already stored; use --force to run again[/]")
        else:
            console.print(f"[green]run {outcome.run_id} finished[/] (seed {seed}) and stored in {store.path}")
        print_metrics(outcome.metrics)
        print_where_results_are(store, outcome.run_id)
        outcomes.append(outcome)
    if len(outcomes) > 1:
        print_seed_summary(outcomes)


def print_seed_summary(outcomes: list) -> None:
    """Mean ± std over the seeds' runs of each split's main metrics."""
    import numpy as np

    table = Table("split", "EM", "F1", "recall@5", "answer_recall@5", title=f"mean ± std over {len(outcomes)} seeds")
    for split in ("dev", "test"):
        cells = []
        for name in ("em", "f1", "recall@5", "answer_recall@5"):
            values = [o.metrics.get(split, {}).get(name) for o in outcomes]
            values = [v for v in values if v is not None]
            cells.append(f"{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f}" if len(values) > 1 else "–")
        if any(c != "–" for c in cells):
            table.add_row(split, *cells)
    console.print(table)

