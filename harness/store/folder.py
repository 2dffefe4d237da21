"""Every run is a folder: what a run writes while it works, and what `harness import` reads back.

A run never writes the DuckDB store while a model works. It writes one self-contained folder:

    <runs dir>/<run id>/
        config.json         the resolved RunConfig (exactly what ran)
        meta.json           run id, run key, grid id, store, code version, packages, device, host, pid, start time
        heartbeat.json      host, pid, process start, interval and the time of the last beat (a thread)
        steps.jsonl         the training log: {"step", "name", "value", "elapsed"} per line, appended
        artifacts/<kind>/   saved adapters and embedders (written to a temp dir, renamed into place)
        artifacts.json      kind -> {"path" (relative to this folder), "sha256"}
        metrics.json        [[split, name, value], ...]
        predictions.jsonl   one evaluated example per line
        status.json         LAST: status, error, finish time and the sha256 of every file above

`status.json` is written to a temp name and renamed into place after everything else is on disk, so a
folder without it is unfinished (the run is working, or was killed) and a folder whose files do not match
its digests is corrupt; `read_finished` refuses both with one line. The driver (or `harness import`)
ingests finished folders into the store; the same folder serves a local run, a worker on a cluster and a
run shared by someone else. A run whose process is gone (same host and the pid is dead, or the heartbeat
is stale) reads as `interrupted` everywhere: `effective_status`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError

STATUS_FILE = "status.json"
HEARTBEAT_FILE = "heartbeat.json"
DIGESTED = ("config.json", "meta.json", "steps.jsonl", "artifacts.json", "metrics.json", "predictions.jsonl")
TERMINAL = ("finished", "failed", "interrupted")


def heartbeat_seconds() -> float:
    """How often a working run beats (HARNESS_HEARTBEAT_SECONDS, default 10)."""
    raw = os.environ.get("HARNESS_HEARTBEAT_SECONDS", "10")
    try:
        value = float(raw)
    except ValueError:
        raise UserError(f"HARNESS_HEARTBEAT_SECONDS must be a number of seconds > 0, got '{raw}'") from None
    if not 0 < value < 86400:
        raise UserError(f"HARNESS_HEARTBEAT_SECONDS must be a number of seconds > 0, got '{raw}'")
    return value


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# -- writing -----------------------------------------------------------------------------------------
def write_atomic(path: Path, text: str) -> None:
    """Write `text` to a temp file beside `path`, fsync, rename over `path`: readers see old or new, whole."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def folder_sha256(folder: Path) -> str:
    """One digest over a folder's files (relative names and contents), as artifacts are registered."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def process_start_ticks(pid: int) -> int | None:
    """The start time of process `pid` in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


