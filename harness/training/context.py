"""What a strategy's `fit(ctx)` gets: the pipeline, the data, the config, logging, artifacts, refresh."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.config import RunConfig
from harness.errors import raise_pending_interrupt
from harness.pipeline import RagPipeline
from harness.retrieval.index import PassageIndex, encode_corpus, encode_corpus_sharded, index_params
from harness.runtime import distributed
from harness.runtime.progress import progress
from harness.runtime.timing import Timer
from harness.store.folder import RunFolder
from harness.training.flops import FlopCounter
from harness.types import RagDataset

LOG_FLUSH_SECONDS = 10.0


@dataclass
class FitContext:
    pipeline: RagPipeline
    dataset: RagDataset
    config: RunConfig
    options: Any  # the strategy's Options dataclass instance (or None)
    device: str
    run_id: str
    folder: RunFolder  # everything the run writes goes here; the store is never open while it works
    timer: Timer = field(default_factory=Timer)
    accelerator: Any = None  # an accelerate.Accelerator when launched on several processes (harness.distributed)
    # counters the harness stores as cost metrics
    trained_tokens: int = 0
    index_refreshes: int = 0
    refresh_seconds: float = 0.0
    train_flops: float = 0.0  # estimated training FLOPs, all processes (harness/training/flops.py)
    flops: FlopCounter = field(default_factory=FlopCounter)  # this process's forwards, taken step by step
    _log_buffer: list = field(default_factory=list)
    _last_flush: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        for model in (self.pipeline.query_encoder, self.pipeline.passage_encoder, self.pipeline.generator.model):
            self.flops.watch(model)
        if self.generator_sharded:  # the share of the generator's weights this process holds (1/N under FSDP)
            self.log(0, generator_weights_held=distributed.held_fraction(self.pipeline.generator.model))

    @property
    def train(self):
        return self.dataset.train

    @property
    def dev(self):
        return self.dataset.dev

    # -- what a run on several processes needs (all plain PyTorch with one process) ---------------------
    @property
    def is_main_process(self) -> bool:
        """The process that writes logs and artifacts (the only one, unless launched on several)."""
        return self.accelerator is None or self.accelerator.is_main_process

    def shard(self, batch: Sequence) -> list:
        """This process's part of a global batch: the whole batch with one process."""
        return distributed.shard(self.accelerator, batch)

    def shard_bounds(self, n: int) -> tuple[int, int]:
        """[start, stop) of this process's shard of n rows: (0, n) with one process."""
        if self.accelerator is None:
            return 0, n
        return distributed.shard_bounds(n, self.accelerator.num_processes, self.accelerator.process_index)

    @property
    def generator_sharded(self) -> bool:
        """The generator's weights are sharded over the processes (FSDP): every process calls it in step."""
        return self.pipeline.generator.sharded

    def lockstep_calls(self, batch_size: int, chunk: int) -> int:
        """Chunk calls every process makes for one global batch when the generator is sharded (those of the
        largest shard, `chunk` examples at a time, 0 = a whole shard); 0 otherwise (no process waits)."""
        if not self.generator_sharded:
            return 0
        return distributed.lockstep_calls(self.accelerator, batch_size, chunk)

    def backward(self, loss: torch.Tensor) -> None:
        """Back-propagate this process's share of a step's loss."""
        if self.accelerator is None:
            loss.backward()
        else:
            self.accelerator.backward(loss)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Sum the gradients over the processes (no-op for one), then apply the optimizer's update."""
        distributed.sum_gradients(self.accelerator, optimizer)
        optimizer.step()

    def sum_over_processes(self, value: float | list[float]) -> float | list[float]:
        """Per-process shares (loss, tokens, counts) summed over the processes: the global batch's values."""
        return distributed.sum_over_processes(self.accelerator, value)

    def all_rows(self, local: torch.Tensor) -> torch.Tensor:
        """Every process's rows of `local` in batch order; this process's keep their grad (in-batch negatives)."""
        return distributed.all_rows(self.accelerator, local)

    def gather_in_order(self, items: list) -> list:
        """Every process's items, concatenated in shard order."""
        return distributed.gather_in_order(self.accelerator, items)

    def log(self, step: int, **scalars: float) -> None:
        """Record training scalars (loss, lr, acceptance, ...) for `step`; appended to the run folder's
        steps.jsonl in batches by the main process (the others' scalars are the same global values)."""
        if not self.is_main_process:
            return
        elapsed = self.timer.elapsed()
        self._log_buffer += [(step, name, float(value), elapsed) for name, value in scalars.items()]
        if time.monotonic() - self._last_flush > LOG_FLUSH_SECONDS:
            self.flush_log()

    def flush_log(self) -> None:
        if not self.is_main_process:
            return
        rows, self._log_buffer = self._log_buffer, []
        self._last_flush = time.monotonic()
        self.folder.append_steps(rows)

    def progress(self, iterable: Iterable, desc: str, total: int | None = None):
        """Training steps with a bar on a terminal, plain lines in a log (harness/runtime/progress.py). With
        `--max-train-flops`, no batch is handed out once the run has spent its budget (the loop ends as if
        the data had run out). A Ctrl-C/SIGTERM that a library swallowed is raised before the next step."""
        return progress(self._within_budget(iterable, desc, total), desc, total, unit="steps")

    def _within_budget(self, iterable: Iterable, desc: str, total: int | None):
        done = 0
        for item in iterable:
            raise_pending_interrupt()  # a Ctrl-C/SIGTERM a library's catch-all swallowed still ends the run
            if self.budget_spent():
                self.log(0, stopped_at_flop_budget=self.train_flops)
                self._say_budget_spent(desc, done, total)
                return
            done += 1
            yield item

    def _say_budget_spent(self, desc: str, done: int, total: int | None) -> None:
        """One line where the budget cut a loop (a later loop of a strategy may get none of it)."""
        if self.is_main_process:
            of = f" of {total}" if total is not None else ""
            print(f"[budget] {desc}: stopped after {done}{of} steps, the training-FLOP budget is spent "
                  f"({self.train_flops:.3g} of --max-train-flops {self.config.max_train_flops:.3g})",
                  file=sys.stderr, flush=True)

    def budget_spent(self) -> bool:
        budget = self.config.max_train_flops
        return budget is not None and self.train_flops >= budget

    def take_train_flops(self) -> float:
        """The FLOPs counted since the last take, summed over the processes, added to `train_flops` (the
        run's total, the same number on every process, so every process stops at the same step)."""
        flops = self.sum_over_processes(self.flops.take())
        self.train_flops += flops
        return flops

    def refresh_index(self, encoder=None) -> PassageIndex:
        """Re-encode the corpus with `encoder` (default: the passage tower) and swap the new index in.

        With several processes each encodes its shard of the corpus and every process builds the same index.
        """
        start = time.perf_counter()
        encoder = encoder or self.pipeline.passage_encoder
        if self.accelerator is None:
            vectors = encode_corpus(encoder, self.dataset.corpus, desc="re-indexing")
        else:
            vectors = encode_corpus_sharded(encoder, self.dataset.corpus, self.accelerator, desc="re-indexing")
        self.pipeline.index = PassageIndex.build(vectors, index_params(self.config))
        self.index_refreshes += 1
        self.refresh_seconds += time.perf_counter() - start
        return self.pipeline.index

    def save_artifact(self, kind: str, save: Callable[[Path], None]) -> Path:
        """Write an artifact with `save(folder)` into a temp dir, rename it into the run folder's
        artifacts/<kind>, register its sha256 (path relative to the run folder).

        Only the main process writes (the models are equal on every process); the others get the path.
        """
        if not self.is_main_process:
            return self.folder.path / "artifacts" / kind
        return self.folder.save_artifact(kind, save)


