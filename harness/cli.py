"""The `harness` command. Commands are thin: they parse, call the core, and print."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
import warnings

import click
from rich.console import Console
from rich.table import Table

from harness import __version__, env, plugins
from harness.config import INDEX_DEVICES, INDEX_KINDS, QUANTIZE_CHOICES, RunConfig, option_help
from harness.errors import Terminated, UserError, forget_interrupts, interrupt_behind, note_interrupt
from harness.store import Store, default_db_path
from harness.strategy import strategy_options_class
from harness.table_formats import FORMATS, rows_as_text


class _Console:
    """Rich output, full width when piped (a table of runs should not be folded at 80 columns)."""

    def __getattr__(self, name):
        return getattr(Console(width=None if sys.stdout.isatty() else 160), name)


console = _Console()
HELP = option_help()


def quiet_libraries() -> None:
    """Library chatter off (transformers' logs and bars, two known third-party notices); benches reuse it."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    # bitsandbytes (imported by peft when installed) logs a missing optional CPU kernel on every run, and
    # peft reads transformers' deprecated `is_gradient_checkpointing`: neither is the user's to act on.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*", category=FutureWarning)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="harness")
@click.option("--db", default=None, help="DuckDB store (default ./harness.duckdb, or $HARNESS_DB)")
@click.option("--plugins-dir", default=None, type=click.Path(), help="load every *.py in DIR as a plugin")
@click.pass_context
def cli(ctx: click.Context, db: str | None, plugins_dir: str | None) -> None:
    """rag-harness: run, contribute and compare RAG fine-tuning strategies.

    \b
    Examples:
      harness run --plugin no_ft          # the baseline on the offline default models and data
      harness leaderboard                 # every finished run, best first
      harness list strategies             # what you can run
      harness leaderboard --db runs.duckdb   # --db goes before or after the command
    """
    ctx.obj = {"db": db or default_db_path()}
    if plugins_dir:
        plugins.load_plugins(plugins_dir)


def _store(ctx: click.Context) -> Store:
    """The store, opened once up front: a bad path, a damaged file or a newer schema fails before any work."""
    store = Store(ctx.obj["db"])
    store.check()
    return store


def run_options(func):
    """The RunConfig fields as click options (shared by `run` and `grid`)."""
    options = [
        click.option("--plugin", "--strategy", "strategy", default="no_ft", show_default=True, help=HELP["strategy"]),
        click.option("--dataset", default="fanoutqa_wiki", show_default=True, help=HELP["dataset"]),
        click.option("--embedder", default="minilm", show_default=True, help=HELP["embedder"]),
        click.option("--generator", default="smollm2-135m", show_default=True, help=HELP["generator"]),
        click.option("--data-dir", default=None, help=HELP["data_dir"]),
        click.option("--limit", type=int, default=None, help=HELP["limit"]),
        click.option("--corpus-limit", type=int, default=None, help=HELP["corpus_limit"]),
        click.option("-k", "k", type=int, default=5, show_default=True, help=HELP["k"]),
        click.option("--index", type=click.Choice(INDEX_KINDS), default="flat", show_default=True, help=HELP["index"]),
        click.option("--index-device", type=click.Choice(INDEX_DEVICES), default="cpu", show_default=True,
                     help=HELP["index_device"]),
        click.option("--epochs", type=int, default=1, show_default=True, help=HELP["epochs"]),
        click.option("--batch-size", type=int, default=None, help=HELP["batch_size"]),
        click.option("--tau", type=float, default=0.05, show_default=True, help=HELP["tau"]),
        click.option("--lora-rank", type=int, default=16, show_default=True, help=HELP["lora_rank"]),
        click.option("--quantize", type=click.Choice(QUANTIZE_CHOICES), default=None, help=HELP["quantize"]),
        click.option("--gradient-checkpointing", is_flag=True, help=HELP["gradient_checkpointing"]),
        click.option("--peak-tflops", type=float, default=None, help=HELP["peak_tflops"]),
        click.option("--max-new-tokens", type=int, default=24, show_default=True, help=HELP["max_new_tokens"]),
        click.option("--eval-batch-size", type=int, default=None, help=HELP["eval_batch_size"]),
        click.option("--eval-splits", default="dev,test", show_default=True, help="comma-separated splits to evaluate"),
        click.option("--silver-labels", type=int, default=None, metavar="N", help=HELP["silver_labels"]),
        click.option("--max-train-flops", type=float, default=None, metavar="FLOPS", help=HELP["max_train_flops"]),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=HELP["strategy_options"]),
        click.option("--track", multiple=True, metavar="TRACKER", expose_value=False, callback=_enable_trackers,
                     help="also log each finished run to mlflow or wandb (repeatable; or HARNESS_TRACKERS=mlflow,wandb)"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _enable_trackers(ctx: click.Context, param: click.Parameter, names: tuple[str, ...]) -> None:
    from harness.tracking import enable_trackers

    enable_trackers(list(names))  # also checks $HARNESS_TRACKERS before anything runs


def parse_sets(sets: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set expects KEY=VALUE, got '{item}'")
        pairs[key.strip().replace("-", "_")] = value.strip()
    return pairs


def build_config(kwargs: dict, ctx: click.Context | None = None, file_values: dict | None = None,
                 **overrides) -> RunConfig:
    """The RunConfig from the flags, over a config file's values if given (flags typed on the command line win)."""
    values = dict(kwargs)
    values["strategy_options"] = parse_sets(values.pop("sets", ()))
    values["eval_splits"] = [s.strip() for s in values.pop("eval_splits").split(",") if s.strip()]
    values.update(overrides)
    if file_values:
        from harness.config_file import merge_over_file

        values = merge_over_file(file_values, values, flags_given(ctx))
    return RunConfig(**values)


def flags_given(ctx: click.Context) -> set[str]:
    """RunConfig names of the options typed on the command line (not left at their defaults)."""
    names = {"sets": "strategy_options"}
    return {names.get(p.name, p.name) for p in ctx.command.params
            if ctx.get_parameter_source(p.name) not in (None, click.core.ParameterSource.DEFAULT)}


def _lr(value: str | None, name: str) -> float | None:
    """The number; its range is RunConfig.validate's to check."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise UserError(f"{name} must be a finite number > 0, e.g. 1e-5; got '{value}'") from None


@cli.command()
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
      harness run --config examples/configs/ft_gen.toml --epochs 2
      harness show RUN_ID --config > again.toml && harness run --config again.toml --seed 1
      harness run --plugin rag_token --processes 2        # DDP on 2 GPUs (or 2 CPU processes)
      harness run --plugin ft_embed --dataset synthbio --seeds 0,1,2
    """
    from harness.config_file import load_run_file
    from harness.distributed import launch, launched_processes
    from harness.runner import execute, resolve

    file_values = load_run_file(config_file) if config_file else None
    cfg = build_config(kwargs, ctx, file_values, embed_lr=_lr(embed_lr, "--embed-lr"), gen_lr=_lr(gen_lr, "--gen-lr"))
    if processes > 1 and launched_processes() == 1:
        resolve(cfg)  # a misspelt name is one line here, not one per process
        sys.exit(launch(processes, _LAUNCH_ARGV))
    from harness.grid import parse_seeds

    seed_list = parse_seeds(seeds)
    if seed_list and "seed" in flags_given(ctx):
        raise UserError("give --seed or --seeds, not both")
    store = _store(ctx)
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


def print_where_results_are(store: Store, run_id: str) -> None:
    """The last lines of a run: where its results and artifacts are, and the commands to look at them."""
    db = f" --db {store.path}" if store.path != default_db_path() else ""
    for kind, path in store.run_artifact_paths(run_id).items():  # inside the run's folder
        console.print(f"{kind}: {path}", soft_wrap=True)
    console.print(f"results: {store.path} (run {run_id})", soft_wrap=True)
    console.print(f"next: harness show {run_id}{db}  ·  harness leaderboard{db}  ·  "
                  f"harness export {run_id} --to DIR{db}", soft_wrap=True)


def print_metrics(metrics: dict[str, dict[str, float]]) -> None:
    table = Table("split", "EM", "F1", "recall@5", "answer_recall@5", "n", "eval s")
    for split, values in metrics.items():
        if split == "cost" or not set(values) & {"em", "f1", "recall@5", "answer_recall@5"}:
            continue  # not an evaluated split (the training split holds only the silver-label counts)
        table.add_row(split, *(_fmt(values.get(m), integer=m == "n")
                               for m in ("em", "f1", "recall@5", "answer_recall@5", "n", "eval_seconds")))
    console.print(table)
    train = metrics.get("train", {})
    if "silver_top_n" in train:
        labelled, dropped = int(train["silver_labelled"]), int(train["silver_dropped"])
        console.print(f"silver labels (answer-bearing passages in the base top {int(train['silver_top_n'])}): "
                      f"{labelled} training questions labelled, {dropped} dropped without one")
    cost = metrics.get("cost", {})
    if cost:
        console.print(
            f"fit {cost.get('fit_seconds', 0):.1f}s · peak memory {cost.get('peak_memory_mb', 0):.0f} MB · "
            f"trained tokens {cost.get('trained_tokens', 0):.0f} · training FLOPs {cost.get('train_flops', 0):.3g} · "
            f"index refreshes {cost.get('index_refreshes', 0):.0f}"
        )


def _fmt(value, integer: bool = False) -> str:
    """One decimal for scores and seconds; counts (`integer`) as whole numbers."""
    if value is None or value != value:  # unset or NaN
        return "–"
    if integer:
        return str(round(value))
    return f"{value:.1f}" if isinstance(value, float) else str(value)


@cli.command(name="plugins")
def plugins_command() -> None:
    """List loaded plugins, where each came from, and the hooks it implements.

    \b
    Examples:
      harness plugins
      harness --plugins-dir ./my_plugins plugins
      HARNESS_LOAD_PLUGINS=harness_example_strategy harness plugins
    """
    table = Table("plugin", "origin", "hooks")
    for info in plugins.plugin_info():
        table.add_row(info["name"], info["origin"], ", ".join(info["hooks"]))
    console.print(table)
    print_contract_problems(plugins.strategies())


def print_contract_problems(reg) -> None:
    """Strategies that do not satisfy the contract (harness/strategy.py), each with what it lacks."""
    if not reg.problems:
        return
    table = Table("strategy", "plugin", "missing", title="strategies that break the contract (harness/strategy.py): "
                                                         "they cannot run")
    for name, problems in sorted(reg.problems.items()):
        table.add_row(name, reg.owners[name], "; ".join(problems))
    console.print(table)


@cli.command(name="list")
@click.argument("what", type=click.Choice(["strategies", "models", "datasets"]))
@click.option("--verbose", "-v", is_flag=True, help="strategies: their --set options; datasets: sizes, sources, licenses")
def list_command(what: str, verbose: bool) -> None:
    """List registered strategies, models (embedders and generators) or datasets.

    \b
    Examples:
      harness list strategies
      harness list strategies --verbose     # with each strategy's --set options
      harness list datasets -v              # sizes, sources, licenses
    """
    if what == "strategies":
        reg = plugins.strategies()
        table = Table("strategy", "needs context labels", "plugin", "description",
                      *(["learning rates", "--set options"] if verbose else []))
        for name, cls in sorted(reg.items.items()):
            if name in reg.problems:
                continue
            row = [name, "yes" if cls.needs_context_labels else "no", reg.owners[name], cls.description]
            rates = "\n".join(f"{k}={v:g}" for k, v in cls.learning_rates.items()) or "–"
            table.add_row(*(row + ([rates, strategy_options_text(cls)] if verbose else [])))
        console.print(table)
        print_contract_problems(reg)
        return
    elif what == "models":
        table = Table("kind", "name", "plugin", "description")
        for kind, reg in plugins.models().items():
            for name, spec in sorted(reg.items.items()):
                table.add_row(kind, name + ("<id>" if name.endswith(":") else ""), reg.owners[name], spec.description)
    else:
        reg = plugins.datasets()
        columns = ["dataset", "context labels", "description"] + (["size", "license", "source"] if verbose else [])
        table = Table(*columns)
        for name, spec in sorted(reg.items.items()):
            row = [name, "yes" if spec.has_context_labels else "no", spec.description]
            table.add_row(*(row + ([getattr(spec, "size", ""), spec.license, spec.source] if verbose else [])))
    console.print(table)


def strategy_options_text(cls) -> str:
    """`name=default  help` for each field of the strategy's Options dataclass (what --set accepts)."""
    options = strategy_options_class(cls)
    if options is None:
        return "–"
    return "\n".join(f"{f.name}={f.default if f.default is not dataclasses.MISSING else '?'}  {f.metadata.get('help', '')}".rstrip()  # noqa: E501
                     for f in dataclasses.fields(options))


LEADERBOARD_COLUMNS = ("id", "strategy", "dataset", "embedder", "generator", "labels", "seeds", "n", "em", "em_std",
                       "em_low", "em_high", "f1", "f1_std", "f1_low", "f1_high", "recall@5", "answer_recall@5",
                       "vs_best", "p_vs_best", "dev_em", "embed_lr", "gen_lr", "fit_seconds", "peak_memory_mb",
                       "grid_id", "cells", "run_ids")
RUN_COLUMNS = ("id", "strategy", "dataset", "embedder", "generator", "seed", "grid_id", "n", "em", "em_low",
               "em_high", "f1", "f1_low", "f1_high", "recall@5", "answer_recall@5", "fit_seconds", "peak_memory_mb")


@cli.command()
@click.option("--all", "show_all", is_flag=True, help="every finished run, one row each, instead of the ranking")
@click.option("--split", default="test", show_default=True, help="split the rows report (selection is always on dev)")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="table for the terminal; csv, json or markdown (every column, intervals included) to save or paste")
@click.pass_context
def leaderboard(ctx: click.Context, show_all: bool, split: str, fmt: str) -> None:
    """The ranking the dashboard shows: per strategy × dataset × models, the best grid cell by dev EM,
    reported as the mean over seeds with a 95% interval, ties with the best marked (harness/leaderboard.py).

    \b
    Examples:
      harness leaderboard
      harness leaderboard --split dev --all
      harness leaderboard --format csv > leaderboard.csv
      harness leaderboard --format markdown --db runs.duckdb
    """
    from harness.leaderboard import run_rows, store_ranking

    store = _store(ctx)
    rows = run_rows(store, split) if show_all else store_ranking(store, split)
    if fmt != "table":
        click.echo(rows_as_text(rows, RUN_COLUMNS if show_all else LEADERBOARD_COLUMNS, fmt, integers=("n", "seeds")),
                   nl=False)
        return
    if not rows:
        console.print(f"no finished runs in {ctx.obj['db']}: run `harness run` first")
        return
    console.print(run_table(rows, split, ctx.obj["db"]) if show_all else ranking_table(rows, split, ctx.obj["db"]))


def ranking_table(rows: list[dict], split: str, db: str) -> Table:
    table = Table("run", "strategy", "dataset", "embedder", "generator", "labels", "seeds", "EM", "95% CI", "F1",
                  "recall@5", "answer_recall@5", "vs best", "fit s",
                  title=f"{split} split · best cell by dev EM · mean over seeds · {db}")
    for r in rows:
        em = _fmt(r["em"]) + (f" ± {r['em_std']:.1f}" if r["seeds"] > 1 and r["em_std"] == r["em_std"] else "")
        table.add_row(r["id"], r["strategy"], r["dataset"], r["embedder"], r["generator"], r["labels"], str(r["seeds"]),
                      em, r["em_ci"], *(_fmt(r.get(m)) for m in ("f1", "recall@5", "answer_recall@5")), r["vs_best"],
                      _fmt(r.get("fit_seconds")))
    return table


def run_table(rows: list[dict], split: str, db: str) -> Table:
    table = Table("run", "strategy", "dataset", "embedder", "generator", "seed", "labels", "EM", "F1", "recall@5",
                  "answer_recall@5", "fit s", title=f"{split} split · every finished run · {db}")
    for r in rows:
        table.add_row(r["id"], r["strategy"], r["dataset"], r["embedder"], r["generator"], str(r["seed"]), r["labels"],
                      *(_fmt(r.get(m)) for m in ("em", "f1", "recall@5", "answer_recall@5", "fit_seconds")))
    return table


@cli.command()
@click.argument("run_id")
@click.option("--predictions", "n_predictions", type=click.IntRange(min=0), default=5, show_default=True,
              help="how many predictions to show (0: none)")
@click.option("--config", "as_config", is_flag=True,
              help="print only the run's resolved config as a TOML file that re-runs it exactly")
@click.pass_context
def show(ctx: click.Context, run_id: str, n_predictions: int, as_config: bool) -> None:
    """Show one run: config, status, metrics and a few predictions (RUN_ID may be a prefix).

    \b
    Examples:
      harness show 3f2a9c
      harness show 3f2a9c --config > run.toml && harness run --config run.toml --force
    """
    store = _store(ctx)
    run = store.find_run(run_id)
    if as_config:
        from harness.config_file import config_to_toml

        header = (f"run {run['id']}: {run['strategy']} on {run['dataset']}, code {run['harness_version']} @ {run['git_sha']}\n"
                  "re-run: harness run --config THIS_FILE (identical config and code: add --force to run it again)")
        click.echo(config_to_toml(json.loads(run["config"]), header), nl=False)
        return
    console.print(f"[bold]run {run['id']}[/] · {run['status']} · {run['strategy']} on {run['dataset']} "
                  f"({run['embedder']} + {run['generator']}) · started {run['started_at']}")
    if run["error"]:
        console.print(f"[red]error:[/] {run['error']}")
    console.print(f"code {run['harness_version']} @ {run['git_sha']} · device {run['device']}")
    console.print_json(run["config"])
    print_metrics(store.run_metrics(run["id"]))
    preds = store.run_predictions(run["id"], limit=n_predictions)
    if preds:
        table = Table("split", "question", "prediction", "gold", "EM", "F1", title="predictions")
        for p in preds:
            table.add_row(p["split"], p["question"], p["prediction"], ", ".join(json.loads(p["golds"])),
                          f"{p['em']:.0f}", f"{p['f1']:.2f}")
        console.print(table)


@cli.command()
@click.option("--recompute-answer-recall", is_flag=True,
              help="rescore runs stored before answer_recall became DPR's has_answer, from their stored "
                   "retrieved ids (loads each run's dataset; runs whose corpus is unavailable stay marked old)")
@click.pass_context
def migrate(ctx: click.Context, recompute_answer_recall: bool) -> None:
    """Create or upgrade the store's schema (every command does this on first write too).

    \b
    Examples:
      harness migrate
      harness migrate --db old.duckdb --recompute-answer-recall
    """
    from harness.migrations import OLD_ANSWER_MATCH
    from harness.migrations import migrate as apply
    from harness.store import connect_with_retry

    con = connect_with_retry(ctx.obj["db"])
    try:
        applied = apply(con, f"store {ctx.obj['db']}")
    finally:
        con.close()
    console.print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")
    store = _store(ctx)
    if recompute_answer_recall:
        _recompute_answer_recall(store)
    elif old := store.runs_with_answer_match(OLD_ANSWER_MATCH):
        console.print(f"{len(old)} runs have answer_recall computed with the old substring match; "
                      "`harness migrate --recompute-answer-recall` rescores them with DPR's has_answer")


def _recompute_answer_recall(store: Store) -> None:
    from functools import cache

    from harness.rescore import corpus_of_config, rescore_old_runs

    quiet_libraries()
    cached = cache(lambda key: corpus_of_config(json.loads(key)))
    report = rescore_old_runs(store, lambda config: cached(json.dumps(
        {k: config.get(k) for k in ("strategy", "dataset", "data_dir", "limit", "corpus_limit")}, sort_keys=True)))
    console.print(f"answer_recall rescored with DPR's has_answer: {len(report.rescored)} runs")
    for run_id, why in report.kept_old:
        console.print(f"  kept the old definition for run {run_id}: {why}")


@cli.command()
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
@click.option("--budgets", default=None, metavar="FLOPS[,FLOPS...]",
              help="run the grid once per training-FLOP budget (--max-train-flops each), for the dashboard's "
                   "quality-at-equal-compute view")
@click.option("--executor", default="local", show_default=True,
              help="where cells run: local (this process), ray (Ray tasks), slurm (a submitit job array), or a plugin's")
@click.option("--cell-cpus", type=click.FloatRange(0.01, 1024), default=1.0, show_default=True, help="CPUs per cell (ray, slurm)")
@click.option("--cell-gpus", type=click.FloatRange(0, 64), default=0.0, show_default=True, help="GPUs per cell (ray, slurm)")
@click.option("--max-retries", type=click.IntRange(0, 20), default=2, show_default=True,
              help="a worker that dies is retried this often, then its cell is stored failed (ray, slurm)")
@click.option("--ray-address", default=None, help="a running Ray cluster (e.g. auto); default: start a local one")
@click.option("--slurm-partition", default=None, help="Slurm partition for the job array")
@click.option("--slurm-time", type=click.IntRange(1, 100000), default=240, show_default=True, help="minutes per cell job")
@click.option("--slurm-array-parallelism", type=click.IntRange(1, 10000), default=16, show_default=True,
              help="cells of the job array running at once")
@click.option("--slurm-cluster", type=click.Choice(["slurm", "local"]), default=None,
              help="submitit cluster (default: slurm when sbatch exists, else local processes)")
@click.pass_context
def grid(ctx: click.Context, lr_grid: str | None, embed_lr: str | None, gen_lr: str | None, lrs_from: str | None,
         force: bool, config_file: str | None, seeds: str | None, budgets: str | None, executor: str,
         cell_cpus: float, cell_gpus: float, max_retries: int, ray_address: str | None, slurm_partition: str | None,
         slurm_time: int, slurm_array_parallelism: int, slurm_cluster: str | None, **kwargs) -> None:
    """Search learning rates: every cell is a stored run with a shared grid id; selection on dev EM (ties: F1).

    \b
    Examples:
      harness grid --plugin ft_gen --lr-grid paper
      harness grid --plugin two_phase --lr-grid paper        # generator rate first, then the embedder's
      harness grid --plugin rag_token --lrs-from two_phase   # the paper's choice for joint strategies
      harness grid --plugin rag_token --embed-lr 1e-6,1e-5 --gen-lr 1e-4,1e-3
      harness grid --config examples/configs/grid_ft_gen.toml
      harness grid --plugin ft_gen --dataset synthbio --seeds 0,1,2 --budgets 1e13,3e13,1e14
      harness grid --plugin ft_gen --lr-grid paper --executor ray --cell-gpus 1     # cells in parallel on Ray
      harness grid --plugin ft_gen --lr-grid paper --executor slurm --slurm-partition gpu --cell-gpus 1
    Re-running the same command runs only the cells not finished yet (found by run key).
    """
    from harness.config_file import load_grid_file
    from harness.executors import ExecutorOptions, get_executor
    from harness.grid import (
        check_rate_sources,
        parse_budgets,
        parse_lr_list,
        parse_seeds,
        plan_grid,
        run_grid,
        selected_lrs,
    )
    from harness.runner import resolve, runs_dir

    file_values, file_grid = load_grid_file(config_file) if config_file else ({}, {})
    given = flags_given(ctx)
    lr_grid = lr_grid if "lr_grid" in given else file_grid.get("lr_grid")
    lrs_from = lrs_from if "lrs_from" in given else file_grid.get("lrs_from")
    check_rate_sources(lr_grid, lrs_from)
    explicit = {"embed_lr": parse_lr_list(embed_lr, "--embed-lr"), "gen_lr": parse_lr_list(gen_lr, "--gen-lr")}
    explicit = {name: rates if name in given else file_grid.get(name) for name, rates in explicit.items()}
    base = build_config(kwargs, ctx, file_values)
    store = _store(ctx)
    strategy_cls = resolve(base).strategy_cls
    fixed = selected_lrs(store, lrs_from, base) if lrs_from else None
    seed_list, budget_list = parse_seeds(seeds), parse_budgets(budgets)
    if seed_list and "seed" in given:
        raise UserError("give --seed or --seeds, not both")
    plan = plan_grid(strategy_cls, lr_grid, explicit, fixed, lrs_from, search_optional=bool(seed_list or budget_list))
    runner = None if executor == "local" else get_executor(executor)
    options = ExecutorOptions(cell_cpus, cell_gpus, max_retries, ray_address, slurm_partition, slurm_time,
                              slurm_array_parallelism, slurm_cluster, logs_dir=str(runs_dir(store) / "executor-logs"),
                              plugins_dir=ctx.find_root().params.get("plugins_dir"))
    quiet_libraries()
    console.print(f"grid of {plan.n_cells()} cells for {plan.strategy}"
                  + (f" (rates from {lrs_from}: {fixed})" if lrs_from else "")
                  + (f" × {len(seed_list)} seeds" if seed_list else "")
                  + (f" × {len(budget_list)} FLOP budgets" if budget_list else ""))
    for budget in budget_list or [base.max_train_flops]:
        result = run_grid(dataclasses.replace(base, max_train_flops=budget), store, plan, force=force, seeds=seed_list,
                          executor=runner, executor_options=options,
                          on_cell=lambda c: console.print(f"  cell {c.lrs} -> {c.status} "
                                                          f"{', '.join(c.run_ids) or c.error or ''}"))
        print_grid_result(store, result, plan, budget)


def print_grid_result(store: Store, result, plan, budget: float | None) -> None:
    from harness.grid import cell_rows

    table = Table("", "stage", "embed lr", "gen lr", "dev EM", "dev F1", "test EM", "test F1", "fit s", "run",
                  "status", title=f"grid {result.grid_id} · {plan.strategy} · selected on dev EM (ties: F1)"
                                  + (f" · budget {budget:.3g} FLOPs" if budget else ""))
    for row in cell_rows(result):
        table.add_row("*" if row["selected"] else "", str(row["stage"]), *(_fmt_lr(row[n]) for n in ("embed_lr", "gen_lr")),
                      *(_fmt(row[m]) for m in ("dev_em", "dev_f1", "test_em", "test_f1", "fit_seconds")),
                      row["run"] or "–", row["status"])
    console.print(table)
    chosen = result.selected
    console.print(f"selected run {chosen.run_id}: embed lr {_fmt_lr(chosen.lrs.get('embed_lr'))}, gen lr "
                  f"{_fmt_lr(chosen.lrs.get('gen_lr'))} · test EM {_fmt(chosen.metrics.get('test', {}).get('em'))}")
    if chosen.run_id:
        print_where_results_are(store, chosen.run_id)


def _fmt_lr(value: float | None) -> str:
    return "default" if value is None else f"{value:.0e}"



@cli.command()
@click.argument("run_id")
@click.option("--splits", default="dev,test", show_default=True, help="comma-separated splits to evaluate")
@click.pass_context
def evaluate(ctx: click.Context, run_id: str, splits: str) -> None:
    """Reload a run's saved artifacts (tuned embedder, LoRA adapter) on its base models and evaluate them.

    The run's config picks the models, data and decoding; artifact checksums are verified first.
    Prints the fresh metrics beside the stored ones; stores nothing.

    \b
    Examples:
      harness evaluate 3f2a9c
      harness evaluate 3f2a9c --splits test
    """
    from harness.artifacts import reevaluate

    wanted = [s.strip() for s in splits.split(",") if s.strip()]
    bad = [s for s in wanted if s not in ("train", "dev", "test")]
    if bad or not wanted:
        raise UserError(f"--splits must be among train, dev, test; got '{splits}'")
    store = _store(ctx)
    quiet_libraries()
    run, results = reevaluate(store, run_id, wanted)
    stored = store.run_metrics(run["id"])
    table = Table("split", "EM", "F1", "recall@5", "answer_recall@5", "stored EM", "stored F1",
                  title=f"run {run['id']} ({run['strategy']}) re-evaluated from its artifacts")
    for split, result in results.items():
        table.add_row(split, *(_fmt(result.metrics.get(m)) for m in ("em", "f1", "recall@5", "answer_recall@5")),
                      *(_fmt(stored.get(split, {}).get(m)) for m in ("em", "f1")))
    console.print(table)

def _register_plugin_commands() -> None:
    plugins.pm.hook.register_commands(cli=cli)
    for command in cli.commands.values():
        add_db_option(command)


def add_db_option(command: click.Command) -> None:
    """`harness COMMAND --db X` as well as `harness --db X COMMAND` (commands with their own --db keep it)."""
    if any(param.name == "db" for param in command.params):
        return
    command.params.append(click.Option(["--db"], default=None, expose_value=False, callback=_set_db, metavar="PATH",
                                       help="DuckDB store (default ./harness.duckdb, or $HARNESS_DB)"))


def _set_db(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.obj["db"] = value


_LAUNCH_ARGV: list[str] = []  # this command's arguments, for `run --processes N` to launch again


def main(argv: list[str] | None = None) -> None:
    """Entry point: load plugins, add their commands, run; a user's mistake is one line and exit code 2.

    Ctrl-C and SIGTERM (`timeout`, Slurm preemption, `docker stop`) end the same way: a run in progress is
    stored `interrupted`, one line says so, exit code 130 (Ctrl-C) or 143 (SIGTERM).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    _LAUNCH_ARGV[:] = argv
    with sigterm_as_interrupt():
        try:
            plugins.load_plugins(_early_plugins_dir(argv))
            _register_plugin_commands()
            cli.main(args=argv, prog_name="harness", standalone_mode=False)
        except BaseException as exc:  # noqa: BLE001 - sorted by kind below; anything else re-raises
            sys.exit(_report(exc))


def _report(exc: BaseException) -> int:
    """Print the one line a user sees for `exc` and return the exit code (re-raise what is a bug)."""
    from harness.runner import StrategyFailed

    if isinstance(exc, click.exceptions.Abort) and isinstance(exc.__cause__, KeyboardInterrupt):
        exc = exc.__cause__
    interrupt = interrupt_behind(exc)
    if interrupt is not None:
        cause = "terminated (SIGTERM)" if isinstance(interrupt, Terminated) else "interrupted (Ctrl-C)"
        print(f"{cause}: a run in progress is stored as interrupted; earlier runs are intact", file=sys.stderr)
        return 143 if isinstance(interrupt, Terminated) else 130
    if isinstance(exc, click.exceptions.Abort):
        print("aborted", file=sys.stderr)
        return 1
    if isinstance(exc, click.ClickException):
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if isinstance(exc, click.UsageError) and ctx else ""
        print(f"error: {exc.format_message()}{hint}", file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, UserError):
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, StrategyFailed):
        print(f"error: {exc} (the run is stored as failed; `harness show` has it)", file=sys.stderr)
        return exc.exit_code
    raise exc


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While the CLI runs, SIGTERM raises `Terminated` (a KeyboardInterrupt) in the main thread, once, and
    Ctrl-C its KeyboardInterrupt as Python does; both are noted (`errors.interrupt_behind`), so one that comes
    out as another exception is still told apart from a failure."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigterm(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
        raise note_interrupt(Terminated())

    def on_sigint(signum, frame):
        raise note_interrupt(KeyboardInterrupt())

    forget_interrupts()
    previous_term = signal.signal(signal.SIGTERM, on_sigterm)
    python_sigint = signal.getsignal(signal.SIGINT) is signal.default_int_handler  # not SIG_IGN or a host's own
    previous_int = signal.signal(signal.SIGINT, on_sigint) if python_sigint else None
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        if python_sigint:
            signal.signal(signal.SIGINT, previous_int)


def _early_plugins_dir(argv: list[str]) -> str | None:
    """`--plugins-dir` is needed before the CLI is built, so plugin commands can register."""
    for i, arg in enumerate(argv):
        if arg == "--plugins-dir" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--plugins-dir="):
            return arg.split("=", 1)[1]
    return env.plugins_dir()
