"""`harness study report`: the reproduced table beside the published one, and the paper's claims checked.

Per cell (strategy × dataset × pipeline): the grid's selected cell (final stage, best mean dev EM, ties dev F1,
as `harness grid` selects), reported on the protocol's report split: the mean over seeds, and a 95% interval
over questions (a percentile bootstrap of the seed-averaged per-question score); with several seeds the
seeds' spread is added in quadrature (half-width² = bootstrap half-width² + (1.96·sd/√seeds)²). A row per
strategy and dataset averages the pipelines (as Lawton's Table 3 does; half-widths combine as independent).
Verdict: `within` (the published value lies in our interval), `below` / `above` (our interval lies below /
above it), `not run`, or `no published value`; hours (other hardware) are shown, `not compared`.

Claims (harness/study/spec.py `Claim`) are checked on the pipeline-averaged rows: `holds`, `fails`, `within
noise` (the difference is inside the combined interval), or `not run`, each with its evidence.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from harness.grid.plan import Cell, mean_metrics, select_best
from harness.metrics import bootstrap_interval
from harness.store.db import Store
from harness.strategy import lr_stages
from harness.study.spec import ANY_PIPELINE, METRICS, Study, StudyCell, grid_id_of, study_cells

COLUMN = {"em": "em", "f1": "f1", "recall@5": "hit"}  # metric -> the per-question column of `predictions`
Z95 = 1.96


@dataclass
class Value:
    mean: float
    low: float
    high: float
    seeds: int

    @property
    def half(self) -> float:
        return (self.high - self.low) / 2


@dataclass
class CellResult:
    cell_key: str
    strategy: str
    label: str
    dataset: str
    pipeline: str
    run_ids: list[str] = field(default_factory=list)
    values: dict[str, Value] = field(default_factory=dict)  # metric -> ours; "hours" -> fit hours
    lrs: dict[str, float | None] = field(default_factory=dict)
    runs_stored: int = 0


def study_report(study: Study, store: Store, only: dict[str, str] | None = None) -> dict:
    """Everything the report prints, as data (the CLI's md/csv/json and the dashboard's Studies page)."""
    study_id = study.study_id()
    runs = store.runs_of_study(study_id)
    by_grid: dict[str, list[dict]] = {}
    for run in runs:
        by_grid.setdefault(run["grid_id"], []).append(run)
    cells = [cell_result(study, study_id, cell, by_grid, store) for cell in study_cells(study, only)]
    rows = [row for c in cells for row in cell_rows(study, c)] + mean_rows(study, cells)
    return {"study": study.name, "study_id": study_id, "title": study.title, "citation": study.citation,
            "scale": study.scale, "scale_note": study.scale_note, "report_split": study.protocol.report_split,
            "setting": study.setting, "metric_notes": study.metric_notes, "rows": rows,
            "claims": [check_claim(study, claim, cells) for claim in study.claims],
            "runs": len(runs), "finished": sum(r["status"] == "finished" for r in runs)}


def cell_result(study: Study, study_id: str, cell: StudyCell, by_grid: dict, store: Store) -> CellResult:
    out = CellResult(cell.key, cell.strategy.strategy, cell.strategy.title, cell.dataset.name, cell.pipeline.name)
    runs = [r for r in by_grid.get(grid_id_of(study_id, cell), []) if r["status"] == "finished"]
    out.runs_stored = len(runs)
    best = selected_cell(cell, runs, store, study.searched_seeds)
    if best is None:
        return out
    out.run_ids, out.lrs = best.run_ids, best.lrs
    split = study.protocol.report_split
    metrics = [store.run_metrics(rid) for rid in best.run_ids]
    per_question = {m: store.question_scores(best.run_ids, split, COLUMN[m]) for m in METRICS}
    for metric in METRICS:
        seeds = [m[split][metric] for m in metrics if metric in m.get(split, {})]
        if seeds:
            out.values[metric] = interval(seeds, per_question[metric])
    hours = [m.get("cost", {}).get("fit_seconds") for m in metrics]
    hours = [h / 3600 for h in hours if h is not None]
    if hours:
        out.values["hours"] = Value(float(np.mean(hours)), min(hours), max(hours), len(hours))
    return out


def selected_cell(cell: StudyCell, runs: list[dict], store: Store, search_seeds: tuple[int, ...]) -> Cell | None:
    """The grid's answer from its stored runs: runs grouped by rates and options into grid cells (one run per
    seed), earlier-stage cells (e.g. two_phase phases=1) left out, the best mean dev EM (ties: F1) over the
    `search_seeds` (Study.searched_seeds), as the grid chose; the cell returned holds the runs of every seed."""
    from harness import plugins

    earlier = [opts for _, opts in lr_stages(plugins.strategies().get(cell.strategy.strategy))[:-1] if opts]
    groups: dict[str, list[dict]] = {}
    for run in runs:
        config = json.loads(run["config"]) if isinstance(run["config"], str) else run["config"]
        options = {k: str(v) for k, v in config.get("strategy_options", {}).items()}
        if any(all(options.get(k) == str(v) for k, v in opts.items()) for opts in earlier):
            continue
        key = json.dumps([config.get("embed_lr"), config.get("gen_lr"), options], sort_keys=True)
        groups.setdefault(key, []).append({**run, "lrs": {n: config.get(n) for n in ("embed_lr", "gen_lr")}})
    cells = []
    for group in groups.values():
        newest = {}
        for run in group:  # one run per seed: the newest
            newest[run["seed"]] = run
        ids = [r["id"] for r in newest.values()]
        searched = [r["id"] for seed, r in newest.items() if seed in search_seeds]
        if searched:
            cells.append(Cell(0, group[0]["lrs"], searched[0], "finished",
                              mean_metrics([store.run_metrics(i) for i in searched]), run_ids=ids))
    return select_best(cells)


def interval(seed_values: list[float], per_question: list[dict]) -> Value:
    """Mean over seeds; 95% interval over questions (bootstrap of the seed-averaged score) and seeds."""
    mean = float(np.mean(seed_values))
    by_question: dict[str, list[float]] = {}
    for row in per_question:
        by_question.setdefault(row["example_id"], []).append(row["v"])
    low = high = mean
    if by_question:
        low, high = bootstrap_interval([float(np.mean(v)) for v in by_question.values()])
    if len(seed_values) > 1:
        spread = Z95 * float(np.std(seed_values, ddof=1)) / math.sqrt(len(seed_values))
        low = mean - math.hypot(mean - low, spread)
        high = mean + math.hypot(high - mean, spread)
    return Value(mean, *within_scale(min(low, mean), max(high, mean)), len(seed_values))


def within_scale(low: float, high: float) -> tuple[float, float]:
    """EM, F1 and recall are percentages: an interval widened by the seeds' spread stops at 0 and 100."""
    return max(low, 0.0), min(high, 100.0)


