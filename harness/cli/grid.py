"""`harness grid`: search learning rates (staged per phase, over seeds and FLOP budgets), on an executor.

The executors' own flags (`--ray-address`, `--slurm-*`) are not declared here: each executor class brings
them (`options`) and `harness.cli` adds them to this command (`add_executor_options`).
"""

from __future__ import annotations

import dataclasses

import click
from rich.table import Table

from harness.cli.common import (
    HELP,
    build_config,
    console,
    flags_given,
    fmt,
    open_store,
    print_where_results_are,
    quiet_libraries,
    run_options,
)
from harness.errors import UserError
from harness.store.db import Store


@click.command()
@run_options
@click.option("--seed", type=int, default=0, show_default=True, help=HELP["seed"])
@click.option("--lr-grid", type=click.Choice(["paper"]), default=None,
              help="the paper's nine rates 1e-8, 3e-8, ..., 1e-4 for every rate the strategy takes")
@click.option("--embed-lr", default=None, metavar="LR[,LR...]", help="embedder learning rates to search")
@click.option("--gen-lr", default=None, metavar="LR[,LR...]", help="generator learning rates to search")
@click.option("--lrs-from", default=None, metavar="STRATEGY",
              help="reuse the rates selected by the latest grid of STRATEGY (e.g. two_phase) on the same data and models")
@click.option("--force", is_flag=True, help="re-run cells already stored")
@click.option("--config", "config_file", default=None, metavar="FILE",
              help="TOML or YAML file: RunConfig keys plus lr_grid, lrs_from, embed_lr/gen_lr lists; flags given override it")
@click.option("--seeds", default=None, metavar="S[,S...]",
              help="run every cell once per seed; cells are selected on their mean dev score")
@click.option("--search-seeds", default=None, metavar="S[,S...]",
              help="with --seeds: search on these seeds only, then run the selected cell on the other seeds "
                   "(select on seed 0, report over three: --seeds 0,1,2 --search-seeds 0)")
@click.option("--budgets", default=None, metavar="FLOPS[,FLOPS...]",
              help="run the grid once per training-FLOP budget (--max-train-flops each), for the dashboard's "
                   "quality-at-equal-compute view")
@click.option("--executor", default="local", show_default=True,
              help="where cells run: local (this process), ray (Ray tasks), slurm (a submitit job array), or a plugin's")
@click.option("--cell-cpus", type=click.FloatRange(0.01, 1024), default=1.0, show_default=True, help="CPUs per cell (ray, slurm)")
@click.option("--cell-gpus", type=click.FloatRange(0, 64), default=0.0, show_default=True, help="GPUs per cell (ray, slurm)")
@click.option("--max-retries", type=click.IntRange(0, 20), default=2, show_default=True,
              help="a worker that dies is retried this often, then its cell is stored failed (ray, slurm)")
@click.pass_context
def grid(ctx: click.Context, lr_grid: str | None, embed_lr: str | None, gen_lr: str | None, lrs_from: str | None,
         force: bool, config_file: str | None, seeds: str | None, search_seeds: str | None, budgets: str | None,
         executor: str,
         cell_cpus: float, cell_gpus: float, max_retries: int, **kwargs) -> None:
    """Search learning rates: every cell is a stored run with a shared grid id; selection on dev EM (ties: F1).

    \b
    Examples:
      harness grid --plugin ft_gen --lr-grid paper
      harness grid --plugin two_phase --lr-grid paper        # generator rate first, then the embedder's
      harness grid --plugin rag_token --lrs-from two_phase   # the paper's choice for joint strategies
      harness grid --plugin rag_token --embed-lr 1e-6,1e-5 --gen-lr 1e-4,1e-3
      harness grid --config examples/configs/grid_ft_gen.yaml
      harness grid --plugin ft_gen --dataset synthbio --seeds 0,1,2 --budgets 1e13,3e13,1e14
      harness grid --plugin ft_gen --lr-grid paper --seeds 0,1,2 --search-seeds 0   # the winner on 3 seeds
      harness grid --plugin ft_gen --lr-grid paper --executor ray --cell-gpus 1     # cells in parallel on Ray
      harness grid --plugin ft_gen --lr-grid paper --executor slurm --slurm-partition gpu --cell-gpus 1
    Re-running the same command runs only the cells not finished yet (found by run key).
    """
    from harness.config_file import load_grid_file
    from harness.grid.executors import get_executor
    from harness.grid.plan import parse_budgets, parse_seeds, plan_grid
    from harness.grid.run import run_grid, selected_lrs
    from harness.runner.assemble import resolve

    file_values, file_grid = load_grid_file(config_file) if config_file else ({}, {})
    lr_grid, lrs_from, explicit = searched_rates(ctx, file_grid, lr_grid, lrs_from, embed_lr, gen_lr)
    base = build_config(kwargs, ctx, file_values)
    store = open_store(ctx)
    strategy_cls = resolve(base).strategy_cls
    fixed = selected_lrs(store, lrs_from, base) if lrs_from else None
    seed_list, budget_list = parse_seeds(seeds), parse_budgets(budgets)
    if seed_list and "seed" in flags_given(ctx):
        raise UserError("give --seed or --seeds, not both")
    search_list = parse_search_seeds(search_seeds, seed_list)
    plan = plan_grid(strategy_cls, lr_grid, explicit, fixed, lrs_from, search_optional=bool(seed_list or budget_list))
    runner = None if executor == "local" else get_executor(executor)
    options = executor_options(ctx, store, cell_cpus, cell_gpus, max_retries)
    quiet_libraries()
    console.print(f"grid of {plan.n_cells()} cells for {plan.strategy}"
                  + (f" (rates from {lrs_from}: {fixed})" if lrs_from else "")
                  + (f" × {len(seed_list)} seeds" if seed_list and not search_list else "")
                  + (f" on seed(s) {search_list}, the selected cell on {seed_list}" if search_list else "")
                  + (f" × {len(budget_list)} FLOP budgets" if budget_list else ""))
    for budget in budget_list or [base.max_train_flops]:
        result = run_grid(dataclasses.replace(base, max_train_flops=budget), store, plan, force=force, seeds=seed_list,
                          search_seeds=search_list,
                          executor=runner, executor_options=options,
                          on_cell=lambda c: console.print(f"  cell {c.lrs} -> {c.status} "
                                                          f"{', '.join(c.run_ids) or c.error or ''}"))
        print_grid_result(store, result, plan, budget)


