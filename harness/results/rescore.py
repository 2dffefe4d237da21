"""Rescore stored runs' answer_recall@k with the current matcher (the data half of migration m002).

Runs stored before m002 were scored by a normalized substring match; m002 marks them `substring_v0`.
A run is rescored from its stored predictions: each prediction's retrieved passage ids are looked up in
the run's corpus (the dataset plugin loads it again, offline or from `data_dir`) and `answer_hit` is
computed anew. A run whose dataset cannot be loaded, or whose retrieved ids are not all in the corpus,
keeps its old numbers and its `substring_v0` mark: the leaderboard never mixes the two silently.

    harness migrate --recompute-answer-recall
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from harness.errors import raise_pending_interrupt
from harness.metrics import answer_hit
from harness.runner.assemble import load_dataset, resolve
from harness.store.db import Store
from harness.store.migrations import ANSWER_MATCH, OLD_ANSWER_MATCH
from harness.types import Corpus


@dataclass
class RescoreReport:
    rescored: list[str] = field(default_factory=list)
    kept_old: list[tuple[str, str]] = field(default_factory=list)  # (run id, why)


def rescore_run(store: Store, run_id: str, corpus: Corpus, k: int) -> str | None:
    """Recompute one run's answer hits and answer_recall@k per split. Returns why not, or None when done."""
    hits, per_split = [], {}
    for p in store.run_predictions(run_id):
        rows = [corpus.row_of(pid) for pid in json.loads(p["retrieved_ids"])]
        if any(row is None for row in rows):
            return f"retrieved passage ids of example {p['example_id']} are not in the corpus"
        value = answer_hit([corpus[row].text for row in rows], json.loads(p["golds"]), k)
        hits.append((p["split"], p["example_id"], value))
        per_split.setdefault(p["split"], []).append(value)
    metrics = [(split, f"answer_recall@{k}", 100 * float(np.mean(v))) for split, v in per_split.items()]
    store.replace_answer_hits(run_id, hits, metrics, ANSWER_MATCH)
    return None


def corpus_of_config(config: dict) -> Corpus:
    """The corpus a stored run retrieved from: its dataset loaded as the run loaded it."""
    from harness.config import RunConfig
    cfg = RunConfig(**config)
    return load_dataset(cfg, resolve(cfg)).corpus


def rescore_old_runs(store: Store, load_corpus: Callable[[dict], Corpus]) -> RescoreReport:
    """Rescore every finished run marked with the old definition; `load_corpus(config)` gives a run's corpus
    (cached by the caller) or raises with the reason it cannot."""
    report = RescoreReport()
    for run in store.runs_with_answer_match(OLD_ANSWER_MATCH):
        config = json.loads(run["config"]) if isinstance(run["config"], str) else run["config"]
        try:
            corpus = load_corpus(config)
        except Exception as exc:  # a dataset that no longer loads leaves the run marked, never half-done
            raise_pending_interrupt(exc)
            report.kept_old.append((run["id"], f"its corpus cannot be loaded ({exc})"))
            continue
        why = rescore_run(store, run["id"], corpus, int(config.get("k", 5)))
        if why:
            report.kept_old.append((run["id"], why))
        else:
            report.rescored.append(run["id"])
    return report
