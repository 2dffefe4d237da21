"""One run's life: skip it if stored, give it a folder, fit, evaluate, finalise, ingest into the store.

    RunConfig -> resolve (runner/assemble.py) -> run folder (store/layout.py) -> strategy.fit(ctx)
        -> the harness evaluates (harness/evaluation.py) -> folder finalised -> the store ingests it

`execute` is the driver's side (skip check, folder, store); `run_in_folder` is the work, which writes only
its run folder (harness/store/folder.py) and is what a worker on a cluster runs.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from harness import env, plugins
from harness.config import RunConfig, cache_dir, data_digest
from harness.errors import StrategyFailed, Terminated, UserError, interrupt_behind, raise_pending_interrupt
from harness.evaluation import GeneratorSnapshot, RetentionProbe, evaluate, retention_metrics, snapshot_generator
from harness.runner.assemble import (
    Resolved,
    build_pipeline,
    check_generator_sharding,
    configure_torch,
    load_dataset,
    load_retention_probe,
    resolve,
    run_metadata,
)
from harness.runner.model_card import write_model_cards
from harness.runtime.distributed import broadcast_from_main, start_accelerator
from harness.runtime.gpu import check_run_devices
from harness.runtime.timing import Timer, device_description, peak_memory_mb, pick_device
from harness.store.db import Store
from harness.store.folder import RunFolder, read_finished
from harness.store.layout import create_run_folder, runs_dir
from harness.training.context import FitContext
from harness.training.silver import with_silver_labels
from harness.types import RagDataset


@dataclass
class RunOutcome:
    run_id: str
    status: str  # finished | skipped | worker (a process of a launched run other than the main one: it reports nothing)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def check_environment(store: Store) -> Path:
    """Every HARNESS_* setting a run reads, checked before anything is stored; returns the run folders' root."""
    env.threads(), env.progress_seconds(0), env.shipped_vectors(), env.fsdp()
    cache_dir()
    return runs_dir(store)


def execute(cfg: RunConfig, store: Store, force: bool = False, grid_id: str | None = None) -> RunOutcome:
    """Run `cfg` end to end: its folder is written while it works, then ingested into the store.
    Bad input raises UserError before anything is stored; the store is not open while the model works.

    Launched on several processes (`accelerate launch`, `harness run --processes N`), every process trains
    and evaluates its shards; only the main process writes the run folder and touches the store.
    """
    resolved = resolve(cfg)
    cfg = resolved.config
    check_run_devices(cfg)
    accelerator = start_accelerator()
    check_generator_sharding(resolved, accelerator)
    main = accelerator is None or accelerator.is_main_process
    run_key = cfg.run_key()
    existing = broadcast_from_main(accelerator, store.finished_run_with_key(run_key) if main and not force else None)
    if existing:
        return RunOutcome(existing, "skipped" if main else "worker", store.run_metrics(existing) if main else {})
    root = check_environment(store)
    dataset = load_dataset(cfg, resolved)
    path = str(create_run_folder(cfg, root, grid_id, store).path.resolve()) if main else None
    folder = RunFolder(Path(broadcast_from_main(accelerator, path)))
    run_id = folder.path.name
    if main:
        store.start_run(run_id, run_key, cfg.to_dict(), {**folder.meta, "folder": str(folder.path),
                                                          "host": socket.gethostname(), "pid": os.getpid()})
    try:
        run_in_folder(folder, resolved, dataset, accelerator)
    finally:
        if main and folder.status() is not None:
            store.import_runs([read_finished(folder.path)])
    if not main:
        return RunOutcome(run_id, "worker")
    outcome = RunOutcome(run_id, "finished", store.run_metrics(run_id))
    plugins.pm.hook.run_finished(run={"id": run_id, "config": cfg.to_dict(), "metrics": outcome.metrics,
                                      "db": store.path, "folder": str(folder.path)})
    return outcome


def run_in_folder(folder: RunFolder, resolved: Resolved | None = None, dataset: RagDataset | None = None,
                  accelerator=None) -> str:
    """Fit and evaluate the config stored in `folder`, writing everything there and finalising it; never
    opens the store (a worker on a cluster runs exactly this). Returns the status; a failure is finalised
    in the folder first, then re-raised. With several processes only the main one writes the folder."""
    main = accelerator is None or accelerator.is_main_process
    cfg = RunConfig.from_stored(folder.config)
    resolved = resolved or resolve(cfg)
    dataset = dataset or load_dataset(cfg, resolved)
    configure_torch(cfg.seed)
    device = str(accelerator.device) if accelerator is not None else pick_device()
    if main:
        folder.start_attempt({**run_metadata(device, accelerator), "data_digest": data_digest(cfg.data_dir)})
    ctx = None
    with folder.heartbeat() if main else contextlib.nullcontext():
        try:
            timer = Timer()
            pipeline = build_pipeline(cfg, resolved, dataset, device, accelerator)
            dataset, silver = with_silver_labels(pipeline, dataset, cfg.silver_labels) if cfg.silver_labels else (dataset, None)
            ctx = FitContext(pipeline, dataset, cfg, resolved.options, device, folder.path.name, folder, timer,
                             accelerator=accelerator)
            probe, before = _retention_before(cfg, dataset, pipeline)
            with timer.section("fit"):
                _fit(resolved, ctx)
            ctx.flush_log()
            metrics, predictions = _evaluate_all(ctx, timer)
            metrics += _retention_after(cfg, pipeline, probe, before)
            metrics += silver.metrics() if silver else []
            if main:
                write_cards_or_warn(folder, metrics, cfg, resolved, base_embedder_path(pipeline), predictions)
        except (KeyboardInterrupt, Exception) as exc:
            _end_run(ctx, folder, main, *how_it_ended(exc))
            raise
        if main:
            folder.finalise("finished", metrics=metrics, predictions=predictions)
    return "finished"


