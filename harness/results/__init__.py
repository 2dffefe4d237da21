"""Reading the store back out: the one ranking, exports, trackers, table formats, rescoring.

    leaderboard.py    the ranking the terminal and the dashboard share: best grid cell by dev, mean over seeds,
                      paired-bootstrap ties, the Pareto front
    export.py         a run as files (config, metrics, predictions, step log) and its artifacts
    tracking.py       run_finished exporters (MLflow, W&B): which are on, what they log
    table_formats.py  rows as CSV, JSON or Markdown
    rescore.py        recomputing a stored metric whose definition changed, from stored retrieved ids

Public (commands and trackers import these from `harness.results`): the names in `__all__`.
"""

from harness._exports import exports

__all__, __getattr__ = exports(__name__, {
    "leaderboard": ("ranking", "run_rows", "store_ranking", "group_key"),
    "export": ("RunRecord", "copy_artifacts", "load_run_record", "run_summary", "write_run_files"),
    "tracking": ("enable_trackers", "final_metrics", "flat_params", "is_enabled", "steps_by_step",
                 "tracker_failure_warning"),
    "table_formats": ("FORMATS", "rows_as_text"),
})
