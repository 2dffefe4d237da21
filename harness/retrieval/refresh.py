"""The trained passage side: a separate passage tower, and re-indexing the corpus while training continues.

Siriwardhana et al. (2021), rag-end2end §3–4: when the passage encoder E_p trains, the corpus vectors go
stale; re-encoding and re-indexing every N steps would stall training for the whole re-encode, so it runs
beside the training loop and the new index is swapped in when ready.

    with IndexRefresher(ctx, passage_encoder, every=5, mode="background") as refresher:
        for step ...:
            ...one training step...
            refresher.between_steps(step)    # install a finished index; snapshot E_p and start one if due
        refresher.finish(last_step)          # final index from the final E_p (what the harness evaluates)
    # leaving the block stops a worker still running (error or Ctrl-C): never a hang

How it stays correct:
- the worker encodes with a *snapshot* of E_p (deep copy, eval mode, no grad) taken at a step boundary, so
  training keeps updating the live tower while the corpus is encoded with a consistent set of weights;
- the worker builds a new `PassageIndex` off to the side and never touches the pipeline: only the training
  loop installs it, between steps, so one step always sees one index;
- a worker exception is kept and re-raised in the training thread at the next step boundary
  (`RefreshFailed`), so the run fails (stored as failed) instead of training on silently;
- `close()` sets a stop flag the worker checks between encoding batches and joins it; the thread is a daemon,
  so even a worker stuck inside one batch cannot keep the process alive.

`mode="sync"` runs the same work in the training thread (training waits): the comparison point of
bench/bench_refresh.py.

Refresh policies a strategy that trains E_p offers (`--set refresh=...`, `refresh_schedule`):
    background  re-index every `refresh_every` steps beside training (above)
    sync        the same, training waits
    rerank      never re-index while training: each step over-retrieves L candidates from the stale index
                and re-encodes them with the current E_p (`rerank_rows`, harness/training/likelihoods.py),
                B·L passages a step instead of the corpus every `refresh_every` steps
    none        never re-index while training: the stale index's top-k
Every policy re-indexes once with the final E_p after training (unless `final_refresh=false`).
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from harness.retrieval.index import (
    EncodingCancelled,
    IndexParams,
    PassageIndex,
    embedding_dimension,
    encode_corpus,
    index_params,
)
from harness.types import Corpus

REFRESH_MODES = ("background", "sync")  # what the worker does
REFRESH_POLICIES = (*REFRESH_MODES, "rerank", "none")  # what a strategy offers (`refresh_schedule`)
JOIN_SECONDS = 30.0


class RefreshFailed(RuntimeError):
    """The background re-indexing worker raised; re-raised in the training thread at a step boundary."""


def refresh_failed(error: BaseException) -> RefreshFailed:
    return RefreshFailed(f"re-indexing the corpus failed: {type(error).__name__}: {error}")


@dataclass
class Refresh:
    """A finished re-index: the new index, the step whose E_p weights encoded it, and its wall time."""

    index: PassageIndex
    snapshot_step: int
    seconds: float


# -- the separate passage tower -----------------------------------------------------------------
def separate_passage_tower(pipeline) -> torch.nn.Module:
    """Give the pipeline its own passage tower E_p: a deep copy of the (shared) embedder, trainable.

    The corpus index was built by this same embedder, so nothing needs re-encoding until E_p moves.
    """
    if pipeline.passage_encoder is pipeline.query_encoder:
        pipeline.passage_encoder = copy.deepcopy(pipeline.query_encoder)
    for p in pipeline.passage_encoder.parameters():
        p.requires_grad_(True)
    return pipeline.passage_encoder


def snapshot_tower(encoder) -> torch.nn.Module:
    """A frozen copy of a tower: what the worker encodes with while training updates the original."""
    frozen = copy.deepcopy(encoder)
    frozen.eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
        p.grad = None
    return frozen


# -- the worker -----------------------------------------------------------------------------------
class RefreshWorker:
    """Re-encodes `corpus` with a snapshot of a tower and builds a new index, in a thread or inline.

    At most one refresh is in flight. `request` snapshots the tower and starts one; `poll` returns the
    finished `Refresh` (or None), re-raising a worker failure as `RefreshFailed`; `cancel` stops one.
    """

    def __init__(self, corpus: Corpus, mode: str = "background", params: IndexParams = IndexParams(),
                 batch_size: int = 64):
        if mode not in REFRESH_MODES:
            raise ValueError(f"refresh mode must be one of {', '.join(REFRESH_MODES)}, got '{mode}'")
        self.corpus, self.mode, self.params, self.batch_size = corpus, mode, params, batch_size
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._result: Refresh | None = None
        self._error: BaseException | None = None
        self.requested_step: int | None = None

    @property
    def in_flight(self) -> bool:
        """A refresh was requested and not yet collected by `poll`/`wait`."""
        return self.requested_step is not None

    def request(self, encoder, step: int) -> bool:
        """Snapshot `encoder` now (a step boundary) and re-index with it; False if one is already in flight."""
        if self.in_flight:
            return False
        snapshot = snapshot_tower(encoder)
        self.requested_step, self._result, self._error = step, None, None
        self._stop.clear()
        if self.mode == "sync":
            self._work(snapshot, step)
        else:
            self._thread = threading.Thread(target=self._work, args=(snapshot, step), name="harness-reindex",
                                            daemon=True)
            self._thread.start()
        return True

    def poll(self) -> Refresh | None:
        """The finished refresh, once; None while it runs or when none was requested."""
        if not self.in_flight or (self._thread is not None and self._thread.is_alive()):
            return None
        return self._collect()

    def wait(self) -> Refresh | None:
        """Block until the refresh in flight is done and return it (None if none was requested)."""
        if not self.in_flight:
            return None
        if self._thread is not None:
            self._thread.join()
        return self._collect()

    def cancel(self) -> BaseException | None:
        """Stop a refresh in flight and drop its result; the worker stops at its next batch boundary.

        Returns the worker's exception if it had failed (the caller decides whether to raise it).
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=JOIN_SECONDS)
        error = self._error
        self._thread, self.requested_step, self._result, self._error = None, None, None, None
        return error

    def close(self) -> None:
        """Stop any worker without raising: the cleanup path of an error or Ctrl-C."""
        self.cancel()

    def __enter__(self) -> "RefreshWorker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _collect(self) -> Refresh | None:
        self._thread, self.requested_step = None, None
        error, result, self._error, self._result = self._error, self._result, None, None
        if error is not None:
            raise refresh_failed(error) from error
        return result

    def _work(self, snapshot, step: int) -> None:
        start = time.perf_counter()
        try:
            with torch.inference_mode():
                vectors = self._encode(snapshot)
            index = PassageIndex.build(vectors, self.params)
            self._result = Refresh(index, step, time.perf_counter() - start)
        except EncodingCancelled:
            pass
        except Exception as exc:  # kept and re-raised in the training thread by poll()/wait()
            self._error = exc
        if self.mode == "sync" and self._error is not None:
            self._collect()

    def _encode(self, snapshot) -> np.ndarray:
        return encode_corpus(snapshot, self.corpus, self.batch_size, "re-indexing", cancelled=self._stop.is_set)