def base_embedder_path(pipeline) -> str:
    """Where the base embedder was loaded from (a folder or hub id): what a model card's script loads."""
    try:
        return pipeline.query_encoder[0].auto_model.config._name_or_path
    except (AttributeError, IndexError, KeyError, TypeError):
        return ""


def write_cards_or_warn(folder: RunFolder, metrics: list, cfg: RunConfig, resolved: Resolved, embedder_path: str = "",
                        predictions: list[dict] | None = None) -> None:
    """Model cards into the run's artifact folders before it is finalised (runner/model_card.py), so the
    registered sha256 covers them; the run is finalised either way. The card's script reproduces one of
    `predictions` (a test one where there is one)."""
    example = next((p for p in predictions or [] if p["split"] == "test"), (predictions or [{}])[0])
    try:
        write_model_cards(folder, metrics, cfg, resolved, embedder_path, example)
    except Exception as exc:  # noqa: BLE001 - a card is documentation: its failure must not undo a finished run
        raise_pending_interrupt(exc)  # ...but a signal that came out as its error ends the run
        print(f"warning: model cards of run {folder.path.name} not written: {type(exc).__name__}: {exc}", file=sys.stderr)


def how_it_ended(exc: BaseException) -> tuple[str, str]:
    """The status and error stored for a run that `exc` ended: a signal (even one that came out as another
    exception, errors.interrupt_behind) is `interrupted`, anything else `failed` with its message."""
    interrupt = interrupt_behind(exc)
    if interrupt is not None:
        why = "terminated by SIGTERM" if isinstance(interrupt, Terminated) else "interrupted by the user (Ctrl-C)"
        return "interrupted", why
    if isinstance(exc, (UserError, StrategyFailed)):
        return "failed", str(exc)
    return "failed", f"{type(exc).__name__}: {exc}"


def _end_run(ctx: FitContext | None, folder: RunFolder, main: bool, status: str, error: str) -> None:
    """Record how a run ended in its folder (the main process only), after flushing its step log."""
    if main:
        _flush_quietly(ctx)
        folder.finalise(status, error)


def _fit(resolved: Resolved, ctx: FitContext) -> None:
    strategy = resolved.strategy_cls()
    try:
        strategy.fit(ctx)
    except (KeyboardInterrupt, UserError):
        raise
    except Exception as exc:
        raise StrategyFailed(
            f"strategy '{resolved.strategy_cls.name}' (plugin {resolved.strategy_plugin}) raised "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _retention_before(cfg: RunConfig, dataset: RagDataset, pipeline) -> tuple[RetentionProbe | None, GeneratorSnapshot | None]:
    """With `--eval-modes retention`: the held-out probe and the generator's scores on it before fit."""
    if "retention" not in cfg.eval_modes:
        return None, None
    probe = load_retention_probe(cfg, dataset)
    return probe, snapshot_generator(pipeline.generator, probe, cfg.max_new_tokens, cfg.eval_batch_size)


def _retention_after(cfg: RunConfig, pipeline, probe: RetentionProbe | None,
                     before: GeneratorSnapshot | None) -> list[tuple[str, str, float]]:
    if probe is None or before is None:
        return []
    after = snapshot_generator(pipeline.generator, probe, cfg.max_new_tokens, cfg.eval_batch_size)
    return [("retention", name, value) for name, value in retention_metrics(before, after, cfg.seed).items()]


def _evaluate_all(ctx: FitContext, timer: Timer) -> tuple[list[tuple[str, str, float]], list[dict]]:
    cfg = ctx.config
    metrics: list[tuple[str, str, float]] = []
    predictions: list[dict] = []
    for split in cfg.eval_splits:
        with timer.section(f"eval_{split}"):
            result = evaluate(ctx.pipeline, ctx.dataset.split(split), split, cfg.max_new_tokens, cfg.eval_batch_size,
                              cfg.seed, ctx.accelerator, tuple(cfg.eval_modes))
        metrics += [(split, name, value) for name, value in result.metrics.items()]
        metrics.append((split, "eval_seconds", timer.seconds[f"eval_{split}"]))
        predictions += result.predictions
    fit_seconds = timer.seconds.get("fit", 0.0)
    _, gpus = device_description(ctx.device)
    if gpus and ctx.accelerator is not None:
        gpus = ctx.accelerator.num_processes
    costs = {
        "fit_seconds": fit_seconds,
        "gpu_hours": fit_seconds * gpus / 3600,
        "peak_memory_mb": peak_memory_mb(ctx.device),
        "trained_tokens": float(ctx.trained_tokens),
        "index_refreshes": float(ctx.index_refreshes),
        "refresh_seconds": ctx.refresh_seconds,
        "train_flops": ctx.train_flops,
    }
    metrics += [("cost", name, value) for name, value in costs.items()]
    return metrics, predictions


def _flush_quietly(ctx: FitContext | None) -> None:
    if ctx is not None:
        try:
            ctx.flush_log()
        except Exception:
            pass
