"""Which experiment trackers get each finished run, and the shapes they share (params, metrics, history).

Trackers are built-in plugins on `run_finished` (plugins/trackers/): `mlflow` and `wandb`. They are off
unless named: `harness run --track mlflow` or `HARNESS_TRACKERS=mlflow,wandb` (the option sets the variable,
so grid cells and workers inherit it). Each reads its own settings the usual way (MLFLOW_TRACKING_URI,
MLFLOW_EXPERIMENT_NAME; WANDB_PROJECT, WANDB_MODE, WANDB_DIR, ...). A tracker that fails never loses the
run: it is already stored; the warning names the command that exports it again.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator

from harness.errors import UserError, raise_pending_interrupt

ENV = "HARNESS_TRACKERS"
TRACKERS = {"mlflow": "mlflow", "wandb": "wandb"}  # tracker name -> the module it needs (and the extra's name)


def parse_trackers(text: str | None, source: str = ENV) -> list[str]:
    names = [n.strip().lower() for n in (text or "").split(",") if n.strip()]
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise UserError(f"{source}: unknown tracker '{unknown[0]}'; trackers: {', '.join(TRACKERS)}")
    return names


def enabled_trackers() -> list[str]:
    return parse_trackers(os.environ.get(ENV))


def is_enabled(name: str) -> bool:
    return name in enabled_trackers()


def enable_trackers(names: list[str], source: str = "--track") -> None:
    """Check `names` and those already in $HARNESS_TRACKERS are known and installed (before any run starts),
    then turn them on for this process and its children."""
    wanted = {name: source for name in parse_trackers(",".join(names), source)}
    wanted.update({name: ENV for name in enabled_trackers() if name not in wanted})
    for name, where in wanted.items():
        if importlib.util.find_spec(TRACKERS[name]) is None:
            raise UserError(f"{where} {name}: the {name} package is not installed; pip install 'rag-harness[{name}]'")
    if wanted:
        os.environ[ENV] = ",".join(wanted)


def flat_params(config: dict) -> dict[str, str]:
    """The resolved config as tracker params: strategy options as `strategy_options.KEY`, lists comma-joined."""
    params = {}
    for key, value in config.items():
        if isinstance(value, dict):
            params.update({f"{key}.{k}": _text(v) for k, v in value.items()})
        else:
            params[key] = _text(value)
    return params


def _text(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def metric_name(split: str, name: str) -> str:
    """`test/recall_at_5` for split test, metric recall@5 (trackers do not take '@' in names)."""
    return f"{split}/{name.replace('@', '_at_')}"


def final_metrics(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    return {metric_name(split, name): value for split, values in metrics.items() for name, value in values.items()
            if value is not None}


def steps_by_step(steps: list[dict]) -> dict[int, dict[str, float]]:
    """The step log as {step: {"train/NAME": value}}, steps ascending (the history trackers plot)."""
    history: dict[int, dict[str, float]] = {}
    for row in steps:
        if row["value"] is not None:
            history.setdefault(int(row["step"]), {})[f"train/{row['name']}"] = row["value"]
    return dict(sorted(history.items()))


@contextlib.contextmanager
def tracker_failure_warning(tracker: str, run_id: str) -> Iterator[None]:
    """A tracker's error becomes one warning line: the run itself is stored and stays so."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - any tracker failure (network, auth, disk) is reported, not raised
        raise_pending_interrupt(exc)  # a signal is not a tracker failure
        print(f"warning: {tracker} export of run {run_id} failed: {type(exc).__name__}: {exc}; the run is stored; "
              f"retry with `harness export {run_id} --track {tracker}`", file=sys.stderr)
