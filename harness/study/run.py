"""`harness study run`: every cell of a study through the grid machinery (harness/grid/run.py): its stages
finish before the next, two_phase's per-phase grids, a strategy that reuses another's rates runs after it
with that strategy's selected rates (the paper's choice), every run stored with the grid id
`STUDY_ID/CELL`. Re-running runs only what is unfinished: finished runs are found by run key and skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.errors import UserError
from harness.grid.plan import Cell, GridResult
from harness.grid.run import run_grid
from harness.store.db import Store
from harness.study.plan import cell_base_config, cell_grid, runs_of_grid
from harness.study.spec import Study, StudyCell, grid_id_of, study_cells


@dataclass
class StudyRun:
    study_id: str
    results: dict[str, GridResult] = field(default_factory=dict)  # cell key -> its grid (last budget)
    failed: dict[str, str] = field(default_factory=dict)  # cell key -> why


def with_sources(study: Study, cells: list[StudyCell]) -> list[StudyCell]:
    """`cells` plus the cells whose selected rates they reuse (same dataset and pipeline), in study order."""
    wanted = {c.key for c in cells}
    every = study_cells(study)
    changed = True
    while changed:
        changed = False
        for cell in every:
            if cell.key in wanted:
                for source in set(cell.strategy.lrs_from.values()):
                    key = f"{cell.dataset.name}/{cell.pipeline.name}/{source}"
                    if key not in wanted:
                        if not any(c.key == key for c in every):
                            raise UserError(f"study '{study.name}': {cell.strategy.strategy} reuses the rates of "
                                            f"'{source}', which the study does not run")
                        wanted.add(key)
                        changed = True
    return [c for c in every if c.key in wanted]


def run_study(study: Study, store: Store, only: dict[str, str] | None = None, executor=None, executor_options=None,
              force: bool = False, on_cell: Callable[[StudyCell, Cell], None] | None = None,
              on_start: Callable[[StudyCell, int], None] | None = None) -> StudyRun:
    if study.protocol.select_split != "dev":
        raise UserError("a study selects its grids on the dev split (protocol.select_split = \"dev\")")
    outcome = StudyRun(study.study_id())
    selected: dict[str, dict[str, float | None]] = {}
    for cell in with_sources(study, study_cells(study, only)):
        fixed, missing = {}, []
        for rate, source in cell.strategy.lrs_from.items():
            key = f"{cell.dataset.name}/{cell.pipeline.name}/{source}"
            if key not in selected:
                missing.append(source)
            else:
                fixed[rate] = selected[key].get(rate)
        if missing:
            outcome.failed[cell.key] = f"no selected rates from {', '.join(sorted(set(missing)))}"
            continue
        grid = cell_grid(cell, fixed)
        if on_start:
            on_start(cell, runs_of_grid(grid.n_cells(), study) * max(1, len(study.budgets)))
        for budget in list(study.budgets) or [None]:
            base = cell_base_config(study, cell)
            if budget:
                base = dataclasses.replace(base, max_train_flops=budget)
            try:
                result = run_grid(base, store, grid, force=force, seeds=list(study.seeds),
                                  search_seeds=list(study.searched_seeds), executor=executor,
                                  executor_options=executor_options, grid_id=grid_id_of(outcome.study_id, cell, budget),
                                  on_cell=(lambda c, _cell=cell: on_cell(_cell, c)) if on_cell else None)
            except UserError as exc:  # every run of a stage failed: the other cells go on
                outcome.failed[cell.key] = str(exc)
                break
            outcome.results[cell.key] = result
            if result.selected is not None:
                selected[cell.key] = result.selected.lrs
    return outcome
