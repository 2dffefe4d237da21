"""Assembling one run: look its names up, load its data and models, build the pipeline it runs on.

    RunConfig -> resolve (plugins, options, defaults) -> load_dataset -> build_pipeline (models, index)

Used by the run's lifecycle (harness/runner/lifecycle.py), re-evaluation (runner/artifacts.py), `harness
index`, rescoring and the benchmarks: whatever needs a run's pipeline without running it.
"""

from __future__ import annotations

import importlib.metadata
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from harness import env, plugins
from harness.config import RunConfig, git_sha
from harness.data.splits import limit_corpus
from harness.errors import UserError
from harness.evaluation import RetentionProbe
from harness.models.generation import Generator
from harness.pipeline import RagPipeline
from harness.retrieval.index import build_or_load_index, index_params
from harness.runtime.distributed import generator_sharding, main_process_first, shard_generator
from harness.runtime.gpu import generator_dtype, probe
from harness.runtime.timing import device_description
from harness.strategy import parse_strategy_options, resolve_defaults
from harness.types import DatasetOptions, ModelOptions, RagDataset
from harness.version import __version__

PACKAGES = ("torch", "transformers", "sentence-transformers", "peft", "faiss-cpu", "duckdb", "rag-harness")


@dataclass
class Resolved:
    strategy_cls: Any
    strategy_plugin: str
    dataset_spec: Any
    embedder_spec: Any
    generator_spec: Any
    options: Any
    config: RunConfig  # the config with the strategy's defaults (and the harness's) filled in: what runs and is stored


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


RETENTION_SIZE = 64  # held-out passages and questions in the retention probe


def load_retention_probe(cfg: RunConfig, dataset: RagDataset, size: int = RETENTION_SIZE) -> RetentionProbe:
    """Up to `size` passages and `size` questions of `--retention-probe` (a fixed sample: every run of a study
    gets the same probe) that the run does not train on: no training question (by its text), no passage that
    is a training question's gold passage (by its text). The run's own dataset as probe: its dev and test
    questions and its corpus."""
    probe = dataset if cfg.retention_probe == cfg.dataset else plugins.datasets().get(cfg.retention_probe).load(
        DatasetOptions())
    trained_questions = {ex.question.strip().lower() for ex in dataset.train}
    gold_rows = (dataset.corpus.row_of(pid) for ex in dataset.train for pid in ex.gold_passage_ids)
    trained_texts = {dataset.corpus[row].text for row in gold_rows if row is not None}
    rng = random.Random(0)
    rows = rng.sample(range(len(probe.corpus)), min(len(probe.corpus), 4 * size))
    passages = [text for text in (probe.corpus[row].text for row in rows) if text not in trained_texts][:size]
    splits = ("dev", "test") if probe is dataset else ("train", "dev", "test")
    questions = [ex for split in splits for ex in probe.split(split) if ex.question.strip().lower() not in trained_questions]
    return RetentionProbe(passages, rng.sample(questions, min(size, len(questions))))


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


def check_generator_sharding(resolved: Resolved, accelerator) -> None:
    """Under FSDP, only a strategy that declares its generator calls in step (`sharded_generator`) runs: any
    other could leave one process waiting for the others' weights forever."""
    cls = resolved.strategy_cls
    if generator_sharding(accelerator) and not getattr(cls, "sharded_generator", False):
        raise UserError(f"strategy '{cls.name}' does not run with the generator sharded (FSDP): its generator "
                        "calls are not in step across processes; launch it without FSDP (data parallel, "
                        "--quantize 4bit to fit a large generator)")

