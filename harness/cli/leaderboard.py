"""`harness leaderboard`: the ranking the dashboard shows (harness/results/leaderboard.py), or every run."""

from __future__ import annotations

import click
from rich.table import Table

from harness.cli.common import console, fmt, open_store
from harness.results.table_formats import FORMATS, rows_as_text

LEADERBOARD_COLUMNS = ("id", "strategy", "dataset", "embedder", "generator", "labels", "seeds", "n", "em", "em_std",
                       "em_low", "em_high", "f1", "f1_std", "f1_low", "f1_high", "recall@5", "answer_recall@5",
                       "vs_best", "p_vs_best", "dev_em", "embed_lr", "gen_lr", "fit_seconds", "peak_memory_mb",
                       "grid_id", "cells", "run_ids")


RUN_COLUMNS = ("id", "strategy", "dataset", "embedder", "generator", "seed", "grid_id", "n", "em", "em_low",
               "em_high", "f1", "f1_low", "f1_high", "recall@5", "answer_recall@5", "fit_seconds", "peak_memory_mb")


@click.command()
@click.option("--all", "show_all", is_flag=True, help="every finished run, one row each, instead of the ranking")
@click.option("--split", default="test", show_default=True, help="split the rows report (selection is always on dev)")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="table for the terminal; csv, json or markdown (every column, intervals included) to save or paste")
@click.pass_context
def leaderboard(ctx: click.Context, show_all: bool, split: str, fmt: str) -> None:
    """The ranking the dashboard shows: per strategy × dataset × models, the best grid cell by dev EM,
    reported as the mean over seeds with a 95% interval, ties with the best marked (harness/results/leaderboard.py).

    \b
    Examples:
      harness leaderboard
      harness leaderboard --split dev --all
      harness leaderboard --format csv > leaderboard.csv
      harness leaderboard --format markdown --db runs.duckdb
    """
    from harness.results.leaderboard import run_rows, store_ranking

    store = open_store(ctx)
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
        em = fmt(r["em"]) + (f" ± {r['em_std']:.1f}" if r["seeds"] > 1 and r["em_std"] == r["em_std"] else "")
        table.add_row(r["id"], r["strategy"], r["dataset"], r["embedder"], r["generator"], r["labels"], str(r["seeds"]),
                      em, r["em_ci"], *(fmt(r.get(m)) for m in ("f1", "recall@5", "answer_recall@5")), r["vs_best"],
                      fmt(r.get("fit_seconds")))
    return table


def run_table(rows: list[dict], split: str, db: str) -> Table:
    table = Table("run", "strategy", "dataset", "embedder", "generator", "seed", "labels", "EM", "F1", "recall@5",
                  "answer_recall@5", "fit s", title=f"{split} split · every finished run · {db}")
    for r in rows:
        table.add_row(r["id"], r["strategy"], r["dataset"], r["embedder"], r["generator"], str(r["seed"]), r["labels"],
                      *(fmt(r.get(m)) for m in ("em", "f1", "recall@5", "answer_recall@5", "fit_seconds")))
    return table

