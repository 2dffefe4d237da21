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
import math
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

import harness.store.schema as schema
from harness.errors import UserError
from harness.store.schema import DIGESTED, TERMINAL

STATUS_FILE = "status.json"
HEARTBEAT_FILE = "heartbeat.json"


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
    """One digest over a folder's files (relative names and contents), as artifacts are registered. A symlink
    that leads out of the folder is refused (digesting, importing or exporting would read what it points to)."""
    h = hashlib.sha256()
    root = Path(folder).resolve()
    for path in Path(folder).rglob("*"):
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            raise UserError(f"artifact folder {folder} holds a link that leaves it: {path.relative_to(folder)} -> "
                            f"{os.readlink(path)}; refused (an artifact holds its own files)")
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
        beat = schema.Heartbeat(host=socket.gethostname(), pid=pid, pid_start=process_start_ticks(pid),
                                interval=interval or heartbeat_seconds(), time=time.time())
        write_atomic(self.path / HEARTBEAT_FILE, beat.model_dump_json())

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
        lines = [json.dumps({"step": s, "name": n, "value": v, "elapsed": e}) for s, n, v, e in rows]
        for line in lines:  # as the folder format has it (store/schema.py), or the run fails here, not on import
            schema.Step.model_validate_json(line)
        lines = "".join(line + "\n" for line in lines)
        with (self.path / "steps.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(lines)
            fh.flush()

    def save_artifact(self, kind: str, save: Callable[[Path], None]) -> Path:
        """`save(folder)` into a temp dir, rename it to artifacts/<kind>, register its sha256 (relative path)."""
        schema.ARTIFACTS.validate_python({kind: {"path": f"artifacts/{kind}", "sha256": "0" * 64}})  # a name
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
        path = self.path / "steps.jsonl"
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    # -- the end ---------------------------------------------------------------------------------------
    def finalise(self, status: str, error: str | None = None, metrics: list | None = None,
                 predictions: list[dict] | None = None) -> None:
        """Write the results, then `status.json` with every file's digest, renamed into place last."""
        assert status in TERMINAL, status
        try:
            metrics_text = metrics_json(metrics) if metrics is not None else None
            predictions_text = "".join(prediction_line(p) for p in predictions) if predictions is not None else None
        except ValidationError as exc:  # results no import could read: the run is failed, and says why
            status, error = "failed", f"its results do not fit the run folder format: {schema.problem(exc)}"
            metrics_text = predictions_text = None
        if metrics_text is not None:
            write_atomic(self.path / "metrics.json", metrics_text)
        if predictions_text is not None:
            write_atomic(self.path / "predictions.jsonl", predictions_text)
        files = {name: file_sha256(self.path / name) for name in DIGESTED if (self.path / name).exists()}
        record = schema.Status(status=status, error=error, finished_at=now_iso(), files=files)
        write_atomic(self.path / STATUS_FILE, json.dumps(record.model_dump(), indent=1, sort_keys=True))


def metrics_json(metrics: list) -> str:
    """metrics.json as the folder format has it: [split, name, value] rows of finite numbers. A metric that is
    not a finite number (the interval of an empty split) is left out: it would rank unpredictably."""
    rows = [[str(split), str(name), float(value)] for split, name, value in metrics
            if isinstance(value, (int, float)) and math.isfinite(value)]
    text = json.dumps(rows)
    schema.METRICS.validate_json(text)
    return text


def prediction_line(prediction: dict) -> str:
    """One line of predictions.jsonl, checked against the folder format as it is written."""
    line = json.dumps(prediction)
    schema.Prediction.model_validate_json(line)
    return line + "\n"


# -- reading a finished folder -------------------------------------------------------------------------
@dataclass
class FinishedRun:
    """A finalised folder, checked against its digests and the folder format (store/schema.py): what
    `harness import` stores. Metrics, config, meta and artifacts are read; the training log and the
    predictions are streamed (`step_batches`, `prediction_batches`), each line checked as it is read
    (read_finished has checked every prediction line once already, keeping none)."""

    folder: Path
    config: dict
    meta: dict
    status: str
    error: str | None
    finished_at: str
    metrics: list[tuple[str, str, float]]
    artifacts: dict[str, dict]
    files: dict[str, str]

    def prediction_batches(self, size: int = 20_000) -> Iterator[list[dict]]:
        yield from _line_batches(self.folder, "predictions.jsonl", self.files, schema.Prediction, size)

    def step_batches(self, size: int = 20_000) -> Iterator[list[dict]]:
        yield from _line_batches(self.folder, "steps.jsonl", self.files, schema.Step, size)

    @property
    def predictions(self) -> list[dict]:
        return [row for batch in self.prediction_batches() for row in batch]

    @property
    def steps(self) -> list[tuple[int, str, float, float]]:
        return [(s["step"], s["name"], s["value"], s["elapsed"]) for batch in self.step_batches() for s in batch]


def read_finished(path: Path) -> FinishedRun:
    """Read and verify a finalised run folder: every digest, every artifact, every file against the folder
    format. An unfinished, corrupt or malformed folder is one UserError line naming the folder, the file
    and the problem. The predictions and the training log are checked line by line when streamed."""
    path = Path(path)
    if not _regular(path / "meta.json") or not _regular(path / "config.json"):
        raise UserError(f"{path} is not a run folder (no meta.json/config.json)")
    if not (path / STATUS_FILE).exists():
        raise UserError(f"run folder {path} is unfinished (no {STATUS_FILE}: the run is still working or was killed)")
    status = _read_model(path, STATUS_FILE, schema.Status)
    missing = {"config.json", "meta.json"} - set(status.files)
    if missing:
        raise UserError(f"run folder {path} is corrupt: {STATUS_FILE} has no digest for {sorted(missing)[0]}")
    for name in DIGESTED:
        file = path / name
        if name not in status.files:
            if file.exists() or file.is_symlink():
                raise UserError(f"run folder {path} is corrupt: {name} is not covered by the digests in {STATUS_FILE}")
            continue
        if not _regular(file) or file_sha256(file) != status.files[name]:
            raise UserError(f"run folder {path} is corrupt: {name} is missing or does not match its sha256")
        _check_size(path, name, schema.MAX_LINES_BYTES if name.endswith(".jsonl") else schema.MAX_JSON_BYTES)
    meta = _read_model(path, "meta.json", schema.Meta).model_dump(exclude_unset=True)
    config = _read_model(path, "config.json", schema.RunConfigFile).model_dump()
    for name, data in (("config.json", config), ("meta.json", meta)):
        try:
            json.dumps(data, allow_nan=False)
        except ValueError:
            raise UserError(f"run folder {path} is malformed: {name} holds a number that is not finite") from None
    artifacts = _read_typed(path, "artifacts.json", schema.ARTIFACTS, {}) if "artifacts.json" in status.files else {}
    artifacts = {kind: entry.model_dump() for kind, entry in artifacts.items()}
    for kind, entry in artifacts.items():
        _check_artifact(path, kind, entry)
    metrics = _read_typed(path, "metrics.json", schema.METRICS, []) if "metrics.json" in status.files else []
    seen = set()
    for split, name, _ in metrics:
        if (split, name) in seen:
            raise UserError(f"run folder {path} is malformed: metrics.json has the metric {split}/{name} twice")
        seen.add((split, name))
    run = FinishedRun(folder=path.resolve(), config=config, meta=meta, status=status.status, error=status.error,
                      finished_at=status.finished_at, metrics=[tuple(m) for m in metrics], artifacts=artifacts,
                      files=dict(status.files))
    for _ in _line_batches(path, "predictions.jsonl", run.files, schema.Prediction, 0, keep=False):
        pass  # every line checked before any store is opened (streamed, nothing kept: DuckDB reads the file)
    return run


def verified_run_folder(folder: str | Path, run_id: str) -> FinishedRun:
    """`folder` as the finalised folder of run `run_id`, before anything is loaded or copied from it: its own
    meta.json names this run, its digests and artifacts verify (a store is input: its `folder` may point
    anywhere)."""
    try:
        run = read_finished(Path(folder))
    except UserError as exc:
        raise UserError(f"run {run_id}: its stored folder is not its finalised run folder: {exc}") from None
    if run.meta.get("run_id") != run_id:
        raise UserError(f"run {run_id}: its stored folder {folder} is the folder of run "
                        f"'{str(run.meta.get('run_id'))[:40]}', not this one; refusing to load from it")
    return run


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
    target = resolve_artifact(path, entry["path"])
    if target == path.resolve():
        raise UserError(f"run folder {path} is corrupt: artifact '{kind}' is the run folder itself")
    if not target.is_dir() or folder_sha256(target) != entry["sha256"]:
        raise UserError(f"run folder {path} is corrupt: artifact '{kind}' is missing or does not match its sha256")


def _regular(file: Path) -> bool:
    """A plain file, not a link (a link could read anything on this machine)."""
    return file.is_file() and not file.is_symlink()


def _read_bytes(path: Path, name: str) -> bytes:
    _check_size(path, name, schema.MAX_JSON_BYTES)
    return (path / name).read_bytes()


def _check_size(path: Path, name: str, limit: int) -> None:
    size = (path / name).stat().st_size
    if size > limit:
        raise UserError(f"run folder {path}: {name} is larger than the import limit ({size:,} > {limit:,} bytes); "
                        "refused (docs/architecture.md §7)")


def _read_model(path: Path, name: str, model):
    return _validated(path, name, lambda: model.model_validate_json(_read_bytes(path, name)))


def _read_typed(path: Path, name: str, adapter: TypeAdapter, default):
    if not (path / name).exists():
        return default
    return _validated(path, name, lambda: adapter.validate_json(_read_bytes(path, name)))


def _validated(path: Path, name: str, parse, line: int | None = None):
    where = f"{name} line {line}" if line else name
    try:
        return parse()
    except ValidationError as exc:
        if exc.errors()[0]["type"] == "json_invalid":
            raise UserError(f"run folder {path} is corrupt: {where} is not valid JSON") from None
        raise UserError(f"run folder {path} is malformed: {where}: {schema.problem(exc)}") from None


def _line_batches(path: Path, name: str, files: dict, model, size: int, keep: bool = True) -> Iterator[list[dict]]:
    """The verified lines of a JSON-lines file, each checked against `model`, in batches of `size` dicts
    (with `keep=False` only checked: holding 10^6 rows' objects would triple the time, in the collector)."""
    if name not in files:
        return
    file = path / name
    _check_size(path, name, schema.MAX_LINES_BYTES)
    validate = model.__pydantic_validator__.validate_json  # the model's own validator, without per-call wrappers
    batch: list[dict] = []
    limit = schema.MAX_LINE_BYTES
    with file.open("rb") as fh:
        number = 0
        while line := fh.readline(limit + 1):
            number += 1
            if len(line) > limit:
                raise UserError(f"run folder {path}: {name} line {number} is longer than {limit:,} bytes; refused")
            try:
                row = validate(line)
            except ValidationError:
                if line.strip():
                    _validated(path, name, lambda: model.model_validate_json(line), number)  # raises its one line
                continue
            if not keep:
                continue
            batch.append(row.__dict__)
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch


def run_folders_under(path: Path) -> list[Path]:
    """`path` itself if it is a run folder, else the run folders directly inside it (sorted)."""
    path = Path(path)
    if (path / "meta.json").is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"{path} is not a run folder or a directory of run folders")
    return sorted(p for p in path.iterdir() if (p / "meta.json").is_file())


