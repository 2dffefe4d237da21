"""What a study is: data. Axes (strategies, datasets, pipelines, grids, seeds, budgets), a protocol, the
published results and the paper's claims, and the scales it can be run at (`full`, `smoke`, `reduced`, ...).

A built-in study is a plugin (`register_studies`, plugins/studies/); a user's is a TOML file
(harness/study/file.py, examples/studies/). The key names are RunConfig's, as in run and grid files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from harness.errors import UserError
from harness.grid.plan import searched_seeds

METRICS = ("em", "f1", "recall@5")
ANY_PIPELINE = "*"  # a published value averaged over the study's pipelines (Lawton's Table 3)


@dataclass(frozen=True)
class Pipeline:
    name: str  # the label the paper uses ("MiniLM + LLaMA3-8b")
    embedder: str  # a registered embedder (`harness list embedders`)
    generator: str
    embedder_params: float = 0.0  # matmul parameters N, for the FLOPs estimate (harness/training/flops.py)
    generator_params: float = 0.0


@dataclass(frozen=True)
class DatasetAxis:
    name: str  # the label of the published rows ("hotpotqa")
    dataset: str  # the dataset plugin that runs (at smoke scale e.g. synthbio in place of the hub's)
    data_dir: str | None = None
    train_questions: int = 0  # data sizes for the FLOPs estimate
    corpus_passages: int = 0
    get: str = ""  # the command that makes the data present locally


@dataclass(frozen=True)
class StrategyAxis:
    strategy: str  # the plugin
    label: str = ""  # the paper's name ("2-Phase")
    options: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[float]] = field(default_factory=dict)  # rate -> values searched (staged per lr_stages)
    lrs_from: dict[str, str] = field(default_factory=dict)  # rate -> strategy whose selected rate is reused

    @property
    def title(self) -> str:
        return self.label or self.strategy


@dataclass(frozen=True)
class Protocol:
    select_split: str = "dev"  # where a grid's winner is chosen
    report_split: str = "test"  # what the report compares with the paper
    config: dict[str, Any] = field(default_factory=dict)  # RunConfig keys every run takes (k, epochs, index, limit...)


@dataclass(frozen=True)
class Published:
    strategy: str
    dataset: str
    pipeline: str  # a Pipeline.name, or ANY_PIPELINE for a mean over the pipelines
    metric: str  # em | f1 | recall@5 | hours
    value: float
    source: str  # "Table 3", "Figure 6"


@dataclass(frozen=True)
class Claim:
    """A checkable statement: kind `best` (strategies[0] has the highest metric on dataset), `beats`
    (strategies[0] > strategies[1]), `matches` (every strategy within the noise of strategies[0]),
    `cheaper` (strategies[0] fits in less time than strategies[1])."""

    text: str
    kind: str
    strategies: tuple[str, ...]
    metric: str = "em"
    dataset: str | None = None  # None: every dataset of the study


@dataclass(frozen=True)
class Scale:
    """How a study maps onto smaller hardware: the fields given replace the study's."""

    note: str  # said in the report's header
    pipelines: tuple[Pipeline, ...] | None = None
    datasets: tuple[DatasetAxis, ...] | None = None  # same labels, other data
    lr_values: tuple[float, ...] | None = None  # every searched rate gets these values
    seeds: tuple[int, ...] | None = None
    search_seeds: tuple[int, ...] | None = None  # the seeds the grids search on (the winner then runs on all)
    config: dict[str, Any] = field(default_factory=dict)  # extra RunConfig keys (limit, max_new_tokens, ...)


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    citation: str
    strategies: tuple[StrategyAxis, ...]
    datasets: tuple[DatasetAxis, ...]
    pipelines: tuple[Pipeline, ...]
    protocol: Protocol = Protocol()
    seeds: tuple[int, ...] = (0,)
    search_seeds: tuple[int, ...] = ()  # grids search on these seeds, the selected cell runs on every seed; (): all
    budgets: tuple[float, ...] = ()  # training-FLOP budgets (each cell runs once per budget); empty: none
    published: tuple[Published, ...] = ()
    metric_notes: dict[str, str] = field(default_factory=dict)  # metric -> how the paper's differs from ours
    claims: tuple[Claim, ...] = ()
    setting: str = ""  # the paper's hardware and setting, for the hours
    paper_gpus: int = 1  # GPUs behind the paper's hours (Lawton: a node of 8 A10)
    paper_device: str = ""
    scales: dict[str, Scale] = field(default_factory=dict)
    scale: str = "full"  # which scale this object is at

    def at_scale(self, scale: str) -> "Study":
        """This study mapped onto `scale` ('full' is the paper's)."""
        if scale == "full":
            return self
        if scale not in self.scales:
            raise UserError(f"study '{self.name}' has no scale '{scale}'; it has: full, {', '.join(self.scales)}")
        s = self.scales[scale]
        strategies = self.strategies
        if s.lr_values is not None:
            strategies = tuple(dataclasses.replace(a, grid={n: list(s.lr_values) for n in a.grid}) for a in strategies)
        protocol = dataclasses.replace(self.protocol, config={**self.protocol.config, **s.config})
        return dataclasses.replace(self, strategies=strategies, pipelines=s.pipelines or self.pipelines,
                                   datasets=s.datasets or self.datasets, seeds=s.seeds or self.seeds,
                                   search_seeds=s.search_seeds if s.search_seeds is not None else self.search_seeds,
                                   protocol=protocol, scale=scale)

    @property
    def scale_note(self) -> str:
        return "the paper's own setting" if self.scale == "full" else self.scales[self.scale].note

    def study_id(self) -> str:
        """`NAME@SCALE-HASH`: the same definition at the same scale gets the same id, so a re-run resumes it."""
        definition = dataclasses.asdict(dataclasses.replace(self, published=(), claims=(), scales={}, metric_notes={}))
        if not self.search_seeds:
            del definition["search_seeds"]  # studies defined before the field keep their ids (and resume)
        payload = json.dumps(definition, sort_keys=True, default=str)
        return f"{self.name}@{self.scale}-{hashlib.sha256(payload.encode()).hexdigest()[:8]}"

    @property
    def searched_seeds(self) -> tuple[int, ...]:
        """The seeds the grids search on: those of `seeds` in `search_seeds`, or every seed."""
        return tuple(searched_seeds(self.seeds, self.search_seeds))

    def strategy(self, name: str) -> StrategyAxis:
        for axis in self.strategies:
            if axis.strategy == name:
                return axis
        raise UserError(f"study '{self.name}' has no strategy '{name}'")

    def published_value(self, strategy: str, dataset: str, pipeline: str, metric: str) -> Published | None:
        return next((p for p in self.published if (p.strategy, p.dataset, p.pipeline, p.metric)
                     == (strategy, dataset, pipeline, metric)), None)


