"""Run one resolved config: look up plugins, load data and models, fit, evaluate, store.

    CLI -> RunConfig -> plugins -> dataset + corpus -> index (cached) -> strategy.fit(ctx) -> evaluate -> store
"""

from __future__ import annotations

import importlib.metadata
import os
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness import __version__, plugins
from harness.config import RunConfig, git_sha
from harness.context import FitContext, parse_strategy_options
from harness.datautil import limit_corpus
from harness.errors import UserError
from harness.evaluation import evaluate
from harness.generation import Generator
from harness.pipeline import RagPipeline
from harness.retrieval import IndexParams, build_or_load_index
from harness.store import Store
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


@dataclass
class RunOutcome:
    run_id: str
    status: str  # finished | skipped
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def resolve(cfg: RunConfig) -> Resolved:
    """Look every name up (clear error with the known names and a close match), parse strategy options."""
    strategies = plugins.strategies()
    strategy_cls = strategies.get(cfg.strategy)
    models = plugins.models()
    return Resolved(
        strategy_cls=strategy_cls,
        strategy_plugin=strategies.owners[cfg.strategy],
        dataset_spec=plugins.datasets().get(cfg.dataset),
        embedder_spec=models["embedder"].get(cfg.embedder),
        generator_spec=models["generator"].get(cfg.generator),
        options=parse_strategy_options(strategy_cls, cfg.strategy_options),
    )


def load_dataset(cfg: RunConfig, resolved: Resolved) -> RagDataset:
    dataset = resolved.dataset_spec.load(DatasetOptions(data_dir=cfg.data_dir, limit=cfg.limit))
    if cfg.corpus_limit:
        dataset = limit_corpus(dataset, cfg.corpus_limit)
    if getattr(resolved.strategy_cls, "needs_context_labels", False) and not dataset.has_context_labels:
        raise UserError(
            f"strategy '{cfg.strategy}' needs context labels (gold passage ids) and dataset '{cfg.dataset}' has none; "
            "pick a strategy that learns without them (e.g. rag_token, two_phase)"
        )
    if not dataset.train and resolved.strategy_cls.name != "no_ft":
        raise UserError(f"dataset '{cfg.dataset}' has no training examples")
    return dataset


def configure_torch(seed: int) -> None:
    torch.set_num_threads(int(os.environ.get("HARNESS_THREADS", "2")))
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_pipeline(cfg: RunConfig, resolved: Resolved, dataset: RagDataset, device: str) -> RagPipeline:
    embedder = resolved.embedder_spec.load(ModelOptions(device=device))
    index = build_or_load_index(embedder, dataset.corpus, IndexParams(kind=cfg.index))
    model, tokenizer = resolved.generator_spec.load(ModelOptions(device=device, quantize=cfg.quantize))
    return RagPipeline(embedder, embedder, index, dataset.corpus, Generator(model, tokenizer), cfg.k)


def run_metadata(device: str, grid_id: str | None) -> dict:
    name, count = device_description(device)
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {"git_sha": git_sha(), "harness_version": __version__, "packages": versions, "device": name,
            "device_count": count, "grid_id": grid_id}


def artifacts_root(store: Store) -> Path:
    default = Path(store.path).resolve().parent / "harness-artifacts" if store.path != ":memory:" else Path("harness-artifacts")
    return Path(os.environ.get("HARNESS_ARTIFACTS", default))


def execute(cfg: RunConfig, store: Store, force: bool = False, grid_id: str | None = None) -> RunOutcome:
    """Run `cfg` end to end and store it. Bad input raises UserError before anything is stored."""
    resolved = resolve(cfg)
    run_key = cfg.run_key()
    if not force and (existing := store.finished_run_with_key(run_key)):
        return RunOutcome(existing, "skipped", store.run_metrics(existing))
    dataset = load_dataset(cfg, resolved)
    configure_torch(cfg.seed)
    device = pick_device()
    run_id = uuid.uuid4().hex[:12]
    store.start_run(run_id, run_key, cfg.to_dict(), run_metadata(device, grid_id))
    ctx = None
    try:
        timer = Timer()
        pipeline = build_pipeline(cfg, resolved, dataset, device)
        ctx = FitContext(pipeline, dataset, cfg, resolved.options, device, run_id, store,
                         artifacts_root(store) / run_id, timer)
        with timer.section("fit"):
            _fit(resolved, ctx)
        ctx.flush_log()
        metrics, predictions = _evaluate_all(ctx, timer)
        store.finish_run(run_id, metrics, predictions)
    except KeyboardInterrupt:
        _flush_quietly(ctx)
        store.end_run(run_id, "interrupted", "interrupted by the user (Ctrl-C)")
        raise
    except (UserError, StrategyFailed) as exc:
        _flush_quietly(ctx)
        store.end_run(run_id, "failed", str(exc))
        raise
    except Exception as exc:
        _flush_quietly(ctx)
        store.end_run(run_id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    outcome = RunOutcome(run_id, "finished", store.run_metrics(run_id))
    plugins.pm.hook.run_finished(run={"id": run_id, "config": cfg.to_dict(), "metrics": outcome.metrics})
    return outcome


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
            result = evaluate(ctx.pipeline, ctx.dataset.split(split), split, cfg.max_new_tokens, cfg.eval_batch_size, cfg.seed)
        metrics += [(split, name, value) for name, value in result.metrics.items()]
        metrics.append((split, "eval_seconds", timer.seconds[f"eval_{split}"]))
        predictions += result.predictions
    fit_seconds = timer.seconds.get("fit", 0.0)
    _, gpus = device_description(ctx.device)
    costs = {
        "fit_seconds": fit_seconds,
        "gpu_hours": fit_seconds * gpus / 3600,
        "peak_memory_mb": peak_memory_mb(ctx.device),
        "trained_tokens": float(ctx.trained_tokens),
        "index_refreshes": float(ctx.index_refreshes),
        "refresh_seconds": ctx.refresh_seconds,
    }
    metrics += [("cost", name, value) for name, value in costs.items()]
    return metrics, predictions


def _flush_quietly(ctx: FitContext | None) -> None:
    if ctx is not None:
        try:
            ctx.flush_log()
        except Exception:
            pass
