"""Run one resolved config: look up plugins, load data and models, fit, evaluate, store.

    CLI -> RunConfig -> plugins -> dataset + corpus -> index (cached) -> strategy.fit(ctx) -> evaluate
        -> run folder finalised -> the store ingests it

`execute` is the driver's side (skip check, folder, store); `run_in_folder` is the work, which writes only
its run folder (harness.runfolder) and is what a worker on a cluster runs.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import random
import socket
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness import __version__, env, plugins
from harness.artifacts import stored_config
from harness.config import RunConfig, cache_dir, git_sha
from harness.context import FitContext, parse_strategy_options
from harness.distributed import (
    broadcast_from_main,
    generator_sharding,
    main_process_first,
    shard_generator,
    start_accelerator,
)
from harness.errors import Terminated, UserError, interrupt_behind, raise_pending_interrupt
from harness.evaluation import evaluate
from harness.generation import Generator
from harness.gpu import check_run_devices
from harness.pipeline import RagPipeline
from harness.retrieval import build_or_load_index, index_params
from harness.runfolder import RunFolder, now_iso, read_finished
from harness.silver import with_silver_labels
from harness.splits import limit_corpus
from harness.store import Store
from harness.strategy import resolve_defaults
from harness.timing import Timer, device_description, peak_memory_mb, pick_device
from harness.types import DatasetOptions, ModelOptions, RagDataset

PACKAGES = ("torch", "transformers", "sentence-transformers", "peft", "faiss-cpu", "duckdb", "rag-harness")


class StrategyFailed(Exception):
    """A strategy raised during fit; the run is stored as failed and the message names the plugin."""

    exit_code = 1


@dataclass
class Resolved:
    strategy_cls: Any
    strategy_plugin: str
    dataset_spec: Any
    embedder_spec: Any
    generator_spec: Any
    options: Any
    config: RunConfig  # the config with the strategy's defaults (and the harness's) filled in: what runs and is stored


@dataclass
class RunOutcome:
    run_id: str
    status: str  # finished | skipped | worker (a process of a launched run other than the main one: it reports nothing)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def resolve(cfg: RunConfig) -> Resolved:
    """Look every name up (clear error with the known names and a close match), parse strategy options, and
    fill the defaults the user left unset into the config (`Resolved.config`: what runs and is stored)."""
    strategies = plugins.strategies()
    strategy_cls = strategies.get(cfg.strategy)
    if problems := strategies.problems.get(cfg.strategy):
        raise UserError(f"strategy '{cfg.strategy}' (plugin {strategies.owners[cfg.strategy]}) does not satisfy the "
                        f"strategy contract (harness/strategy.py): missing {', '.join(problems)}")
    options = parse_strategy_options(strategy_cls, cfg.strategy_options)
    models = plugins.models()
    return Resolved(
        strategy_cls=strategy_cls,
        strategy_plugin=strategies.owners[cfg.strategy],
        dataset_spec=plugins.datasets().get(cfg.dataset),
        embedder_spec=models["embedder"].get(cfg.embedder),
        generator_spec=models["generator"].get(cfg.generator),
        options=options,
        config=resolve_defaults(cfg, strategy_cls, options),
    )


def load_dataset(cfg: RunConfig, resolved: Resolved) -> RagDataset:
    dataset = resolved.dataset_spec.load(DatasetOptions(data_dir=cfg.data_dir, limit=cfg.limit))
    if cfg.corpus_limit:
        dataset = limit_corpus(dataset, cfg.corpus_limit)
    needs_labels = resolved.strategy_cls.needs_context_labels and not cfg.silver_labels
    if needs_labels and not dataset.has_context_labels:
        raise UserError(
            f"strategy '{cfg.strategy}' needs context labels (gold passage ids) and dataset '{cfg.dataset}' has none; "
            "pick a strategy that learns without them (e.g. rag_token, two_phase), or label them with --silver-labels N"
        )
    if not dataset.train and resolved.strategy_cls.learning_rates:  # a strategy that trains nothing needs no train split
        raise UserError(f"dataset '{cfg.dataset}' has no training examples")
    return dataset


def configure_torch(seed: int) -> None:
    torch.set_num_threads(env.threads())
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_pipeline(cfg: RunConfig, resolved: Resolved, dataset: RagDataset, device: str,
                   accelerator=None) -> RagPipeline:
    quantize = "4bit" if cfg.quantize == "4bit" else None  # "none" and unset load full-width weights
    if quantize and generator_sharding(accelerator):
        raise UserError("--quantize 4bit with the generator sharded (FSDP): shard full-width weights, or quantize "
                        "without FSDP")
    sharded = generator_sharding(accelerator)
    # the main process loads first: a model built or converted into the cache once, not by every process at once
    with main_process_first(accelerator):
        embedder = resolved.embedder_spec.load(ModelOptions(device=device))
        # a generator to shard is read into host memory, not onto a device it may not fit on
        model, tokenizer = resolved.generator_spec.load(ModelOptions(device="cpu" if sharded else device,
                                                                     quantize=quantize))
    if sharded:  # the device's dtype (bf16 on a bf16 GPU), then 1/N of the weights onto each process's device
        from harness.gpu import generator_dtype, probe

        model = shard_generator(model.to(generator_dtype(probe(device))), accelerator)
    index = build_or_load_index(embedder, dataset.corpus, index_params(cfg), accelerator=accelerator)
    return RagPipeline(embedder, embedder, index, dataset.corpus, Generator(model, tokenizer, sharded=sharded), cfg.k)


def run_metadata(device: str, accelerator=None) -> dict:
    """Where and with what this attempt runs: code, packages, device (written by the process that works)."""
    name, count = device_description(device)
    processes = 1 if accelerator is None else accelerator.num_processes  # one device per process
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {"git_sha": git_sha(), "harness_version": __version__, "packages": versions, "device": name,
            "device_count": processes if count and accelerator is not None else count, "processes": processes,
            "generator_sharded": generator_sharding(accelerator)}


def check_environment(store: Store) -> Path:
    """Every HARNESS_* setting a run reads, checked before anything is stored; returns the run folders' root."""
    env.threads(), env.progress_seconds(0), env.shipped_vectors(), env.fsdp()
    cache_dir()
    return runs_dir(store)


