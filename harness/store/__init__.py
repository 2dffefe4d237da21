"""How a run is kept: its folder while it works, then one transaction into the DuckDB store.

    folder.py      the run folder: config, meta, heartbeat, step log, artifacts (sha256), status.json last
    layout.py      where run folders live (beside the store, or HARNESS_RUNS) and a new run's folder
    db.py          the Store: ingests finished folders, answers queries (the dashboard's too, through a
                   read-only Store); its SQL lives here
    migrations.py  every schema change, and all the DDL (m001_..., recorded when applied)

A run is stored in this order: `layout.create_run_folder` -> the worker writes `folder.RunFolder` ->
`RunFolder.finalise` writes status.json last -> `Store.import_runs(read_finished(...))`.
Public (plugins import these from `harness.store`): the names in `__all__`.
"""

from harness._exports import exports

__all__, __getattr__ = exports(__name__, {
    "db": ("Store", "DEFAULT_DB", "default_db_path", "connect_with_retry"),
    "folder": ("RunFolder", "FinishedRun", "collect_finished", "read_finished", "run_folders_under", "effective_status"),
    "layout": ("runs_dir", "create_run_folder"),
    "migrations": ("migrate", "latest_migration"),
})
