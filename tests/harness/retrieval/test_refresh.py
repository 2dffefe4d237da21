"""Re-indexing beside training: snapshots, swaps only when the loop asks, failures surface, no hangs."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from harness.retrieval import index as retrieval_module
from harness.retrieval.index import PassageIndex, encode_corpus
from harness.retrieval.refresh import IndexRefresher, RefreshFailed, RefreshWorker, separate_passage_tower
from harness.types import Corpus, Passage
from tests.conftest import TINY_CORPUS


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus([Passage(f"p{i}", title, text) for i, (title, text) in enumerate(TINY_CORPUS)])


@pytest.fixture
def tower():
    from harness import plugins
    from harness.types import ModelOptions

    plugins.load_plugins()
    return plugins.models()["embedder"].get("tiny-embedder").load(ModelOptions(device="cpu"))


def perturb(module: torch.nn.Module, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=gen))


def reindex_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "harness-reindex" and t.is_alive()]


class Gate:
    """Replaces the worker's encoder call: blocks every batch until released, then encodes (or raises)."""

    def __init__(self, real, fail: bool = False, released: bool = False):
        self.real, self.fail = real, fail
        self.release = threading.Event()
        self.entered = threading.Event()
        self.batches = 0
        if released:
            self.release.set()

    def __call__(self, model, texts, batch_size=64):
        self.entered.set()
        self.batches += 1
        assert self.release.wait(10), "test never released the worker"
        if self.fail:
            raise ValueError("disk full")
        return self.real(model, texts, batch_size)


@pytest.mark.parametrize("mode", ["background", "sync"])
def test_refresh_encodes_with_a_snapshot_taken_at_request(corpus, tower, mode):
    """The new index holds E_p(z) for the weights at request time, even if training moves E_p meanwhile."""
    base = encode_corpus(tower, corpus)
    perturb(tower, seed=1)
    expected = encode_corpus(tower, corpus)
    assert not np.allclose(base, expected)  # the perturbation changes the vectors
    worker = RefreshWorker(corpus, mode, batch_size=3)
    assert worker.request(tower, step=4)
    perturb(tower, seed=2)  # training goes on while the worker encodes
    refresh = worker.wait()
    assert refresh.snapshot_step == 4 and refresh.seconds > 0
    np.testing.assert_allclose(refresh.index.vectors, expected, atol=1e-5)
    assert len(refresh.index) == len(corpus)


def test_result_is_only_installed_when_the_loop_polls(corpus, tower, monkeypatch):
    gate = Gate(retrieval_module.encode_texts)
    monkeypatch.setattr(retrieval_module, "encode_texts", gate)
    worker = RefreshWorker(corpus, "background", batch_size=5)
    worker.request(tower, step=1)
    assert gate.entered.wait(5)
    assert worker.in_flight and worker.poll() is None  # still encoding: nothing to swap
    assert not worker.request(tower, step=2)  # one refresh at a time
    gate.release.set()
    refresh = worker.wait()
    assert isinstance(refresh.index, PassageIndex) and len(refresh.index) == len(corpus)
    assert not worker.in_flight and worker.poll() is None  # handed out once
    assert not reindex_threads()


def test_worker_failure_is_raised_in_the_training_thread(corpus, tower, monkeypatch):
    monkeypatch.setattr(retrieval_module, "encode_texts", Gate(retrieval_module.encode_texts, fail=True, released=True))
    worker = RefreshWorker(corpus, "background")
    worker.request(tower, step=3)
    deadline = time.monotonic() + 10
    with pytest.raises(RefreshFailed, match="ValueError: disk full"):
        while time.monotonic() < deadline:
            worker.poll()
            time.sleep(0.01)
    assert not worker.in_flight


def test_sync_failure_raises_at_request(corpus, tower, monkeypatch):
    monkeypatch.setattr(retrieval_module, "encode_texts", Gate(retrieval_module.encode_texts, fail=True, released=True))
    with pytest.raises(RefreshFailed, match="disk full"):
        RefreshWorker(corpus, "sync").request(tower, step=1)


def test_close_stops_a_running_worker_without_hanging(corpus, tower, monkeypatch):
    gate = Gate(retrieval_module.encode_texts)
    monkeypatch.setattr(retrieval_module, "encode_texts", gate)
    worker = RefreshWorker(corpus, "background", batch_size=1)  # 10 batches: stop is checked between them
    worker.request(tower, step=1)
    assert gate.entered.wait(5)
    threading.Timer(0.2, gate.release.set).start()  # the batch in progress finishes, then the worker stops
    start = time.monotonic()
    worker.close()
    assert time.monotonic() - start < 5
    assert not reindex_threads() and gate.batches < len(corpus)
    assert not worker.in_flight and worker.poll() is None


class FakeContext(SimpleNamespace):
    def log(self, step, **scalars):
        self.logged.append((step, scalars))


def fake_context(corpus, tower) -> FakeContext:
    pipeline = SimpleNamespace(index=PassageIndex.build(encode_corpus(tower, corpus)), query_encoder=tower,
                               passage_encoder=tower)
    return FakeContext(pipeline=pipeline, dataset=SimpleNamespace(corpus=corpus), index_refreshes=0,
                       refresh_seconds=0.0, logged=[], is_main_process=True, accelerator=None,
                       config=SimpleNamespace(index="flat", index_device="cpu"))


