"""One driver per store and grid: `harness grid` holds a lock file beside the store for the grid's id while it
runs, so a second driver of the same plan on the same store refuses in one line naming the first (instead of
running every cell again). The lock is the kernel's (flock): it is released when the holder's process ends,
however it ends (a SIGKILL included)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from harness.errors import UserError
from harness.store.db import Store
from harness.store.folder import now_iso


def lock_path(store: Store, grid_id: str) -> Path | None:
    """`.<store file>.<grid id>.lock` beside the store (None for an in-memory store: nothing to share)."""
    if store.path == ":memory:":
        return None
    db = Path(store.path).resolve()
    return db.parent / f".{db.name}.{grid_id}.lock"


@contextlib.contextmanager
def grid_lock(store: Store, grid_id: str) -> Iterator[None]:
    """Hold the store's lock for `grid_id` while the body runs; held by another process: one UserError line."""
    path = lock_path(store, grid_id)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"grid {grid_id} is already running on store {store.path}: {holder(fd)}; wait for it "
                            "to finish (its cells are not run twice), or stop it and run this again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": now_iso()}).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # the flock itself ends with the descriptor (or the process)
    finally:
        os.close(fd)


def holder(fd: int) -> str:
    """Who holds the lock, as its holder wrote it (pid, host, since when)."""
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"driver pid {int(info['pid'])} on {str(info['host'])[:80]} since {str(info['since'])[:40]}"
    except (ValueError, KeyError, TypeError, OSError):
        return "another driver holds its lock"
