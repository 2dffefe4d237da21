"""rag_end2end: both towers and the generator train; refreshes change the index, swap between steps only,
and a failing or interrupted worker ends the run cleanly with the right stored status."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from harness.builtins.strategies import rag_end2end
from harness.builtins.strategies.rag_end2end import End2EndOptions, RagEnd2End, end2end_step
from harness.retrieval import index as retrieval_module
from tests.conftest import run_cli, tiny_run_args
from tests.plugins.strategies._tiny import assert_micro_batches_match
from tests.plugins.strategies.test_jsa_rag import grad_norm, tiny_fit_context

FAST = ("--batch-size", "2")  # 6 training questions: 3 steps


def reindex_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "harness-reindex" and t.is_alive()]


def only_run(store) -> dict:
    [run] = store.query("SELECT id, status, error FROM runs")
    return run


def test_one_step_sends_gradient_through_both_towers_and_the_generator(tmp_path, tiny_data):
    from harness.builtins.strategies.rag_token import rag_token_loss
    from harness.models.lora import prepare_generator_for_lora
    from harness.retrieval.refresh import separate_passage_tower
    from harness.training.loop import unfreeze

    ctx = tiny_fit_context(tmp_path, tiny_data, "rag_end2end")
    generator = prepare_generator_for_lora(ctx)
    unfreeze(ctx.pipeline.query_encoder)
    passage_tower = separate_passage_tower(ctx.pipeline)
    assert passage_tower is not ctx.pipeline.query_encoder
    loss, tokens = end2end_step(ctx, ctx.train[:2], 3, rag_token_loss)
    loss.backward()
    assert grad_norm(ctx.pipeline.query_encoder) > 0 and grad_norm(passage_tower) > 0 and tokens > 0
    assert sum(float(p.grad.abs().sum()) for n, p in generator.model.named_parameters()
               if "lora_" in n and p.grad is not None) > 0


def test_micro_batches_give_the_whole_batch_gradient(tmp_path, tiny_data):
    from harness.builtins.strategies.rag_token import rag_token_loss
    from harness.models.lora import prepare_generator_for_lora
    from harness.retrieval.refresh import separate_passage_tower
    from harness.training.loop import unfreeze

    ctx = tiny_fit_context(tmp_path, tiny_data, "rag_end2end")
    prepare_generator_for_lora(ctx)
    unfreeze(ctx.pipeline.query_encoder)
    separate_passage_tower(ctx.pipeline)
    modules = [ctx.pipeline.query_encoder, ctx.pipeline.passage_encoder, ctx.pipeline.generator.model]
    assert_micro_batches_match(
        modules, lambda micro: rag_end2end.accumulate_gradients(ctx, ctx.train[:3], 3, rag_token_loss,
                                                            End2EndOptions(micro_batch=micro)))


@pytest.mark.parametrize("mode", ["background", "sync"])
def test_refresh_changes_the_index_and_swaps_only_between_steps(tmp_path, tiny_data, monkeypatch, mode):
    ctx = tiny_fit_context(tmp_path, tiny_data, "rag_end2end", refresh_every=1, refresh=mode, micro_batch=0)
    ctx.config.batch_size = 2
    seen: list[tuple[str, int]] = []  # (where in the step, id of the index in use)
    real_retrieve, real_likelihoods = rag_end2end.retrieve_rows, rag_end2end.candidate_answer_log_probs

    def retrieve_at_step_start(pipeline, *args, **kwargs):
        seen.append(("start", id(pipeline.index)))
        return real_retrieve(pipeline, *args, **kwargs)

    def likelihoods_mid_step(*args, **kwargs):
        time.sleep(0.3)  # a background refresh finishes while the step is running...
        seen.append(("mid", id(ctx.pipeline.index)))  # ...and must not be in use yet
        return real_likelihoods(*args, **kwargs)

    monkeypatch.setattr(rag_end2end, "retrieve_rows", retrieve_at_step_start)
    monkeypatch.setattr(rag_end2end, "candidate_answer_log_probs", likelihoods_mid_step)
    original = ctx.pipeline.index
    RagEnd2End().fit(ctx)
    steps = [(seen[i][1], seen[i + 1][1]) for i in range(0, len(seen), 2)]
    assert len(steps) == 3 and all(start == mid for start, mid in steps)
    assert len({start for start, _ in steps}) >= 2  # the index did change, at step boundaries
    # the last index is the final passage tower's encoding of the corpus, and differs from the original
    assert ctx.pipeline.index is not original and ctx.index_refreshes >= 2 and ctx.refresh_seconds > 0
    assert not np.allclose(np.asarray(ctx.pipeline.index.vectors), np.asarray(original.vectors))
    from harness.retrieval.index import encode_corpus

    np.testing.assert_allclose(ctx.pipeline.index.vectors, encode_corpus(ctx.pipeline.passage_encoder, ctx.dataset.corpus),
                               atol=1e-5)
    assert not reindex_threads()


def test_cli_run_is_stored_with_refresh_costs_and_staleness(tiny_data, store):
    assert run_cli(tiny_run_args(tiny_data, "rag_end2end", *FAST, "--set", "refresh_every=1")) == 0
    run = only_run(store)
    assert run["status"] == "finished"
    metrics = store.run_metrics(run["id"])
    assert {"em", "f1", "answer_recall@5"} <= set(metrics["test"])
    assert metrics["cost"]["index_refreshes"] >= 1 and metrics["cost"]["refresh_seconds"] > 0
    logged = {r["name"] for r in store.query("SELECT DISTINCT name FROM train_log WHERE run_id = ?", [run["id"]])}
    assert {"loss", "refresh_staleness_steps", "refresh_staleness_mean", "refresh_wait_seconds", "passage_lr"} <= logged
    kinds = {a["kind"] for a in store.query("SELECT kind FROM artifacts WHERE run_id = ?", [run["id"]])}
    assert kinds == {"adapter", "embedder", "passage_embedder"}


def test_rag_sequence_loss_and_sync_refresh(tiny_data, store):
    args = tiny_run_args(tiny_data, "rag_end2end", *FAST, "--set", "loss=rag_sequence", "--set", "refresh=sync",
                         "--set", "refresh_every=2")
    assert run_cli(args) == 0
    run = only_run(store)
    staleness = store.query("SELECT value FROM train_log WHERE run_id = ? AND name = 'refresh_staleness_steps'",
                            [run["id"]])
    assert [r["value"] for r in staleness] == [0.0, 0.0]  # sync: each index is in use from its own step


def test_background_worker_failure_fails_the_run(tiny_data, store, monkeypatch):
    def broken_encoder(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access")

    monkeypatch.setattr(retrieval_module, "encode_texts", broken_encoder)
    code = run_cli(tiny_run_args(tiny_data, "rag_end2end", *FAST, "--set", "refresh_every=1",
                                 "--set", "final_refresh=false"))
    assert code != 0
    run = only_run(store)
    assert run["status"] == "failed" and "re-indexing the corpus failed" in run["error"]
    assert not reindex_threads()


def test_ctrl_c_during_a_background_refresh_is_stored_as_interrupted(tiny_data, store, monkeypatch):
    release = threading.Event()
    real_encode = retrieval_module.encode_texts

    def slow_encoder(*args, **kwargs):
        release.wait(10)
        return real_encode(*args, **kwargs)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    calls = {"n": 0}
    real_step = rag_end2end.end2end_step

    def step_then_ctrl_c(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # step 1 requested a refresh; the worker is blocked in it
            assert reindex_threads()
            threading.Timer(0.5, release.set).start()
            interrupted()
        return real_step(*args, **kwargs)

    monkeypatch.setattr(retrieval_module, "encode_texts", slow_encoder)
    monkeypatch.setattr(rag_end2end, "end2end_step", step_then_ctrl_c)
    start = time.monotonic()
    args = tiny_run_args(tiny_data, "rag_end2end", *FAST, "--set", "refresh_every=1", "--set", "micro_batch=0")
    assert run_cli(args) == 130
    assert time.monotonic() - start < 60
    assert only_run(store)["status"] == "interrupted"
    assert not reindex_threads()


def test_bad_options_are_one_clear_line(tiny_data, capsys):
    assert run_cli(tiny_run_args(tiny_data, "rag_end2end", "--set", "refresh=later")) == 2
    assert "refresh must be one of background, sync" in capsys.readouterr().err
    with pytest.raises(ValueError, match="loss"):
        End2EndOptions(loss="rag_bag")
