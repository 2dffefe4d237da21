"""`harness leaderboard`: the ranking the dashboard shows (harness/results/leaderboard.py), or every run."""

from __future__ import annotations

import click
from rich.table import Table

from harness.cli.common import console, fmt, open_store
from harness.results.table_formats import FORMATS, rows_as_text

LEADERBOARD_COLUMNS = ("id", "strategy", "dataset", "eval_set", "embedder", "generator", "labels", "seeds", "n", "em", "em_std",
                       "em_low", "em_high", "f1", "f1_std", "f1_low", "f1_high", "recall@5", "answer_recall@5",
                       "vs_best", "p_vs_best", "gain_retrieval", "gain_reading", "em_gold_retrieved", "em_gold_missed",
                       "grounded", "closed_book_em", "oracle_em", "retention_perplexity_change", "retention_em_change",
                       "dev_em", "embed_lr", "gen_lr", "fit_seconds", "peak_memory_mb", "grid_id", "cells", "run_ids")


RUN_COLUMNS = ("id", "strategy", "dataset", "eval_set", "embedder", "generator", "seed", "grid_id", "n", "em", "em_low",
               "em_high", "f1", "f1_low", "f1_high", "recall@5", "answer_recall@5", "fit_seconds", "peak_memory_mb")


@click.command()
@click.option("--all", "show_all", is_flag=True, help="every finished run, one row each, instead of the ranking")
@click.option("--split", default="test", show_default=True, help="split the rows report (selection is always on dev)")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="table for the terminal; csv, json or markdown (every column, intervals included) to save or paste")
@click.pass_context
def leaderboard(ctx: click.Context, show_all: bool, split: str, fmt: str) -> None:
    """The ranking the dashboard shows: per evaluation set (the same questions of the same data: `n` says how
    many) × strategy × models, the best grid cell by dev EM, reported as the mean over seeds with a 95%
    interval, ties with the set's best marked (harness/results/leaderboard.py). Runs scored on different
    questions (a `--limit` run, another data folder) are never ranked together: each set is its own section.

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
    from harness.results.leaderboard import group_key

    table = Table("run", "strategy", "dataset", "n", "embedder", "generator", "labels", "seeds", "EM",
                  "95% CI", "F1", "recall@5", "answer_recall@5", "vs best", "fit s",
                  title=f"{split} split · a section per evaluation set (n questions; ids: --format csv) · best "
                        f"cell by dev EM · mean over seeds · {db}")
    table.columns[0].min_width = 12  # a run id is what a reader copies: never cut
    for i, r in enumerate(rows):
        em = fmt(r["em"]) + (f" ± {r['em_std']:.1f}" if r["seeds"] > 1 and r["em_std"] == r["em_std"] else "")
        last_of_set = i + 1 == len(rows) or group_key(rows[i + 1]) != group_key(r)
        table.add_row(r["id"], r["strategy"], r["dataset"], count(r.get("n")), r["embedder"],
                      r["generator"], r["labels"], str(r["seeds"]), em, r["em_ci"],
                      *(fmt(r.get(m)) for m in ("f1", "recall@5", "answer_recall@5")), r["vs_best"],
                      fmt(r.get("fit_seconds")), end_section=last_of_set)
    return table


def count(value) -> str:
    return "–" if value is None or value != value else str(round(value))


def run_table(rows: list[dict], split: str, db: str) -> Table:
    table = Table("run", "strategy", "dataset", "n", "embedder", "generator", "seed", "labels", "EM", "F1",
                  "recall@5", "answer_recall@5", "fit s", title=f"{split} split · every finished run · {db}")
    for r in rows:
        table.add_row(r["id"], r["strategy"], r["dataset"], count(r.get("n")), r["embedder"],
                      r["generator"], str(r["seed"]), r["labels"],
                      *(fmt(r.get(m)) for m in ("em", "f1", "recall@5", "answer_recall@5", "fit_seconds")))
    return table