@dataclass
class RunFolder:
    path: Path

    @classmethod
    def create(cls, path: Path, config: dict, meta: dict) -> RunFolder:
        """A new folder holding the resolved config and the run's metadata (nothing else yet)."""
        path.mkdir(parents=True, exist_ok=False)
        folder = cls(path)
        write_atomic(path / "config.json", json.dumps(config, indent=1, sort_keys=True, default=str))
        write_atomic(path / "meta.json", json.dumps(meta, indent=1, sort_keys=True, default=str))
        return folder

    @property
    def config(self) -> dict:
        return json.loads((self.path / "config.json").read_text())

    @property
    def meta(self) -> dict:
        return json.loads((self.path / "meta.json").read_text())

    def status(self) -> dict | None:
        """The finalised status (status, error, ...), or None while the run is unfinished."""
        try:
            return json.loads((self.path / STATUS_FILE).read_text())
        except FileNotFoundError:
            return None

    def start_attempt(self, about: dict | None = None) -> None:
        """Start (or restart, after a worker died) with an empty log and no artifacts; record who runs it
        (host, pid, start time, attempt number, and `about`: device, packages)."""
        if self.status() is not None:
            raise UserError(f"run folder {self.path} is already finalised ({self.status()['status']})")
        for name in ("steps.jsonl", "artifacts.json", "metrics.json", "predictions.jsonl"):
            with contextlib.suppress(FileNotFoundError):
                (self.path / name).unlink()
        shutil.rmtree(self.path / "artifacts", ignore_errors=True)
        meta = self.meta
        attempts = meta.get("attempts", 0) + 1
        meta.update(about or {})
        meta.update(host=socket.gethostname(), pid=os.getpid(), started_at=now_iso(), attempts=attempts)
        write_atomic(self.path / "meta.json", json.dumps(meta, indent=1, sort_keys=True, default=str))
        (self.path / "steps.jsonl").touch()
        self.beat()

    # -- while the run works ---------------------------------------------------------------------------
    def beat(self, interval: float | None = None) -> None:
        pid = os.getpid()
        write_atomic(self.path / HEARTBEAT_FILE, json.dumps({
            "host": socket.gethostname(), "pid": pid, "pid_start": process_start_ticks(pid),
            "interval": interval or heartbeat_seconds(), "time": time.time()}))

    @contextlib.contextmanager
    def heartbeat(self) -> Iterator[None]:
        """Beat every `heartbeat_seconds()` in a daemon thread while the body runs."""
        interval = heartbeat_seconds()
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                with contextlib.suppress(OSError):
                    self.beat(interval)

        self.beat(interval)
        thread = threading.Thread(target=loop, name="harness-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)

    def append_steps(self, rows: list[tuple[int, str, float, float]]) -> None:
        """Append training-log rows (step, name, value, elapsed seconds) as JSON lines."""
        if not rows:
            return
        lines = "".join(json.dumps({"step": s, "name": n, "value": v, "elapsed": e}) + "\n" for s, n, v, e in rows)
        with (self.path / "steps.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(lines)
            fh.flush()

    def save_artifact(self, kind: str, save: Callable[[Path], None]) -> Path:
        """`save(folder)` into a temp dir, rename it to artifacts/<kind>, register its sha256 (relative path)."""
        root = self.path / "artifacts"
        root.mkdir(exist_ok=True)
        final = root / kind
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{kind}-"))
        save(tmp)
        digest = folder_sha256(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        registry = self.artifacts()
        registry[kind] = {"path": f"artifacts/{kind}", "sha256": digest}
        write_atomic(self.path / "artifacts.json", json.dumps(registry, indent=1, sort_keys=True))
        return final

    def artifacts(self) -> dict[str, dict]:
        """kind -> {"path" relative to the folder, "sha256"} of the artifacts saved so far."""
        path = self.path / "artifacts.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def rehash_artifacts(self) -> None:
        """Register the sha256 of every artifact again (after a card was added to it, before finalising)."""
        registry = {kind: {**entry, "sha256": folder_sha256(resolve_artifact(self.path, entry["path"]))}
                    for kind, entry in self.artifacts().items()}
        write_atomic(self.path / "artifacts.json", json.dumps(registry, indent=1, sort_keys=True))

    def steps(self) -> list[dict]:
        """The training log written so far."""
        return _read_lines(self.path, "steps.jsonl")

    # -- the end ---------------------------------------------------------------------------------------
    def finalise(self, status: str, error: str | None = None, metrics: list | None = None,
                 predictions: list[dict] | None = None) -> None:
        """Write the results, then `status.json` with every file's digest, renamed into place last."""
        assert status in TERMINAL, status
        if metrics is not None:
            write_atomic(self.path / "metrics.json", json.dumps([list(m) for m in metrics]))
        if predictions is not None:
            write_atomic(self.path / "predictions.jsonl", "".join(json.dumps(p) + "\n" for p in predictions))
        files = {name: file_sha256(self.path / name) for name in DIGESTED if (self.path / name).exists()}
        write_atomic(self.path / STATUS_FILE, json.dumps(
            {"status": status, "error": error, "finished_at": now_iso(), "files": files}, indent=1, sort_keys=True))


# -- reading a finished folder -------------------------------------------------------------------------
@dataclass
class FinishedRun:
    """Everything a finalised folder holds, checked against its digests (what `harness import` stores)."""

    folder: Path
    config: dict
    meta: dict
    status: str
    error: str | None
    finished_at: str
    metrics: list[tuple[str, str, float]]
    predictions: list[dict]
    steps: list[tuple[int, str, float, float]]
    artifacts: dict[str, dict]


def read_finished(path: Path) -> FinishedRun:
    """Read and verify a finalised run folder; an unfinished or corrupt one is one UserError line."""
    path = Path(path)
    if not (path / "meta.json").is_file() or not (path / "config.json").is_file():
        raise UserError(f"{path} is not a run folder (no meta.json/config.json)")
    status = _read_json(path, STATUS_FILE, missing=f"run folder {path} is unfinished (no {STATUS_FILE}: "
                                                    "the run is still working or was killed)")
    if status.get("status") not in TERMINAL or not isinstance(status.get("files"), dict):
        raise UserError(f"run folder {path} is corrupt: {STATUS_FILE} has no valid status and file digests")
    for name, digest in status["files"].items():
        if name not in DIGESTED:
            raise UserError(f"run folder {path} is corrupt: {STATUS_FILE} names an unknown file '{name}'")
        if not (path / name).is_file() or file_sha256(path / name) != digest:
            raise UserError(f"run folder {path} is corrupt: {name} is missing or does not match its sha256")
    artifacts = _read_json(path, "artifacts.json", default={})
    for kind, entry in artifacts.items():
        _check_artifact(path, kind, entry)
    return FinishedRun(
        folder=path.resolve(), config=_read_json(path, "config.json"), meta=_read_json(path, "meta.json"),
        status=status["status"], error=status.get("error"), finished_at=status.get("finished_at"),
        metrics=[tuple(m) for m in _read_json(path, "metrics.json", default=[])],
        predictions=_read_lines(path, "predictions.jsonl"),
        steps=[(s["step"], s["name"], s["value"], s["elapsed"]) for s in _read_lines(path, "steps.jsonl")],
        artifacts=artifacts,
    )


def resolve_artifact(folder: Path, relative: str) -> Path:
    """The artifact at `relative` inside `folder`; a path that leaves the folder (absolute, `..`, a symlink
    pointing out) is refused before anything is loaded."""
    root = Path(folder).resolve()
    if Path(relative).is_absolute():
        raise UserError(f"artifact path '{relative}' is absolute; artifact paths are relative to their run folder")
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise UserError(f"artifact path '{relative}' resolves outside its run folder {root}; refused")
    return target


def _check_artifact(path: Path, kind: str, entry: dict) -> None:
    target = resolve_artifact(path, entry.get("path", ""))
    if not target.is_dir() or folder_sha256(target) != entry.get("sha256"):
        raise UserError(f"run folder {path} is corrupt: artifact '{kind}' is missing or does not match its sha256")


def _read_json(path: Path, name: str, missing: str | None = None, default=None):
    try:
        return json.loads((path / name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        if default is not None:
            return default
        raise UserError(missing or f"run folder {path} is corrupt: {name} is missing") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"run folder {path} is corrupt: {name} is not valid JSON ({exc})") from None


def _read_lines(path: Path, name: str) -> list[dict]:
    file = path / name
    if not file.exists():
        return []
    rows = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise UserError(f"run folder {path} is corrupt: {name} line {number} is not valid JSON") from None
    return rows


def run_folders_under(path: Path) -> list[Path]:
    """`path` itself if it is a run folder, else the run folders directly inside it (sorted)."""
    path = Path(path)
    if (path / "meta.json").is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"{path} is not a run folder or a directory of run folders")
    return sorted(p for p in path.iterdir() if (p / "meta.json").is_file())


# -- liveness --------------------------------------------------------------------------------------------
def stale_after(interval: float) -> float:
    """A heartbeat older than this means the process is gone (three missed beats, at least 30 s)."""
    return max(3 * interval, 30.0)


def lost_reason(folder: str | None, host: str | None, pid: int | None, started: float | None,
                now: float | None = None) -> str | None:
    """Why a `running` run is gone (its process died or its heartbeat is stale), or None if it may live."""
    now = time.time() if now is None else now
    beat = _heartbeat(folder)
    if beat:
        host, pid, last, interval = beat.get("host"), beat.get("pid"), beat.get("time"), beat.get("interval", 10.0)
    else:
        last, interval = started, heartbeat_seconds()
    if host == socket.gethostname() and pid and not _pid_alive(int(pid), beat.get("pid_start") if beat else None):
        return f"process {pid} on {host} is gone"
    if last is not None and now - last > stale_after(interval):
        return f"no heartbeat for {now - last:.0f}s from process {pid} on {host}"
    return None


def _heartbeat(folder: str | None) -> dict | None:
    if not folder:
        return None
    try:
        return json.loads((Path(folder) / HEARTBEAT_FILE).read_text())
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int, start_ticks: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if start_ticks is not None and process_start_ticks(pid) not in (None, start_ticks):
        return False  # the pid was reused by another process
    return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state != "Z"


def effective_status(row: dict) -> dict:
    """The run row as every reader shows it: a `running` run whose process is gone is `interrupted`."""
    if row.get("status") != "running":
        return row
    started = row.get("started_at")
    started_ts = started.timestamp() if isinstance(started, dt.datetime) else None  # stored by now(): local time
    reason = lost_reason(row.get("folder"), row.get("host"), row.get("pid"), started_ts)
    if reason is None:
        return row
    return {**row, "status": "interrupted", "error": f"lost: {reason} (killed or crashed; nothing of it was stored)"}


def collect_finished(paths: list[str]) -> tuple[list, int]:
    """(every finished run under `paths`, verified; the number of unfinished folders skipped)."""
    runs, skipped = [], 0
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise UserError(f"{given} does not exist; give run folders or directories of run folders")
        folders = run_folders_under(path)
        named = folders == [path]
        for folder in folders:
            if not named and not (folder / "status.json").exists():
                skipped += 1
                continue
            runs.append(read_finished(folder))
    return runs, skipped
