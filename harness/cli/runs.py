"""Inspecting and filling the store: `harness show` (one run), `harness evaluate` (its saved models again),
`harness runs` (every run with its status; a lost run reads `interrupted`) and `harness import` (run folders
made elsewhere, ingested in one transaction; twice changes nothing)."""

from __future__ import annotations

import json
import math

import click
from rich.table import Table

from harness.cli.common import console, fmt, open_store, print_metrics, quiet_libraries
from harness.errors import UserError
from harness.store.folder import collect_finished


@click.command()
@click.argument("run_id")
@click.option("--predictions", "n_predictions", type=click.IntRange(min=0), default=5, show_default=True,
              help="how many predictions to show (0: none)")
@click.option("--config", "as_config", is_flag=True,
              help="print only the run's resolved config as a TOML file that re-runs it exactly")
@click.option("--baseline", default=None, metavar="RUN_ID",
              help="split the EM gain over this run into retrieval and reading (default: the newest no_ft run on "
                   "the same test questions with the same models, if there is one)")
@click.pass_context
def show(ctx: click.Context, run_id: str, n_predictions: int, as_config: bool, baseline: str | None) -> None:
    """Show one run: config, status, metrics, where its score comes from and a few predictions (RUN_ID may be
    a prefix).

    Where the score comes from (harness/evaluation.py): EM on the questions whose gold passage was retrieved
    and on the rest, the share of correct answers supported by a retrieved passage (grounded), closed-book and
    oracle EM (with `--eval-modes`), the retention of the generator, and the gain over a baseline run on the
    same questions split into retrieval and reading.

    \b
    Examples:
      harness show 3f2a9c
      harness show 3f2a9c --baseline 77e0b1
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
    metrics = store.run_metrics(run["id"])
    print_metrics(metrics)
    print_sources(metrics)
    print_lm_eval(metrics)
    print_gain(store, run, metrics, baseline)
    preds = store.run_predictions(run["id"], limit=n_predictions)
    if preds:
        table = Table("split", "question", "prediction", "gold", "EM", "F1", title="predictions")
        for p in preds:
            table.add_row(p["split"], p["question"], p["prediction"], ", ".join(json.loads(p["golds"])),
                          f"{p['em']:.0f}", f"{p['f1']:.2f}")
        console.print(table)


def print_sources(metrics: dict[str, dict[str, float]]) -> None:
    """Where each split's EM comes from, and the generator's retention, where the run measured them."""
    table = Table("split", "n", "gold in top-k", "EM there", "gold missed", "EM there", "grounded %", "closed-book EM",
                  "oracle EM", title="where the score comes from (EM %, 95% CI)")
    for split, m in metrics.items():
        if "n_gold_retrieved" in m or "grounded" in m or "closed_book_em" in m:
            table.add_row(split, fmt(m.get("n"), integer=True), fmt(m.get("n_gold_retrieved"), integer=True),
                          with_ci(m, "em_gold_retrieved"), fmt(m.get("n_gold_missed"), integer=True),
                          with_ci(m, "em_gold_missed"), fmt(m.get("grounded")), with_ci(m, "closed_book_em"),
                          with_ci(m, "oracle_em"))
    if table.rows:
        console.print(table)
    r = metrics.get("retention", {})
    if r:
        console.print(f"retention (generator before → after fit, {fmt(r.get('n_passages'), integer=True)} held-out "
                      f"passages, {fmt(r.get('n_questions'), integer=True)} questions): perplexity "
                      f"{fmt(r.get('perplexity_before'))} → {fmt(r.get('perplexity_after'))} "
                      f"({signed(r.get('perplexity_change'))}%), closed-book EM {fmt(r.get('em_before'))} → "
                      f"{fmt(r.get('em_after'))} ({signed(r.get('em_change'))} points, 95% CI "
                      f"{fmt(r.get('em_change_low'))} to {fmt(r.get('em_change_high'))})")


def print_lm_eval(metrics: dict[str, dict[str, float]]) -> None:
    """`harness lm-eval`'s standard-task scores of the base generator and the tuned one, where measured."""
    scores = metrics.get("lm_eval", {})
    pairs = sorted(name[: -len("_base")] for name in scores if name.endswith("_base"))
    if not pairs:
        return
    table = Table("task/metric", "base", "tuned", "change", title="lm-evaluation-harness (harness lm-eval)")
    for name in pairs:
        base, tuned = scores.get(f"{name}_base"), scores.get(f"{name}_tuned")
        change = signed(tuned - base) if base is not None and tuned is not None else "–"
        table.add_row(name, f"{base:.4g}" if base is not None else "–", f"{tuned:.4g}" if tuned is not None else "–",
                      change)
    console.print(table)


