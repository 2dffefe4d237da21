"""The one reader of the harness's environment variables: each is validated here, with one clear line.

    HARNESS_DB            the store (default ./harness.duckdb)
    HARNESS_CACHE         cache folder (converted models, embeddings, indexes)
    HARNESS_RUNS          folder of run folders (default: harness-runs beside the store)
    HARNESS_ARTIFACTS     artifacts of runs stored before run folders (default: harness-artifacts beside the store)
    HARNESS_HEARTBEAT_SECONDS  seconds between a working run's heartbeats (default 10; harness.runfolder)
    HARNESS_THREADS       torch CPU threads, an integer >= 1 (default 2)
    HARNESS_LOAD_PLUGINS  allowlist of installed plugins (entry points) to load, comma-separated
    HARNESS_PLUGINS_DIR   like --plugins-dir: load every *.py in a folder
    HARNESS_TRACE_PLUGINS print every hook call when set
    HARNESS_PROGRESS_SECONDS  seconds between progress lines off a terminal, a number >= 0 (default 30)
    HARNESS_SHIPPED_VECTORS   0 to ignore corpus vectors shipped with a package, 1 (default) to use them
    HARNESS_TRACKERS      run_finished exporters to turn on (checked in harness.tracking)
    HARNESS_FSDP          1: a launched run shards the generator's weights over its processes (FSDP), as an
                          FSDP accelerate config does; for CPU launches, where accelerate has no FSDP

A bad value is a UserError (exit 2) naming the variable, its value and what is allowed; never ignored.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from harness.errors import UserError

DEFAULT_THREADS = 2


def threads() -> int:
    """HARNESS_THREADS as an integer >= 1."""
    raw = os.environ.get("HARNESS_THREADS")
    if raw is None or not raw.strip():
        return DEFAULT_THREADS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise UserError(f"HARNESS_THREADS must be an integer >= 1 (torch CPU threads), got '{raw}'")
    return value


def progress_seconds(default: float) -> float:
    """HARNESS_PROGRESS_SECONDS as a finite number >= 0."""
    raw = os.environ.get("HARNESS_PROGRESS_SECONDS")
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0):
        raise UserError(f"HARNESS_PROGRESS_SECONDS must be a number of seconds >= 0 (0: every update), got '{raw}'")
    return value


def shipped_vectors() -> bool:
    """HARNESS_SHIPPED_VECTORS: 1 (default) uses vectors shipped with a packaged corpus, 0 encodes instead."""
    return _switch("HARNESS_SHIPPED_VECTORS", default="1")


def fsdp() -> bool:
    """HARNESS_FSDP: 1 shards the generator in a launched run (harness.distributed), 0 or unset does not."""
    return _switch("HARNESS_FSDP", default="0")


def _switch(name: str, default: str) -> bool:
    """A 0/1 variable (unset or blank: `default`) as a bool; anything else is one clear line."""
    raw = os.environ.get(name, default).strip() or default
    if raw not in ("0", "1"):
        raise UserError(f"{name} must be 0 or 1, got '{raw}'")
    return raw == "1"


def usable_dir(path: Path, what: str) -> Path:
    """`path` as a folder, created if missing; a file (or a file above it) in the way is a UserError."""
    try:
        for parent in (path, *path.parents):
            if parent.exists() and not parent.is_dir():
                raise UserError(f"{what} {path} is not a folder ({parent} is a file); point it at a folder")
    except PermissionError as exc:
        raise UserError(f"{what} {path} is in a folder you cannot enter ({exc.filename}: permission denied); "
                        "point it at a folder you can write to") from None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{what} {path} cannot be created: {exc.strerror or exc}") from None
    return path


def folder_from_env(name: str, default: Path, what: str) -> Path:
    """The folder env var `name` names (or `default`), created if missing and checked to be a folder."""
    raw = os.environ.get(name)
    return usable_dir(Path(raw).expanduser() if raw else default, name if raw else what)


def db_path(default: str) -> str:
    return os.environ.get("HARNESS_DB") or default


def plugin_allowlist() -> set[str] | None:
    """HARNESS_LOAD_PLUGINS as a set of names (empty string = none); None when unset (load all)."""
    raw = os.environ.get("HARNESS_LOAD_PLUGINS")
    if raw is None:
        return None
    return {name.strip() for name in raw.split(",") if name.strip()}


def plugins_dir() -> str | None:
    return os.environ.get("HARNESS_PLUGINS_DIR") or None


def trace_plugins() -> bool:
    return bool(os.environ.get("HARNESS_TRACE_PLUGINS"))
