"""Cache entries (an index, a converted model folder) written atomically and verified before use.

An entry is built in a temp folder beside its target, a manifest of its files and their sizes is written
last, and the folder is renamed into place: a kill mid-build leaves only a `.tmp-*` folder nobody reads.
Before an entry is used its files are checked against the manifest (a truncated file fails here) and its
safetensors headers are parsed; whatever still fails to load is a broken entry too. A broken entry is
moved aside, one line on stderr says so, and the caller rebuilds it. (Sizes, not sha256: re-hashing a
multi-GB index on every run would cost more than it protects; a truncation is what a kill or a full disk
leaves.)
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from harness.errors import raise_pending_interrupt

T = TypeVar("T")
MANIFEST = "harness-cache.json"


def publish(target: Path, write: Callable[[Path], None]) -> Path:
    """Build an entry with `write(tmp)`, record its files' sizes, rename it to `target` (first one wins)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        write(tmp)
        write_manifest(tmp)
        os.rename(tmp, target)  # atomic: readers see no entry or a complete one
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone after a rename; the loser's copy otherwise
    return target


def write_manifest(folder: Path) -> None:
    """Record every file of a finished entry with its size (written last, just before the rename)."""
    sizes = {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
    (folder / MANIFEST).write_text(json.dumps({"files": sizes}, indent=1))


def problem(folder: Path) -> str | None:
    """Why the entry at `folder` cannot be trusted, or None. Entries from before manifests: headers only."""
    manifest = folder / MANIFEST
    if manifest.is_file():
        try:
            files = json.loads(manifest.read_text())["files"]
        except (ValueError, KeyError, TypeError):
            return f"unreadable {MANIFEST}"
        for name, size in files.items():
            path = folder / name
            if not path.is_file():
                return f"{name} is missing"
            if path.stat().st_size != size:
                return f"{name} is {path.stat().st_size} bytes, {size} when written (truncated or changed)"
    for path in sorted(folder.rglob("*.safetensors")):
        if reason := safetensors_problem(path):
            return f"{path.relative_to(folder)}: {reason}"
    return None


def safetensors_problem(path: Path) -> str | None:
    """A safetensors file whose header does not parse or whose data is shorter than the header says."""
    try:
        with path.open("rb") as fh:
            header_len = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(header_len))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return "not a readable safetensors file"
    if path.stat().st_size < 8 + header_len + end:
        return f"{path.stat().st_size} bytes, {8 + header_len + end} needed (truncated)"
    return None


def load_verified(folder: Path, load: Callable[[Path], T], what: str) -> T | None:
    """`load(folder)` if the entry is there and sound; None if absent or broken (broken: set aside, said)."""
    if not folder.is_dir():
        return None
    reason = problem(folder)
    if reason is None:
        try:
            return load(folder)
        except Exception as exc:  # noqa: BLE001 - any failure to load a cache entry means: rebuild it
            raise_pending_interrupt(exc)  # ...unless a signal is why it failed
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    discard(folder, what, reason)
    return None


def discard(folder: Path, what: str, reason: str) -> None:
    """Move a broken entry out of the way (atomically), delete it, and say so on stderr."""
    print(f"cache: {what} at {folder} is damaged ({reason}); rebuilding it", file=sys.stderr, flush=True)
    aside = folder.parent / f".broken-{folder.name}-{os.getpid()}"
    try:
        os.rename(folder, aside)
    except OSError:
        return  # another process moved it first
    shutil.rmtree(aside, ignore_errors=True)