def check_refresh_policy(policy: str, rerank_candidates: int) -> None:
    """The option check of a strategy that offers `refresh` and `rerank_candidates` (ValueError)."""
    if policy not in REFRESH_POLICIES:
        raise ValueError(f"refresh must be one of {', '.join(REFRESH_POLICIES)}, got '{policy}'")
    if rerank_candidates < 1:
        raise ValueError(f"rerank_candidates must be >= 1, got {rerank_candidates}")


def refresh_schedule(ctx, passage_encoder, every: int, policy: str) -> "IndexRefresher":
    """The `IndexRefresher` of a refresh policy: background/sync re-index every `every` steps; rerank and
    none never while training (their `finish` still re-indexes once from the final E_p)."""
    check_refresh_policy(policy, 1)
    if policy in REFRESH_MODES:
        return IndexRefresher(ctx, passage_encoder, every, policy)
    return IndexRefresher(ctx, passage_encoder, 0, "sync")


# -- the schedule a training loop follows --------------------------------------------------------
class IndexRefresher:
    """Every `every` steps re-index with a snapshot of E_p; install finished indexes between steps.

    Counts what the harness stores: ctx.index_refreshes, ctx.refresh_seconds (worker wall time spent
    encoding + building), and logs per installed index `refresh_staleness_steps` (steps between the
    snapshot and the swap) and `refresh_seconds`; at the end the mean staleness and `refresh_wait_seconds`
    (time the training thread spent blocked on re-indexing: all of it with mode=sync).

    In a run launched on several processes the main process alone re-indexes (once), and at each step
    boundary it sends what it installs, the new vectors included, to the others: every process swaps to the
    same index at the same step.
    """

    def __init__(self, ctx, passage_encoder, every: int, mode: str = "background", batch_size: int = 64):
        if every < 0:
            raise ValueError(f"refresh_every must be >= 0 (0 = only the final refresh), got {every}")
        self.ctx, self.encoder, self.every = ctx, passage_encoder, every
        self.batch_size, self.params = batch_size, index_params(ctx.config)
        main = ctx.is_main_process  # the others receive what it installs
        self.worker = RefreshWorker(ctx.dataset.corpus, mode, self.params, batch_size=batch_size) if main else None
        self.last_request = 0
        self.installed_step = 0  # the step whose weights built the index in use (0 = the base embedder)
        self.staleness: list[int] = []
        self.wait_seconds = 0.0

    def between_steps(self, step: int) -> None:
        """Call after step `step` (optimizer stepped) and before the next one reads the index."""
        waited = time.perf_counter()
        ready: list[Refresh] = []
        if self.worker is not None:
            if (refresh := self.worker.poll()) is not None:
                ready.append(refresh)
            if self.every and step - self.last_request >= self.every and not self.worker.in_flight:
                self.worker.request(self.encoder, step)
                self.last_request = step
                if (refresh := self.worker.poll()) is not None:  # sync mode: done already
                    ready.append(refresh)
        self._install_everywhere(ready, step)
        self.wait_seconds += time.perf_counter() - waited  # background: the snapshot copy only

    def finish(self, step: int, final_refresh: bool = True, wait_in_flight: bool = False) -> None:
        """End of training: make the index match the final passage tower (unless it already does).

        A refresh in flight from an earlier snapshot is cancelled (it would be stale) unless
        `wait_in_flight`; one snapshotted at this very step is waited for; then, if `final_refresh` and the
        index is not yet the final E_p's, the final E_p re-indexes now, in the training thread.
        """
        waited = time.perf_counter()
        ready: list[Refresh] = []
        if self.worker is not None:
            if self.worker.in_flight and (wait_in_flight or self.worker.requested_step == step):
                ready.append(self.worker.wait())
            elif self.worker.in_flight and (error := self.worker.cancel()) is not None:
                raise refresh_failed(error) from error
            installed = ready[-1].snapshot_step if ready and ready[-1] is not None else self.installed_step
            if final_refresh and installed != step:
                sync = RefreshWorker(self.ctx.dataset.corpus, "sync", self.params, batch_size=self.batch_size)
                sync.request(self.encoder, step)
                ready.append(sync.poll())
        self._install_everywhere([r for r in ready if r is not None], step)
        self.wait_seconds += time.perf_counter() - waited
        summary = {"refresh_wait_seconds": self.wait_seconds}
        if self.staleness:
            summary["refresh_staleness_mean"] = float(np.mean(self.staleness))
        self.ctx.log(step, **summary)

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()

    def __enter__(self) -> "IndexRefresher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()  # an error or Ctrl-C mid-training stops the worker too: never a hang

    def _install_everywhere(self, ready: list[Refresh], step: int) -> None:
        """Install the main process's finished refreshes on every process (the last one's index wins)."""
        accelerator = self.ctx.accelerator
        if accelerator is not None:
            from harness.runtime.distributed import broadcast_array, broadcast_from_main

            done = broadcast_from_main(accelerator, [(r.snapshot_step, r.seconds) for r in ready])
            if done:
                shape = (len(self.ctx.dataset.corpus), embedding_dimension(self.encoder))
                vectors = broadcast_array(accelerator, np.asarray(ready[-1].index.vectors) if ready else None, shape)
                last = ready[-1].index if ready else PassageIndex.build(vectors, self.params)
                ready = [Refresh(last if i == len(done) - 1 else None, snapshot, seconds)
                         for i, (snapshot, seconds) in enumerate(done)]
        for refresh in ready:
            self._install(refresh, step)

    def _install(self, refresh: Refresh | None, step: int) -> None:
        if refresh is None:
            return
        if refresh.index is not None:
            self.ctx.pipeline.index = refresh.index
        self.ctx.index_refreshes += 1
        self.ctx.refresh_seconds += refresh.seconds
        self.installed_step = refresh.snapshot_step
        self.staleness.append(step - refresh.snapshot_step)
        self.ctx.log(step, refresh_staleness_steps=step - refresh.snapshot_step, refresh_seconds=refresh.seconds)