def verdict(ours: Value | None, published: float | None, metric: str = "em") -> str:
    if ours is None:
        return "not run"
    if metric == "hours":
        return "not compared"  # other hardware: plan's GPU-hours set the paper's hours beside a FLOPs estimate
    if published is None:
        return "no published value"
    if ours.low <= published <= ours.high:
        return "within"
    return "below" if ours.high < published else "above"


def _row(study: Study, strategy: str, label: str, dataset: str, pipeline: str, metric: str, ours: Value | None,
         run_ids: list[str], lrs: dict | None = None) -> dict:
    pub = study.published_value(strategy, dataset, pipeline, metric)
    if pub is None and pipeline != ANY_PIPELINE and len(study.pipelines) == 1:
        pub = study.published_value(strategy, dataset, ANY_PIPELINE, metric)  # one pipeline: the paper's mean
    published = pub.value if pub else None
    return {"strategy": strategy, "label": label, "dataset": dataset, "pipeline": pipeline, "metric": metric,
            "ours": ours.mean if ours else None, "low": ours.low if ours else None,
            "high": ours.high if ours else None, "seeds": ours.seeds if ours else 0, "published": published,
            "source": pub.source if pub else "",
            "difference": (ours.mean - published) if ours and published is not None else None,
            "verdict": verdict(ours, published, metric), "runs": " ".join(run_ids),
            "embed_lr": (lrs or {}).get("embed_lr"), "gen_lr": (lrs or {}).get("gen_lr")}


def cell_rows(study: Study, c: CellResult) -> list[dict]:
    metrics = list(METRICS) + (["hours"] if any(p.metric == "hours" for p in study.published) else [])
    return [_row(study, c.strategy, c.label, c.dataset, c.pipeline, m, c.values.get(m), c.run_ids, c.lrs)
            for m in metrics]


def averaged(cells: list[CellResult], metric: str) -> Value | None:
    values = [c.values.get(metric) for c in cells]
    if not values or any(v is None for v in values):
        return None
    if len(values) == 1:
        return values[0]
    mean = float(np.mean([v.mean for v in values]))
    half = math.sqrt(sum(v.half ** 2 for v in values)) / len(values)
    low, high = (mean - half, mean + half) if metric == "hours" else within_scale(mean - half, mean + half)
    return Value(mean, low, high, min(v.seeds for v in values))


