"""The README's table of every strategy on `synthbio`: one row per configuration, the mean over its seeds.

Made from stored runs (one store or several; runs of other datasets or limits are ignored), e.g. those of

    run="--dataset synthbio --limit 50 --eval-splits test"
    harness run --plugin no_ft $run       # no randomness: one seed is every seed
    for seed in 0 1 2; do
      for s in ft_gen ft_embed rag_token rag_sequence two_phase jsa_rag vrag rag_end2end; do
        harness run --plugin $s $run --seed $seed
      done
      harness run --plugin ft_embed --embed-lr 1e-4 --set reindex=true $run --seed $seed
      harness run --plugin indp --embed-lr 1e-4 --set reindex=true $run --seed $seed
    done
    python bench/synthbio_table.py --db harness.duckdb [--db other.duckdb ...] [--limit 50]

The README's two retriever-training tables (issue: retriever training at 21M passages), one thread per run:

    run="--dataset synthbio --limit 30 --eval-splits test"
    # wider candidate sets: p(z|x) and the retriever's gradient over the top L, embed_lr 1e-4
    harness run --plugin no_ft $run
    for seed in 0 1 2; do for L in 5 20 50; do for s in rag_token jsa_rag; do
      harness run --plugin $s --embed-lr 1e-4 --set retriever_candidates=$L $run --seed $seed
    done; done; done
    python bench/synthbio_table.py --db harness.duckdb --limit 30 --recall-ci
    # refresh policies at equal training FLOPs: the budget is what refresh=none spends on seed 0
    # (rag_end2end 1.793e13, jsa_rag with train_passages 1.286e13 at this size)
    for seed in 0 1 2; do for p in none background "rerank --set rerank_candidates=20"; do
      harness run --plugin rag_end2end --set refresh=$p --max-train-flops 1.793e13 $run --seed $seed
      harness run --plugin jsa_rag --set train_passages=true --set refresh=$p --max-train-flops 1.286e13 $run --seed $seed
    done; done
    python bench/synthbio_table.py --db harness.duckdb --limit 30 --budgets --recall-ci

Each row goes through the leaderboard's own arithmetic (`harness.leaderboard.ranking` on that
configuration's runs alone; runs cut by `--max-train-flops` are left to the dashboard's equal-compute
page): test EM as the mean over seeds with its 95% interval (bootstrap over test
questions, seeds averaged per question), F1, recall@5, answer_recall@5, recall@1 (gold ranked first, from the stored
retrieved ids), fit seconds, training FLOPs.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics

from harness.metrics import bootstrap_interval
from harness.results.leaderboard import grid_cell, ranking
from harness.store.db import Store

COLUMNS = ("em", "f1", "recall@5", "answer_recall@5")


def variant(config: dict) -> str:
    """How a configuration differs from its strategy's defaults, in the words a user types."""
    parts = [f"--set {k}={str(v).lower()}" for k, v in sorted((config.get("strategy_options") or {}).items())]
    return " ".join(parts)


def load_runs(paths: list[str], dataset: str, limit: int | None, budgets: bool = False) -> list[tuple[Store, dict]]:
    """The finished runs of `dataset` at `limit`: those without --max-train-flops (budget runs are the
    equal-compute page's), or with `budgets` only those with it (the refresh policies compare at one budget)."""
    runs = []
    for path in paths:
        store = Store(path)
        for run in store.finished_runs():
            config = json.loads(run["config"]) if isinstance(run["config"], str) else run["config"]
            full_budget = config.get("max_train_flops") is None
            if config.get("dataset") == dataset and config.get("limit") == limit and full_budget != budgets:
                runs.append((store, run))
    return runs


def recall_interval(store_runs: list[tuple[Store, dict]]) -> tuple[float, float]:
    """95% bootstrap interval of recall@5 over test questions, each question's hit averaged over the seeds."""
    hits: dict[str, list[float]] = {}
    for store, run in store_runs:
        for row in store.question_scores([run["id"]], "test", "hit"):
            hits.setdefault(row["example_id"], []).append(row["v"])
    return bootstrap_interval([statistics.mean(v) for v in hits.values()]) if hits else (math.nan, math.nan)


def recall_at_1(store: Store, run_id: str) -> float:
    """Share (%) of test questions whose gold passage is ranked first, from the stored retrieved ids: what a
    strategy that only reorders the top k (the joint losses marginalise over the retrieved k) can change
    while recall@5 stays put."""
    rows = [p for p in store.run_predictions(run_id) if p["split"] == "test"]
    first = [json.loads(p["retrieved_ids"])[:1] for p in rows]
    return 100 * statistics.mean(bool(set(f) & set(json.loads(p["gold_passage_ids"]))) for f, p in zip(first, rows))


def table_rows(runs: list[tuple[Store, dict]]) -> list[dict]:
    cells: dict[str, list[tuple[Store, dict]]] = {}
    for store, run in runs:
        cells.setdefault(grid_cell(run), []).append((store, run))
    rows = []
    for cell in cells.values():
        scores = {}
        for store, run in cell:
            scores.update(store.example_scores([run["id"]], "test"))
        [row] = ranking([run for _, run in cell], scores)
        config = json.loads(cell[0][1]["config"])
        flops = [run.get("cost/train_flops") for _, run in cell]
        row["variant"] = variant(config)
        row["lrs"] = ", ".join(f"{k} {config[k]:g}" for k in ("embed_lr", "gen_lr") if config.get(k) is not None)
        row["train_flops"] = statistics.mean(f for f in flops if f is not None) if any(f is not None for f in flops) else 0
        row["em_std"] = statistics.stdev(run["test/em"] for _, run in cell) if len(cell) > 1 else float("nan")
        row["recall@1"] = statistics.mean(recall_at_1(store, run["id"]) for store, run in cell)
        row["recall_low"], row["recall_high"] = recall_interval(cell)
        rows.append(row)
    return sorted(rows, key=lambda r: -r["em"])


def markdown(rows: list[dict], recall_intervals: bool = False) -> str:
    lines = ["| strategy | options | seeds | test EM (95% CI) | ± std | F1 | recall@1 | recall@5 | answer_recall@5 "
             "| fit s | training FLOPs |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    recall = "{:.1f} ({:.1f}–{:.1f})" if recall_intervals else "{:.1f}"
    for r in rows:
        std = "–" if math.isnan(r["em_std"]) else f"{r['em_std']:.1f}"  # one seed: no spread
        lines.append(f"| `{r['strategy']}` | {r['variant'] or 'defaults'} ({r['lrs'] or 'no lr'}) | {r['seeds']} | "
                     f"{r['em']:.1f} ({r['em_low']:.1f}–{r['em_high']:.1f}) | {std} | {r['f1']:.1f} | "
                     f"{r['recall@1']:.1f} | "
                     f"{recall.format(r['recall@5'], r['recall_low'], r['recall_high'])} | {r['answer_recall@5']:.1f} | "
                     f"{r['fit_seconds']:.0f} | {r['train_flops']:.2g} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", action="append", required=True, help="a store (repeatable)")
    parser.add_argument("--dataset", default="synthbio")
    parser.add_argument("--limit", type=int, default=50, help="the runs' --limit (0: none)")
    parser.add_argument("--budgets", action="store_true", help="only runs given --max-train-flops (equal-FLOPs comparisons)")
    parser.add_argument("--recall-ci", action="store_true", help="recall@5 with its 95%% interval over questions")
    args = parser.parse_args()
    rows = table_rows(load_runs(args.db, args.dataset, args.limit or None, args.budgets))
    print(markdown(rows, args.recall_ci))


if __name__ == "__main__":
    main()
