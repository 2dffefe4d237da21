"""vrag: the loss equals its definition; gradients reach θ, η and φ; the passage side stays put; CLI stored."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.builtins.strategies.jsa_rag import make_posterior_retriever
from harness.builtins.strategies.vrag import vrag_loss, vrag_step
from tests.conftest import run_cli, tiny_run_args
from tests.plugins.strategies._tiny import assert_micro_batches_match
from tests.plugins.strategies.test_jsa_rag import grad_norm, tiny_fit_context


def test_loss_is_posterior_weighted_nll_plus_kl():
    q = [[0.7, 0.2, 0.1], [0.5, 0.5, 0.0]]
    p = [[0.2, 0.3, 0.5], [0.9, 0.05, 0.05]]
    seq = [[-1.0, -4.0, -9.0], [-2.0, -3.0, -30.0]]
    log = lambda rows: torch.log(torch.tensor(rows))  # noqa: E731
    nll = sum(q[b][z] * -seq[b][z] for b in range(2) for z in range(3)) / 2
    kl = sum(q[b][z] * math.log(q[b][z] / p[b][z]) for b in range(2) for z in range(3) if q[b][z] > 0) / 2
    for beta in (1.0, 0.25):
        loss, got_nll, got_kl = vrag_loss(log(q).nan_to_num(neginf=-1e30), log(p), torch.tensor(seq), beta)
        assert got_nll.item() == pytest.approx(nll) and got_kl.item() == pytest.approx(kl, rel=1e-5)
        assert loss.item() == pytest.approx(nll + beta * kl, rel=1e-6)


def test_kl_vanishes_when_posterior_equals_prior():
    log_q = torch.log_softmax(torch.randn(3, 5), -1)
    _, _, kl = vrag_loss(log_q, log_q.clone(), torch.zeros(3, 5))
    assert kl.item() == pytest.approx(0.0, abs=1e-7)


def test_one_step_sends_gradient_to_generator_prior_and_posterior(tmp_path, tiny_data):
    from harness.models.lora import prepare_generator_for_lora
    from harness.training.loop import unfreeze

    ctx = tiny_fit_context(tmp_path, tiny_data, "vrag")
    generator = prepare_generator_for_lora(ctx)
    prior = ctx.pipeline.query_encoder
    posterior = make_posterior_retriever(prior)
    unfreeze(prior)
    index_before = np.array(ctx.pipeline.index.vectors)
    loss, stats, tokens = vrag_step(ctx, prior, posterior, ctx.train[:3], 3, 1.0)
    loss.backward()
    assert torch.isfinite(loss) and tokens > 0 and stats["kl"] >= 0
    assert sum(float(p.grad.abs().sum()) for n, p in generator.model.named_parameters()
               if "lora_" in n and p.grad is not None) > 0
    assert grad_norm(prior) > 0 and grad_norm(posterior) > 0
    assert ctx.pipeline.passage_encoder is prior  # no separate passage tower; the index is as built
    np.testing.assert_array_equal(np.array(ctx.pipeline.index.vectors), index_before)


def test_micro_batches_give_the_whole_batch_gradient(tmp_path, tiny_data):
    from harness.builtins.strategies.vrag import VragOptions, accumulate_gradients
    from harness.models.lora import prepare_generator_for_lora
    from harness.training.loop import unfreeze

    ctx = tiny_fit_context(tmp_path, tiny_data, "vrag")
    prepare_generator_for_lora(ctx)
    prior = ctx.pipeline.query_encoder
    posterior = make_posterior_retriever(prior)
    unfreeze(prior)
    modules = [prior, posterior, ctx.pipeline.generator.model]

    def backward(micro):
        loss, stats, _ = accumulate_gradients(ctx, prior, posterior, ctx.train[:3], 3, VragOptions(micro_batch=micro))
        return loss, stats

    stats_full, stats_micro = assert_micro_batches_match(modules, backward)
    assert stats_micro["kl"] == pytest.approx(stats_full["kl"], rel=1e-4, abs=1e-7)


def test_cli_run_is_stored(tiny_data, store):
    assert run_cli(tiny_run_args(tiny_data, "vrag", "--set", "kl_weight=0.5")) == 0
    [run] = store.query("SELECT id, status, config FROM runs")
    assert run["status"] == "finished" and '"kl_weight": "0.5"' in run["config"]
    metrics = store.run_metrics(run["id"])
    assert {"em", "f1", "answer_recall@5"} <= set(metrics["dev"]) and metrics["cost"]["index_refreshes"] == 0
    logged = {r["name"] for r in store.query("SELECT DISTINCT name FROM train_log WHERE run_id = ?", [run["id"]])}
    assert {"loss", "nll", "kl", "prior_lr", "posterior_lr", "gen_lr"} <= logged
