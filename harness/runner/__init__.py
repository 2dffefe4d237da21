"""One run, end to end: assemble it, run it, reload what it saved.

    assemble.py    resolve names and defaults, load the dataset, build the pipeline (models + index)
    lifecycle.py   `execute` (the driver: skip, folder, store) and `run_in_folder` (the work: fit, evaluate,
                   finalise), how a run ended (finished, failed, interrupted)
    artifacts.py   reloading a run's saved models onto its base models (`harness evaluate`)
    model_card.py  the model cards written beside the artifacts

Public (commands import these from `harness.runner`): the names in `__all__`.
"""

from harness._exports import exports

__all__, __getattr__ = exports(__name__, {
    "assemble": ("Resolved", "build_pipeline", "configure_torch", "load_dataset", "resolve", "run_metadata"),
    "lifecycle": ("RunOutcome", "StrategyFailed", "execute", "run_in_folder"),
    "artifacts": ("apply_artifacts", "reevaluate", "run_artifacts"),
})
