"""The run folder format, in one place: what every file of a run folder holds (folder.py writes through these
models and `harness import` reads through them, so a folder is stored exactly as it says or refused).

    config.json        RunConfigFile   the resolved config (strategy, dataset, models, seed; more keys kept as is)
    meta.json          Meta            run id (12 hex digits), run key, grid id, store, code, device, host, pid, times
    heartbeat.json     Heartbeat       host, pid, the process's start, interval, time of the last beat
    steps.jsonl        Step per line   step, name, value, elapsed
    artifacts.json     kind -> ArtifactEntry   kinds are names [a-z0-9_]+, paths relative, sha256 hex
    metrics.json       list of Metric  [split, name, value], value a finite number
    predictions.jsonl  Prediction per line
    status.json        Status          status, error, finish time, sha256 of every file above

Every model is strict (no coercion: "1" is not 1) and, but for config and meta, closed (an unknown key is
refused). `problem(exc)` turns a validation error into the few words a one-line error needs.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

RUN_ID = re.compile(r"[0-9a-f]{12}")  # layout.create_run_folder: uuid4().hex[:12]
KIND = re.compile(r"[a-z0-9_]+")
DIGESTED = ("config.json", "meta.json", "steps.jsonl", "artifacts.json", "metrics.json", "predictions.jsonl")
TERMINAL = ("finished", "failed", "interrupted")
INT32 = 2**31 - 1

# Limits beyond which `harness import` refuses a folder (docs/architecture.md §7).
MAX_JSON_BYTES = 64 * 2**20  # config, meta, artifacts, metrics, status: read whole
MAX_LINE_BYTES = 4 * 2**20  # one line of predictions.jsonl or steps.jsonl
MAX_LINES_BYTES = 4 * 2**30  # predictions.jsonl, steps.jsonl: streamed


def _time(value: str) -> str:
    try:
        parsed = dt.datetime.fromisoformat(value)
        parsed.astimezone()
    except (ValueError, OverflowError, OSError):
        raise ValueError("not an ISO time") from None
    return value


def _run_id(value: str) -> str:
    if not RUN_ID.fullmatch(value):
        raise ValueError("not a run id (12 hex digits)")
    return value


def _kind(value: str) -> str:
    if not KIND.fullmatch(value):
        raise ValueError("artifact kind must be a name of a-z, 0-9 and _")
    return value


Time = Annotated[str, AfterValidator(_time)]
RunId = Annotated[str, AfterValidator(_run_id)]
Kind = Annotated[str, AfterValidator(_kind)]
Name = Annotated[str, Field(min_length=1, max_length=1000)]
Int32 = Annotated[int, Field(ge=-INT32 - 1, le=INT32)]
Count = Annotated[int, Field(ge=0, le=INT32)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]

STRICT = ConfigDict(strict=True, extra="forbid")
OPEN = ConfigDict(strict=True, extra="allow")


class RunConfigFile(BaseModel):
    model_config = OPEN
    strategy: Name
    dataset: Name
    embedder: Name
    generator: Name
    seed: Int32


class Meta(BaseModel):
    model_config = OPEN
    run_id: RunId
    run_key: Name
    grid_id: Name | None = None
    store: str | None = None
    git_sha: str | None = None
    harness_version: str | None = None
    packages: dict[str, str] | None = None
    device: str | None = None
    device_count: Count | None = None
    host: str | None = None
    pid: Count | None = None
    created_at: Time | None = None
    started_at: Time | None = None
    attempts: Count | None = None


class Heartbeat(BaseModel):
    model_config = STRICT
    host: str
    pid: Count
    pid_start: int | None = None  # the process's start (clock ticks since boot): tells a reused pid apart
    interval: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    time: Finite


class Step(BaseModel):
    model_config = STRICT
    step: Int32
    name: Name
    value: float | None  # a training log may hold a diverged (NaN) loss: stored as it is
    elapsed: Finite


class ArtifactEntry(BaseModel):
    model_config = STRICT
    path: Name
    sha256: Sha256


class Prediction(BaseModel):
    model_config = STRICT
    split: Name
    example_id: Name
    question: str
    prediction: str
    golds: list[str]
    gold_passage_ids: list[str]
    retrieved_ids: list[str]
    em: Finite
    f1: Finite
    hit: Finite | None
    answer_hit: Finite


class Status(BaseModel):
    model_config = STRICT
    status: Literal["finished", "failed", "interrupted"]
    error: str | None
    finished_at: Time
    files: dict[Literal[DIGESTED], Sha256]  # type: ignore[valid-type]


Metric = tuple[Name, Name, Finite]
METRICS = TypeAdapter(list[Metric], config=ConfigDict(strict=True))
ARTIFACTS = TypeAdapter(dict[Kind, ArtifactEntry], config=ConfigDict(strict=True))


def problem(exc: ValidationError) -> str:
    """The first thing wrong, as `where: what (got ...)`, short enough for one line."""
    error = exc.errors(include_url=False)[0]
    where = ""
    for part in error["loc"]:
        where += f"[{part}]" if isinstance(part, int) else f".{part}" if where else str(part)
    where = where or "top level"
    got = repr(error.get("input"))
    got = got if len(got) <= 60 else got[:57] + "..."
    message = error["msg"].replace("Value error, ", "")
    if error["type"] == "missing":
        return f"field '{where}' is missing"
    return f"field '{where}': {message} (got {got})"