def runs_dir(store: Store) -> Path:
    """HARNESS_RUNS, or `harness-runs/` beside the store: where run folders go; checked to be a usable folder."""
    default = Path(store.path).resolve().parent / "harness-runs" if store.path != ":memory:" else Path("harness-runs")
    return env.folder_from_env("HARNESS_RUNS", default, "run folders folder")


def artifacts_root(store: Store) -> Path:
    """Where runs stored before run folders keep their artifacts (HARNESS_ARTIFACTS, or `harness-artifacts`
    beside the store): read only for rows without a run folder."""
    default = Path(store.path).resolve().parent / "harness-artifacts" if store.path != ":memory:" else Path("harness-artifacts")
    return env.folder_from_env("HARNESS_ARTIFACTS", default, "artifacts folder")


def create_run_folder(cfg: RunConfig, root: Path, grid_id: str | None = None) -> RunFolder:
    """A new run folder under `root` with the resolved config and what identifies the run."""
    run_id = uuid.uuid4().hex[:12]
    meta = {"run_id": run_id, "run_key": cfg.run_key(), "grid_id": grid_id, "git_sha": git_sha(),
            "harness_version": __version__, "created_at": now_iso()}
    return RunFolder.create(root / run_id, cfg.to_dict(), meta)


def check_generator_sharding(resolved: Resolved, accelerator) -> None:
    """Under FSDP, only a strategy that declares its generator calls in step (`sharded_generator`) runs: any
    other could leave one process waiting for the others' weights forever."""
    cls = resolved.strategy_cls
    if generator_sharding(accelerator) and not getattr(cls, "sharded_generator", False):
        raise UserError(f"strategy '{cls.name}' does not run with the generator sharded (FSDP): its generator "
                        "calls are not in step across processes; launch it without FSDP (data parallel, "
                        "--quantize 4bit to fit a large generator)")


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
    path = str(create_run_folder(cfg, root, grid_id).path.resolve()) if main else None
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
    cfg = stored_config(folder.config)
    resolved = resolved or resolve(cfg)
    dataset = dataset or load_dataset(cfg, resolved)
    configure_torch(cfg.seed)
    device = str(accelerator.device) if accelerator is not None else pick_device()
    if main:
        folder.start_attempt(run_metadata(device, accelerator))
    ctx = None
    with folder.heartbeat() if main else contextlib.nullcontext():
        try:
            timer = Timer()
            pipeline = build_pipeline(cfg, resolved, dataset, device, accelerator)
            dataset, silver = with_silver_labels(pipeline, dataset, cfg.silver_labels) if cfg.silver_labels else (dataset, None)
            ctx = FitContext(pipeline, dataset, cfg, resolved.options, device, folder.path.name, folder, timer,
                             accelerator=accelerator)
            with timer.section("fit"):
                _fit(resolved, ctx)
            ctx.flush_log()
            metrics, predictions = _evaluate_all(ctx, timer)
            metrics += silver.metrics() if silver else []
            if main:
                write_cards_or_warn(folder, metrics, cfg, resolved)
        except (KeyboardInterrupt, Exception) as exc:
            _end_run(ctx, folder, main, *how_it_ended(exc))
            raise
        if main:
            folder.finalise("finished", metrics=metrics, predictions=predictions)
    return "finished"


def write_cards_or_warn(folder: RunFolder, metrics: list, cfg: RunConfig, resolved: Resolved) -> None:
    """Model cards into the run's artifact folders before it is finalised (harness.model_card), so the
    registered sha256 covers them; the run is finalised either way."""
    from harness.model_card import write_model_cards

    try:
        write_model_cards(folder, metrics, cfg, resolved)
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


def _evaluate_all(ctx: FitContext, timer: Timer) -> tuple[list[tuple[str, str, float]], list[dict]]:
    cfg = ctx.config
    metrics: list[tuple[str, str, float]] = []
    predictions: list[dict] = []
    for split in cfg.eval_splits:
        with timer.section(f"eval_{split}"):
            result = evaluate(ctx.pipeline, ctx.dataset.split(split), split, cfg.max_new_tokens, cfg.eval_batch_size,
                              cfg.seed, ctx.accelerator)
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