def test_refresher_swaps_between_steps_and_counts_staleness(corpus, tower, monkeypatch):
    ctx = fake_context(corpus, tower)
    gate = Gate(retrieval_module.encode_texts)
    monkeypatch.setattr(retrieval_module, "encode_texts", gate)
    passage_tower = separate_passage_tower(ctx.pipeline)
    assert passage_tower is not tower and ctx.pipeline.passage_encoder is passage_tower
    original = ctx.pipeline.index
    refresher = IndexRefresher(ctx, passage_tower, every=2, mode="background")
    try:
        refresher.between_steps(1)
        assert not refresher.worker.in_flight  # not due yet
        refresher.between_steps(2)  # due: snapshot at step 2, worker starts
        assert refresher.worker.in_flight and ctx.pipeline.index is original
        gate.release.set()
        refresher.worker._thread.join(5)  # the worker is done, but only the loop installs
        assert ctx.pipeline.index is original
        refresher.between_steps(3)  # installed at the boundary after step 3: staleness 1
        assert ctx.pipeline.index is not original and ctx.index_refreshes == 1
        assert ("refresh_staleness_steps", 1) in [(k, v) for _, s in ctx.logged for k, v in s.items()]
        perturb(passage_tower)
        refresher.finish(3)  # E_p moved since the step-2 snapshot: final sync refresh from the final tower
        assert ctx.index_refreshes == 2 and refresher.installed_step == 3
        np.testing.assert_allclose(ctx.pipeline.index.vectors, encode_corpus(passage_tower, corpus), atol=1e-5)
        summary = ctx.logged[-1][1]
        assert summary["refresh_staleness_mean"] == pytest.approx(0.5) and summary["refresh_wait_seconds"] > 0
        assert ctx.refresh_seconds > 0
    finally:
        refresher.close()


def test_finish_cancels_a_stale_refresh_and_reports_its_failure(corpus, tower, monkeypatch):
    ctx = fake_context(corpus, tower)
    refresher = IndexRefresher(ctx, separate_passage_tower(ctx.pipeline), every=1, mode="background")
    gate = Gate(retrieval_module.encode_texts, fail=True)
    monkeypatch.setattr(retrieval_module, "encode_texts", gate)
    refresher.between_steps(1)  # the worker blocks in its first batch: nothing to report yet
    gate.release.set()
    refresher.worker._thread.join(5)  # ... and then fails
    with pytest.raises(RefreshFailed, match="disk full"):
        refresher.finish(2, final_refresh=False)  # never silently dropped
    refresher.close()


def test_sync_mode_installs_at_once(corpus, tower):
    ctx = fake_context(corpus, tower)
    refresher = IndexRefresher(ctx, separate_passage_tower(ctx.pipeline), every=1, mode="sync")
    refresher.between_steps(1)
    assert ctx.index_refreshes == 1 and refresher.staleness == [0]
    refresher.finish(1)  # the index already comes from the final tower: no extra refresh
    assert ctx.index_refreshes == 1


def test_bad_mode_is_rejected(corpus):
    with pytest.raises(ValueError, match="background, sync"):
        RefreshWorker(corpus, "eventually")


def test_the_refresher_is_a_context_manager_that_stops_its_worker(corpus, tower, monkeypatch):
    ctx = fake_context(corpus, tower)
    gate = Gate(retrieval_module.encode_texts)
    monkeypatch.setattr(retrieval_module, "encode_texts", gate)
    with pytest.raises(KeyboardInterrupt):
        with IndexRefresher(ctx, separate_passage_tower(ctx.pipeline), every=1, mode="background") as refresher:
            refresher.between_steps(1)
            assert gate.entered.wait(5) and reindex_threads()
            raise KeyboardInterrupt  # Ctrl-C mid-training: leaving the block stops the worker
    gate.release.set()
    for thread in reindex_threads():
        thread.join(5)
    assert not reindex_threads() and not refresher.worker.in_flight


def test_ctx_refresh_index_and_the_worker_share_one_corpus_encoding(corpus, tower, monkeypatch):
    """Both go through harness.retrieval.encode_corpus: the same batches, the same vectors."""
    from harness.training.context import FitContext

    calls = []
    real = retrieval_module.encode_texts
    monkeypatch.setattr(retrieval_module, "encode_texts", lambda *a, **k: calls.append(len(a[1])) or real(*a, **k))
    worker = RefreshWorker(corpus, "sync", batch_size=4)
    worker.request(tower, step=1)
    from_worker = worker.poll().index.vectors
    worker_calls, calls[:] = list(calls), []
    ctx = fake_context(corpus, tower)
    calls[:] = []
    FitContext.refresh_index(ctx, tower)
    assert calls and worker_calls and sum(calls) == sum(worker_calls) == len(corpus)
    np.testing.assert_allclose(ctx.pipeline.index.vectors, from_worker, atol=1e-6)
