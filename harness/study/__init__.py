"""Studies: a paper's experiment as one unit that is planned, run, resumed and set beside the published table.

    spec.py     what a study is (data): axes, protocol, published values, claims, scales; its cells
    file.py     a study from a TOML file (RunConfig key names, as run and grid files)
    plan.py     `harness study plan`: every run, what is stored, what must be present, FLOPs and GPU-hours
    run.py      `harness study run`: each cell through the grid machinery (harness/grid), one study id
    report.py   `harness study report`: our value with its interval beside the published one, claims checked

Where the study id lives: in `runs.grid_id`, as `STUDY_ID/CELL` (e.g. `lawton2025@smoke-1a2b3c4d/popqa/tiny/
ft_gen`): every run of a study carries it, a cell's runs form one grid, and no schema change is needed.
Built-in studies are plugins (plugins/studies/, hook `register_studies`).
Public (study plugins import these from `harness.study`): the names in `__all__`.
"""

from harness._exports import exports

__all__, __getattr__ = exports(__name__, {
    "spec": ("ANY_PIPELINE", "Claim", "DatasetAxis", "Pipeline", "Protocol", "Published", "Scale", "StrategyAxis",
             "Study", "StudyCell", "study_cells"),
    "file": ("get_study", "load_study_file"),
    "plan": ("plan_study",),
    "run": ("run_study",),
    "report": ("study_report",),
})
