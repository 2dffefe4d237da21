"""`harness show` and `harness evaluate`: one stored run, and its saved models evaluated again."""

from __future__ import annotations

import json

import click
from rich.table import Table

from harness.cli.common import console, fmt, open_store, print_metrics, quiet_libraries
from harness.errors import UserError


@click.command()
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
    store = open_store(ctx)
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


@click.command()
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
    from harness.runner.artifacts import reevaluate

    wanted = [s.strip() for s in splits.split(",") if s.strip()]
    bad = [s for s in wanted if s not in ("train", "dev", "test")]
    if bad or not wanted:
        raise UserError(f"--splits must be among train, dev, test; got '{splits}'")
    store = open_store(ctx)
    quiet_libraries()
    run, results = reevaluate(store, run_id, wanted)
    stored = store.run_metrics(run["id"])
    table = Table("split", "EM", "F1", "recall@5", "answer_recall@5", "stored EM", "stored F1",
                  title=f"run {run['id']} ({run['strategy']}) re-evaluated from its artifacts")
    for split, result in results.items():
        table.add_row(split, *(fmt(result.metrics.get(m)) for m in ("em", "f1", "recall@5", "answer_recall@5")),
                      *(fmt(stored.get(split, {}).get(m)) for m in ("em", "f1")))
    console.print(table)