def with_ci(m: dict, name: str) -> str:
    if m.get(name) is None:
        return "–"
    return f"{fmt(m[name])} [{fmt(m.get(f'{name}_low'))}, {fmt(m.get(f'{name}_high'))}]"


def signed(value) -> str:
    return "–" if value is None or value != value else f"{value:+.1f}"


def print_gain(store, run: dict, metrics: dict, baseline: str | None) -> None:
    """The test EM gain over a baseline run on the same test questions, as retrieval + reading."""
    from harness.evaluation import decompose

    base = store.find_run(baseline) if baseline else store.baseline_run(run["id"], "no_ft")
    if base is None or base["id"] == run["id"]:
        return
    split = "test" if "test" in metrics else next(iter(store.evaluation_sets([run["id"]]).get(run["id"], {})), None)
    if split is None or not store.same_questions(run["id"], base["id"], split):
        if baseline:
            raise UserError(f"run {base['id']} was not scored on the same {split or 'test'} questions as {run['id']} "
                            "(another evaluation set): their EM does not compare")
        return
    mine, theirs = metrics.get(split, {}), store.run_metrics(base["id"]).get(split, {})
    parts = decompose(mine, theirs)
    if parts is None:
        gain = mine.get("em", math.nan) - theirs.get("em", math.nan)
        console.print(f"vs {base['strategy']} run {base['id']} on the same {split} questions: EM {signed(gain)} "
                      "(no context labels: not split into retrieval and reading)")
        return
    console.print(f"vs {base['strategy']} run {base['id']} on the same {split} questions: EM {signed(parts['total'])} "
                  f"= retrieval {signed(parts['retrieval'])} + reading {signed(parts['reading'])} points")


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


STATUSES = ("finished", "failed", "interrupted", "running")


@click.command(name="runs")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="only runs with this status")
@click.pass_context
def runs_command(ctx: click.Context, status: str | None) -> None:
    """Every run (any status) with its error, oldest first; lost runs read `interrupted`.

    A run stored as `running` whose process is gone (same host and a dead pid, or a stale heartbeat) is
    shown as `interrupted`, with why, so a killed run never reads `running` forever.

    \b
    Examples:
      harness runs
      harness runs --status failed
    """
    store = open_store(ctx)
    rows = store.runs(status)
    if not rows:
        console.print(f"no {status + ' ' if status else ''}runs in {store.path}")
        return
    table = Table("run", "status", "strategy", "dataset", "embedder", "generator", "seed", "started", "error",
                  title=f"{len(rows)} {status + ' ' if status else ''}run(s) · {store.path}")
    for r in rows:
        table.add_row(r["id"], r["status"], r["strategy"], r["dataset"], r["embedder"], r["generator"],
                      str(r["seed"]), str(r["started_at"])[:19], r["error"] or "")
    console.print(table)


@click.command(name="import")
@click.argument("folders", nargs=-1, required=True, type=click.Path())
@click.pass_context
def import_command(ctx: click.Context, folders: tuple[str, ...]) -> None:
    """Ingest finished run folders (or directories of them) into the store; twice changes nothing.

    A FOLDER is a run folder, or a directory of run folders (e.g. another machine's `harness-runs/`). Named
    run folders must be finished; inside a directory, unfinished ones (still working, or killed) are skipped
    and counted. A corrupt folder (a file that does not match its sha256, a truncated file), one that does not
    follow the run folder format (docs/architecture.md §7), one larger than the import limits, or a run of a
    strategy no installed plugin provides, is one line naming the folder, the file and the problem, and
    nothing is imported.

    \b
    Examples:
      harness import harness-runs/3f2a9c0d1e2b
      harness import /shared/alice/harness-runs     # merge another person's runs into this leaderboard
    """
    runs, skipped = collect_finished(list(folders))
    check_strategies_installed(runs)
    store = open_store(ctx)
    imported, present = store.import_runs(runs)
    by_status: dict[str, int] = {}
    for run in runs:
        if run.meta["run_id"] in imported:
            by_status[run.status] = by_status.get(run.status, 0) + 1
    detail = ", ".join(f"{n} {status}" for status, n in sorted(by_status.items()))
    click.echo(f"imported {len(imported)} run(s) into {store.path}" + (f" ({detail})" if detail else "")
               + f"; {len(present)} already stored"
               + (f"; {skipped} unfinished folder(s) skipped" if skipped else ""))


def check_strategies_installed(runs) -> None:
    """Import refuses a run whose strategy no installed plugin provides: it could not be re-run, evaluated
    or compared like the others (it would rank on the leaderboard as if it were one of them)."""
    from harness import plugins

    known = plugins.strategies().items
    for run in runs:
        name = run.config["strategy"]
        if name not in known:
            raise UserError(f"run folder {run.folder}: config.json: strategy '{name[:60]}' is not provided by any "
                            "installed plugin; install its plugin (or give --plugins-dir DIR) and import again")
