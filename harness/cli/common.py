"""What every command shares, and the public API of plugin commands: the console, opening the store, the
RunConfig options, the arguments to launch again on N processes, number formats.

    from harness.cli.common import console, open_store, quiet_libraries, launch_argv
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

import click
from rich.console import Console
from rich.table import Table

from harness.config import INDEX_DEVICES, INDEX_KINDS, QUANTIZE_CHOICES, RunConfig, option_help
from harness.errors import UserError
from harness.optional import require_installed  # a command's optional extra (plugins/commands/lm_eval.py)
from harness.store.db import Store, default_db_path

__all__ = ["console", "open_store", "quiet_libraries", "launch_argv", "run_options", "build_config", "parse_sets",
           "flags_given", "parse_lr", "fmt", "print_metrics", "print_where_results_are", "require_installed"]


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


def open_store(ctx: click.Context) -> Store:
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
        click.option("--eval-modes", default="", metavar="MODES", help=HELP["eval_modes"] + " (harness/evaluation.py)"),
        click.option("--retention-probe", default="fanoutqa_wiki", show_default=True, help=HELP["retention_probe"]),
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
    from harness.results.tracking import enable_trackers

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
    values["eval_modes"] = [m.strip() for m in values.pop("eval_modes", "").split(",") if m.strip()]
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


def parse_lr(value: str | None, name: str) -> float | None:
    """The number; its range is RunConfig.validate's to check."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise UserError(f"{name} must be a finite number > 0, e.g. 1e-5; got '{value}'") from None


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
        table.add_row(split, *(fmt(values.get(m), integer=m == "n")
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


def fmt(value, integer: bool = False) -> str:
    """One decimal for scores and seconds; counts (`integer`) as whole numbers."""
    if value is None or value != value:  # unset or NaN
        return "–"
    if integer:
        return str(round(value))
    return f"{value:.1f}" if isinstance(value, float) else str(value)


_LAUNCH_ARGV: list[str] = []  # this command's arguments (set by `main`), for `--processes N` to launch again


def launch_argv() -> list[str]:
    """This command's arguments as typed (after `harness`): what `--processes N` launches again on N processes."""
    return list(_LAUNCH_ARGV)
