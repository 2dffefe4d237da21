"""The README's "where the score comes from" table on `synthbio`: per configuration, test EM with the gold
passage retrieved / missed, closed-book and oracle EM, grounding, the gain over `no_ft` split into retrieval
and reading, and the generator's retention, each with its 95% interval (harness/evaluation.py).

Made from stored runs of (seeds as time allows):

    run="--dataset synthbio --limit 50 --eval-splits test --eval-modes closed_book,oracle,retention"
    harness run --plugin no_ft $run
    for seed in 0 1 2; do
      harness run --plugin ft_gen $run --seed $seed
      harness run --plugin indp --embed-lr 1e-4 --set reindex=true $run --seed $seed
      harness run --plugin ft_embed --embed-lr 1e-4 --set reindex=true $run --seed $seed
    done
    python bench/synthbio_sources.py --db harness.duckdb

Each value is the mean over a configuration's seeds; the interval is the run's own bootstrap over the test
questions for one seed, and the spread of the seeds' values (min–max) otherwise. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics

from harness.evaluation import decompose
from harness.store.db import Store

ROWS = (  # (column, split, metric)
    ("test EM", "test", "em"),
    ("gold retrieved: EM", "test", "em_gold_retrieved"),
    ("gold missed: EM", "test", "em_gold_missed"),
    ("closed-book EM", "test", "closed_book_em"),
    ("oracle EM", "test", "oracle_em"),
    ("grounded %", "test", "grounded"),
    ("retention: closed-book EM Δ", "retention", "em_change"),
    ("retention: perplexity Δ%", "retention", "perplexity_change"),
)


def configuration(config: dict) -> str:
    options = " ".join(f"--set {k}={str(v).lower()}" for k, v in sorted((config.get("strategy_options") or {}).items()))
    rates = ", ".join(f"{k} {config[k]:g}" for k in ("embed_lr", "gen_lr") if config.get(k))
    return f"`{config['strategy']}` {options} ({rates or 'no lr'})".replace("  ", " ")


def cell(values: list[dict], split: str, name: str) -> str:
    present = [m[split][name] for m in values if name in m.get(split, {})]
    if not present:
        return "–"
    mean = statistics.fmean(present)
    if len(present) == 1:
        low, high = values[0][split].get(f"{name}_low"), values[0][split].get(f"{name}_high")
    else:
        low, high = min(present), max(present)
    return f"{mean:.1f}" + (f" ({low:.1f}–{high:.1f})" if low is not None and high is not None else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="harness.duckdb")
    args = parser.parse_args()
    store = Store(args.db)
    groups: dict[str, list[dict]] = {}
    for run in store.finished_runs():
        config = json.loads(run["config"]) if isinstance(run["config"], str) else run["config"]
        metrics = store.run_metrics(run["id"])
        if config["dataset"].startswith("synthbio") and "test" in metrics:
            groups.setdefault(configuration(config), []).append(metrics)
    base = next((v[0]["test"] for k, v in groups.items() if k.startswith("`no_ft`")), None)
    header = ["configuration", "seeds", *(name for name, _, _ in ROWS), "gain over no_ft: retrieval + reading"]
    print("| " + " | ".join(header) + " |")
    print("| " + " | ".join("---" for _ in header) + " |")
    for name, values in groups.items():
        gains = [decompose(m["test"], base) for m in values] if base else []
        gains = [g for g in gains if g]
        gain = (f"{statistics.fmean(g['retrieval'] for g in gains):+.1f} + "
                f"{statistics.fmean(g['reading'] for g in gains):+.1f}") if gains and not name.startswith("`no_ft`") else "–"
        print("| " + " | ".join([name, str(len(values)), *(cell(values, split, metric) for _, split, metric in ROWS),
                                 gain]) + " |")


if __name__ == "__main__":
    main()