def pipeline_means(study: Study, cells: list[CellResult]) -> dict[tuple[str, str], dict[str, Value | None]]:
    """(strategy, dataset) -> metric -> our value averaged over the study's pipelines (None unless all ran)."""
    out = {}
    for strategy in study.strategies:
        for dataset in study.datasets:
            group = [c for c in cells if c.strategy == strategy.strategy and c.dataset == dataset.name]
            if group:
                out[(strategy.strategy, dataset.name)] = {m: averaged(group, m) for m in (*METRICS, "hours")}
    return out


def mean_rows(study: Study, cells: list[CellResult]) -> list[dict]:
    if len(study.pipelines) < 2:
        return []
    rows = []
    for (strategy, dataset), values in pipeline_means(study, cells).items():
        label = study.strategy(strategy).title
        ids = [i for c in cells if c.strategy == strategy and c.dataset == dataset for i in c.run_ids]
        metrics = list(METRICS) + (["hours"] if any(p.metric == "hours" for p in study.published) else [])
        rows += [_row(study, strategy, label, dataset, ANY_PIPELINE, m, values.get(m), ids) for m in metrics]
    return rows


# -- claims ----------------------------------------------------------------------------------------
def check_claim(study: Study, claim, cells: list[CellResult]) -> dict:
    means = pipeline_means(study, cells)
    datasets = [claim.dataset] if claim.dataset else list(dict.fromkeys(c.dataset for c in cells))
    per_dataset = [check_on(claim, means, d, study) for d in datasets]
    verdicts = {v for v, _ in per_dataset}
    overall = ("not run" if verdicts == {"not run"} else "fails" if "fails" in verdicts
               else "holds" if verdicts == {"holds"} else "within noise" if "not run" not in verdicts else "partly run")
    return {"claim": claim.text, "kind": claim.kind, "metric": claim.metric, "verdict": overall,
            "evidence": "; ".join(f"{d}: {v} ({e})" for d, (v, e) in zip(datasets, per_dataset))}


def check_on(claim, means: dict, dataset: str, study: Study) -> tuple[str, str]:
    metric = "hours" if claim.kind == "cheaper" else claim.metric
    value = {s.strategy: (means.get((s.strategy, dataset)) or {}).get(metric) for s in study.strategies}
    label = {s.strategy: s.title for s in study.strategies}
    named = [s for s in claim.strategies if s in value]
    if len(named) < len(claim.strategies) or any(value[s] is None for s in named):
        return "not run", "missing: " + ", ".join(label.get(s, s) for s in claim.strategies if value.get(s) is None)
    show = lambda s: f"{label[s]} {value[s].mean:.1f} [{value[s].low:.1f}, {value[s].high:.1f}]"  # noqa: E731
    if claim.kind == "best":
        ran = {s: v for s, v in value.items() if v is not None}
        top = max(ran, key=lambda s: ran[s].mean)
        x = claim.strategies[0]
        if top == x:
            return "holds", f"{show(x)} is the highest of {len(ran)}"
        gap = math.sqrt(ran[top].half ** 2 + ran[x].half ** 2)
        return ("within noise" if ran[top].mean - ran[x].mean <= gap else "fails"), f"{show(top)} > {show(x)}"
    a = claim.strategies[0]
    if claim.kind == "beats":
        return _difference(value[a], value[claim.strategies[1]]), f"{show(a)} vs {show(claim.strategies[1])}"
    if claim.kind == "matches":
        outside = [s for s in claim.strategies[1:]
                   if abs(value[s].mean - value[a].mean) > math.sqrt(value[s].half ** 2 + value[a].half ** 2)]
        evidence = ", ".join(show(s) for s in claim.strategies)
        return ("fails" if outside else "holds"), evidence + (f"; outside: {', '.join(label[s] for s in outside)}"
                                                              if outside else "")
    if claim.kind == "cheaper":
        b = claim.strategies[1]
        hours = lambda s: f"{label[s]} {value[s].mean * 3600:.0f} s"  # noqa: E731
        return ("holds" if value[a].mean < value[b].mean else "fails"), f"fit time {hours(a)} vs {hours(b)}"
    return "not run", f"unknown claim kind '{claim.kind}'"


def _difference(a, b) -> str:
    gap = math.sqrt(a.half ** 2 + b.half ** 2)
    diff = a.mean - b.mean
    if diff > gap:
        return "holds"
    if diff < -gap:
        return "fails"
    return "within noise"