@dataclass(frozen=True)
class StudyCell:
    """One strategy on one dataset with one pipeline: one grid (its stages, rates and seeds)."""

    strategy: StrategyAxis
    dataset: DatasetAxis
    pipeline: Pipeline

    @property
    def key(self) -> str:
        return f"{self.dataset.name}/{self.pipeline.name}/{self.strategy.strategy}"


def study_cells(study: Study, only: dict[str, str] | None = None) -> list[StudyCell]:
    """Every cell, datasets × pipelines × strategies, strategies in the study's order (a strategy that reuses
    another's rates comes after it); `only` keeps the cells whose dataset / pipeline / strategy match."""
    cells = [StudyCell(s, d, p) for d in study.datasets for p in study.pipelines for s in study.strategies]
    for key, value in (only or {}).items():
        if key not in ("dataset", "pipeline", "strategy"):
            raise UserError(f"--only takes dataset=..., pipeline=..., strategy=...; got '{key}'")
        attr = {"dataset": lambda c: (c.dataset.name, c.dataset.dataset),
                "pipeline": lambda c: (c.pipeline.name, f"{c.pipeline.embedder}+{c.pipeline.generator}"),
                "strategy": lambda c: (c.strategy.strategy, c.strategy.label)}[key]
        cells = [c for c in cells if value in attr(c)]
    if not cells:
        raise UserError(f"--only {only} matches no cell of study '{study.name}'")
    return cells


def grid_id_of(study_id: str, cell: StudyCell, budget: float | None = None) -> str:
    """Where a study's id lives: the grid id of each of its cells' runs, `STUDY_ID/CELL[/budget=B]`."""
    return f"{study_id}/{cell.key}" + (f"/budget={budget:g}" if budget else "")


def parse_only(text: str | None) -> dict[str, str]:
    """'dataset=hotpotqa,pipeline=MiniLM + LLaMA3-8b' -> {'dataset': 'hotpotqa', ...}."""
    if not text:
        return {}
    out = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep or not value.strip():
            raise UserError(f"--only takes KEY=VALUE pairs (dataset=, pipeline=, strategy=), got '{item}'")
        out[key.strip()] = value.strip()
    return out