# -- liveness --------------------------------------------------------------------------------------------
FUTURE_BEAT_SECONDS = 5.0  # a beat dated later than now plus this (clock skew) is forged or broken: stale


def stale_after(interval: float) -> float:
    """A heartbeat older than this means the process is gone (three missed beats, at least 30 s)."""
    return max(3 * interval, 30.0)


def lost_reason(folder: str | None, host: str | None, pid: int | None, started: float | None,
                now: float | None = None) -> str | None:
    """Why a `running` run is gone (its process died or its heartbeat is stale), or None if it may live."""
    now = time.time() if now is None else now
    beat = _heartbeat(folder)
    if beat:
        host, pid, last, interval = beat.host, beat.pid, beat.time, beat.interval
    else:
        last, interval = started, heartbeat_seconds()
    if host == socket.gethostname() and pid and not _pid_alive(int(pid), beat.pid_start if beat else None, beat is not None):
        return f"process {pid} on {host} is gone"
    if last is not None and last - now > FUTURE_BEAT_SECONDS:
        return f"its heartbeat is dated {last - now:.0f}s in the future (process {pid} on {host}); read as stale"
    if last is not None and now - last > stale_after(interval):
        return f"no heartbeat for {now - last:.0f}s from process {pid} on {host}"
    return None


def _heartbeat(folder: str | None) -> schema.Heartbeat | None:
    """The folder's heartbeat, or None when there is none or it is not one (then the row's start time and
    pid judge; a damaged beat never keeps a run alive)."""
    if not folder:
        return None
    try:
        return schema.Heartbeat.model_validate_json((Path(folder) / HEARTBEAT_FILE).read_bytes()[:65536])
    except (OSError, ValueError):
        return None


def _pid_alive(pid: int, start_ticks: int | None, from_beat: bool = False) -> bool:
    """Whether `pid` is the process that wrote the beat: alive, not a zombie and, where this system tells a
    process's start time, started when the beat says (a beat without it, or with another, is a different or
    forged process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OverflowError:
        return False
    actual = process_start_ticks(pid)
    if actual is not None and (start_ticks is not None or from_beat) and actual != start_ticks:
        return False  # the pid was reused by another process, or the beat does not say which process wrote it
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
