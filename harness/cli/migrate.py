"""`harness migrate`: create or upgrade the store's schema; rescore runs whose metric definition changed."""

from __future__ import annotations

import json

import click

from harness.cli.common import console, open_store, quiet_libraries
from harness.store.db import Store


@click.command()
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
    from harness.store.db import connect_with_retry
    from harness.store.migrations import OLD_ANSWER_MATCH
    from harness.store.migrations import migrate as apply

    con = connect_with_retry(ctx.obj["db"])
    try:
        applied = apply(con, f"store {ctx.obj['db']}")
    finally:
        con.close()
    console.print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")
    store = open_store(ctx)
    if recompute_answer_recall:
        _recompute_answer_recall(store)
    elif old := store.runs_with_answer_match(OLD_ANSWER_MATCH):
        console.print(f"{len(old)} runs have answer_recall computed with the old substring match; "
                      "`harness migrate --recompute-answer-recall` rescores them with DPR's has_answer")


def _recompute_answer_recall(store: Store) -> None:
    from functools import cache

    from harness.results.rescore import corpus_of_config, rescore_old_runs

    quiet_libraries()
    cached = cache(lambda key: corpus_of_config(json.loads(key)))
    report = rescore_old_runs(store, lambda config: cached(json.dumps(
        {k: config.get(k) for k in ("strategy", "dataset", "data_dir", "limit", "corpus_limit")}, sort_keys=True)))
    console.print(f"answer_recall rescored with DPR's has_answer: {len(report.rescored)} runs")
    for run_id, why in report.kept_old:
        console.print(f"  kept the old definition for run {run_id}: {why}")

