"""Where run folders live: the root beside the store (or HARNESS_RUNS), and a new run's folder in it."""

from __future__ import annotations

import uuid
from pathlib import Path

from harness import env
from harness.config import RunConfig, git_sha
from harness.store.db import Store
from harness.store.folder import RunFolder, now_iso
from harness.version import __version__


def runs_dir(store: Store) -> Path:
    """HARNESS_RUNS, or `harness-runs/` beside the store: where run folders go; checked to be a usable folder."""
    default = Path(store.path).resolve().parent / "harness-runs" if store.path != ":memory:" else Path("harness-runs")
    return env.folder_from_env("HARNESS_RUNS", default, "run folders folder")


def artifacts_root(store: Store) -> Path:
    """Where runs stored before run folders keep their artifacts (HARNESS_ARTIFACTS, or `harness-artifacts`
    beside the store): read only for rows without a run folder."""
    default = Path(store.path).resolve().parent / "harness-artifacts" if store.path != ":memory:" else Path("harness-artifacts")
    return env.folder_from_env("HARNESS_ARTIFACTS", default, "artifacts folder")


def create_run_folder(cfg: RunConfig, root: Path, grid_id: str | None = None, store: Store | None = None) -> RunFolder:
    """A new run folder under `root` with the resolved config and what identifies the run, including the
    store that started it (`meta["store"]`): a grid's sweep ingests only its own store's folders."""
    run_id = uuid.uuid4().hex[:12]
    meta = {"run_id": run_id, "run_key": cfg.run_key(), "grid_id": grid_id, "git_sha": git_sha(),
            "harness_version": __version__, "created_at": now_iso(),
            "store": store_identity(store) if store is not None else None}
    return RunFolder.create(root / run_id, cfg.to_dict(), meta)


def store_identity(store: Store) -> str:
    """The store's absolute path, as a run folder records the store that started it."""
    return store.path if store.path == ":memory:" else str(Path(store.path).resolve())

