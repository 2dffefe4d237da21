"""`retriever_candidates=L` (p(z|x) and the retriever's gradient over the top-L, the reader on the top-k)
and `refresh=rerank` on the tiny models: at L = k each joint loss is the top-k loss exactly; at L > k it
is another loss whose retriever gradient reaches the passages ranked k+1..L; both options run end to end."""

from __future__ import annotations

import pytest
import torch

from harness.builtins.strategies import rag_end2end, rag_token, vrag
from harness.builtins.strategies.rag_sequence import rag_sequence_loss
from harness.builtins.strategies.rag_token import rag_token_loss
from harness.training.likelihoods import (
    indexed_passage_vectors,
    passage_answer_log_probs,
    passage_vectors_with_grad,
    retrieval_log_probs,
    retrieve_rows,
)
from harness.training.loop import gold_answer
from tests.conftest import run_cli, tiny_run_args
from tests.plugins.strategies.test_jsa_rag import tiny_fit_context

K = 2


def prepared(tmp_path, tiny_data, strategy: str, passage_tower: bool = False):
    """A FitContext with LoRA on the generator and E_q trainable, every model in eval mode (no dropout)."""
    from harness.models.lora import prepare_generator_for_lora
    from harness.retrieval.refresh import separate_passage_tower
    from harness.training.loop import unfreeze

    ctx = tiny_fit_context(tmp_path, tiny_data, strategy)
    prepare_generator_for_lora(ctx)
    unfreeze(ctx.pipeline.query_encoder)
    if passage_tower:
        separate_passage_tower(ctx.pipeline)
    for model in (ctx.pipeline.query_encoder, ctx.pipeline.passage_encoder, ctx.pipeline.generator.model):
        model.eval()
    return ctx


def top_k_loss(ctx, batch, loss_fn, trained_passages: bool = False) -> torch.Tensor:
    """The loss as it was before the option: everything over the top-k, from the public likelihoods."""
    pipeline = ctx.pipeline
    questions, answers = [ex.question for ex in batch], [gold_answer(ex) for ex in batch]
    rows = retrieve_rows(pipeline, questions, K)
    passages = [pipeline.passages(r) for r in rows]
    vectors = (passage_vectors_with_grad(pipeline.passage_encoder, passages) if trained_passages
               else indexed_passage_vectors(pipeline, rows))
    log_pz = retrieval_log_probs(pipeline.query_encoder, questions, vectors, ctx.config.tau)
    token_lp, mask = passage_answer_log_probs(pipeline.generator, questions, passages, answers)
    return loss_fn(log_pz, token_lp, mask)


def query_grad(ctx, loss: torch.Tensor) -> list[torch.Tensor]:
    ctx.pipeline.query_encoder.zero_grad(set_to_none=True)
    loss.backward()
    return [p.grad.clone() for p in ctx.pipeline.query_encoder.parameters() if p.grad is not None]


@pytest.mark.parametrize("loss_fn", [rag_token_loss, rag_sequence_loss])
def test_rag_at_l_equal_k_is_the_top_k_loss_and_wider_differs(tmp_path, tiny_data, loss_fn):
    ctx = prepared(tmp_path, tiny_data, "rag_token")
    batch = ctx.train[:2]
    reference = top_k_loss(ctx, batch, loss_fn)
    at_k, _ = rag_token.rag_step(ctx, batch, K, loss_fn, True, True, candidates=K)
    assert at_k.item() == reference.item()
    wider, tokens_wider = rag_token.rag_step(ctx, batch, K, loss_fn, True, True, candidates=5)
    _, tokens_k = rag_token.rag_step(ctx, batch, K, loss_fn, True, True, candidates=K)
    assert wider.item() != reference.item() and tokens_wider > tokens_k  # L−k more passages read
    assert sum(float(g.abs().sum()) for g in query_grad(ctx, wider)) > 0


def test_end2end_at_l_equal_k_is_the_top_k_loss(tmp_path, tiny_data):
    ctx = prepared(tmp_path, tiny_data, "rag_end2end", passage_tower=True)
    batch = ctx.train[:2]
    reference = top_k_loss(ctx, batch, rag_token_loss, trained_passages=True)
    at_k, _ = rag_end2end.end2end_step(ctx, batch, K, rag_token_loss, candidates=K)
    assert at_k.item() == reference.item()
    wider, _ = rag_end2end.end2end_step(ctx, batch, K, rag_token_loss, candidates=5)
    assert wider.item() != reference.item()
    wider.backward()
    assert any(p.grad is not None and p.grad.any() for p in ctx.pipeline.passage_encoder.parameters())


def test_vrag_at_l_equal_k_is_the_top_k_loss(tmp_path, tiny_data):
    from harness.builtins.strategies.jsa_rag import make_posterior_retriever

    ctx = prepared(tmp_path, tiny_data, "vrag")
    prior = ctx.pipeline.query_encoder
    posterior = make_posterior_retriever(prior)
    posterior.eval()
    batch = ctx.train[:2]
    at_zero, stats_zero, _ = vrag.vrag_step(ctx, prior, posterior, batch, K, 1.0)  # today's call
    at_k, stats_k, _ = vrag.vrag_step(ctx, prior, posterior, batch, K, 1.0, candidates=K)
    assert at_k.item() == at_zero.item() and stats_k == stats_zero
    wider, _, _ = vrag.vrag_step(ctx, prior, posterior, batch, K, 1.0, candidates=5)
    assert wider.item() != at_k.item()


def test_jsa_retriever_candidates_set_the_proposal_set():
    from harness.builtins.strategies.jsa_rag import JsaOptions

    assert JsaOptions(candidates=5).top == 5 and JsaOptions(candidates=5, retriever_candidates=20).top == 20
    assert JsaOptions(train_passages=True, refresh="rerank", rerank_candidates=30).rerank() == 30
    assert JsaOptions(refresh="rerank").rerank() == 0  # no passage tower: nothing is stale


@pytest.mark.parametrize("strategy, options", [
    ("rag_token", ("--set", "retriever_candidates=4")),
    ("rag_end2end", ("--set", "refresh=rerank", "--set", "rerank_candidates=4", "--set", "retriever_candidates=3")),
    ("jsa_rag", ("--set", "train_passages=true", "--set", "refresh=rerank", "--set", "rerank_candidates=4",
                 "--set", "retriever_candidates=3")),
])
def test_the_options_run_end_to_end(tiny_data, store, strategy, options):
    assert run_cli(tiny_run_args(tiny_data, strategy, "--batch-size", "3", *options)) == 0
    [run] = store.query("SELECT id, status FROM runs")
    assert run["status"] == "finished"
    cost = store.run_metrics(run["id"])["cost"]
    assert cost["train_flops"] > 0
    if "refresh=rerank" in options:
        assert cost["index_refreshes"] == 1  # the final one only: none while training


@pytest.mark.parametrize("option", ["refresh=hourly", "rerank_candidates=0", "retriever_candidates=-1"])
def test_bad_values_are_clean_errors(tiny_data, capsys, option):
    assert run_cli(tiny_run_args(tiny_data, "rag_end2end", "--set", option)) == 2
    assert "must be" in capsys.readouterr().err