def parse_search_seeds(text: str | None, seeds: list[int] | None) -> list[int] | None:
    """--search-seeds: some of --seeds (one line, exit 2 otherwise)."""
    from harness.grid.plan import parse_seeds

    search = parse_seeds(text)
    if search is None:
        return None
    if not seeds:
        raise UserError("--search-seeds needs --seeds (the seeds the selected cell runs on), e.g. --seeds 0,1,2 "
                        "--search-seeds 0")
    stray = [s for s in search if s not in seeds]
    if stray:
        raise UserError(f"--search-seeds {','.join(map(str, stray))}: not among --seeds {','.join(map(str, seeds))}")
    return search


def searched_rates(ctx: click.Context, file_grid: dict, lr_grid: str | None, lrs_from: str | None,
                   embed_lr: str | None, gen_lr: str | None) -> tuple[str | None, str | None, dict]:
    """(lr_grid, lrs_from, explicit rate lists) from the flags typed, else the grid file's values."""
    from harness.grid.plan import check_rate_sources, parse_lr_list

    given = flags_given(ctx)
    lr_grid = lr_grid if "lr_grid" in given else file_grid.get("lr_grid")
    lrs_from = lrs_from if "lrs_from" in given else file_grid.get("lrs_from")
    check_rate_sources(lr_grid, lrs_from)
    explicit = {"embed_lr": parse_lr_list(embed_lr, "--embed-lr"), "gen_lr": parse_lr_list(gen_lr, "--gen-lr")}
    return lr_grid, lrs_from, {name: rates if name in given else file_grid.get(name) for name, rates in explicit.items()}


EXECUTOR_OPTIONS = "harness.executor_options"  # ctx.meta key: the executors' own flags, by name


def executor_options(ctx: click.Context, store: Store, cell_cpus: float, cell_gpus: float, max_retries: int):
    """What every executor gets: resources per cell, retries, where logs go, the plugins to load, its own flags."""
    from harness.grid.executors import ExecutorOptions
    from harness.store.layout import runs_dir

    return ExecutorOptions(cell_cpus, cell_gpus, max_retries, logs_dir=str(runs_dir(store) / "executor-logs"),
                           plugins_dir=ctx.find_root().params.get("plugins_dir"), extra=ctx.meta.get(EXECUTOR_OPTIONS, {}))


def add_executor_options(command: click.Command, executors) -> None:
    """Each executor's own flags (its class's `options`) on `harness grid`; their values reach the executor in
    `ExecutorOptions.extra` (datasette's publish_subcommand pattern: an extension brings its options). Called
    at every start-up: the flags of executors no longer registered go."""
    command.params = [param for param in command.params if param.callback is not _keep_executor_option]
    known = {param.name for param in command.params}
    for cls in executors:
        for option in getattr(cls, "options", []):
            if option.name in known:
                continue
            option.expose_value, option.callback = False, _keep_executor_option
            command.params.append(option)
            known.add(option.name)


def _keep_executor_option(ctx: click.Context, param: click.Parameter, value) -> None:
    ctx.meta.setdefault(EXECUTOR_OPTIONS, {})[param.name] = value


def print_grid_result(store: Store, result, plan, budget: float | None) -> None:
    from harness.grid.plan import cell_rows

    table = Table("", "stage", "embed lr", "gen lr", "dev EM", "dev F1", "test EM", "test F1", "fit s", "run",
                  "status", title=f"grid {result.grid_id} · {plan.strategy} · selected on dev EM (ties: F1)"
                                  + (f" · budget {budget:.3g} FLOPs" if budget else ""))
    for row in cell_rows(result):
        table.add_row("*" if row["selected"] else "", str(row["stage"]), *(_fmt_lr(row[n]) for n in ("embed_lr", "gen_lr")),
                      *(fmt(row[m]) for m in ("dev_em", "dev_f1", "test_em", "test_f1", "fit_seconds")),
                      row["run"] or "–", row["status"])
    console.print(table)
    chosen = result.selected
    console.print(f"selected run {chosen.run_id}: embed lr {_fmt_lr(chosen.lrs.get('embed_lr'))}, gen lr "
                  f"{_fmt_lr(chosen.lrs.get('gen_lr'))} · test EM {fmt(chosen.metrics.get('test', {}).get('em'))}")
    if chosen.run_id:
        print_where_results_are(store, chosen.run_id)


def _fmt_lr(value: float | None) -> str:
    return "default" if value is None else f"{value:.0e}"

