"""The widened retrieved sets of harness/training/likelihoods.py on the tiny models: re-ranking the stale
index's candidates with a moved passage tower, and the top-L candidates scored with grad on the top-k only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.retrieval.index import encode_texts
from harness.retrieval.refresh import IndexRefresher, refresh_schedule, separate_passage_tower
from harness.training.flops import FlopCounter, step_flops
from harness.training.likelihoods import (
    candidate_answer_log_probs,
    candidate_count,
    passage_answer_log_probs,
    rerank_rows,
    retrieve_rows,
)
from harness.training.loop import encoder_token_count
from tests.plugins.strategies.test_jsa_rag import tiny_fit_context


def moved_passage_tower(ctx, seed: int = 0) -> torch.nn.Module:
    """A separate E_p whose weights moved away from the indexed ones, so the index is stale."""
    tower = separate_passage_tower(ctx.pipeline)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in tower.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
    return tower


def test_rerank_over_the_whole_corpus_is_a_full_reindex(tmp_path, tiny_data):
    ctx = tiny_fit_context(tmp_path, tiny_data, "rag_end2end")
    moved_passage_tower(ctx)
    questions, k, n = [ex.question for ex in ctx.train], 3, len(ctx.dataset.corpus)
    stale = retrieve_rows(ctx.pipeline, questions, k)
    reranked = retrieve_rows(ctx.pipeline, questions, k, rerank=n)
    ctx.refresh_index()  # the full re-index: the corpus re-encoded by the moved E_p
    fresh = retrieve_rows(ctx.pipeline, questions, k)
    assert (reranked == fresh).all()
    assert not (stale == fresh).all()  # the tower did move: the stale index's top-k was another


def test_rerank_keeps_only_the_stale_candidates(tmp_path, tiny_data):
    """With L < N the result is the best k of the stale index's top-L, by the current E_p's scores."""
    ctx = tiny_fit_context(tmp_path, tiny_data, "rag_end2end")
    tower = moved_passage_tower(ctx, seed=1)
    questions, k, L = [ex.question for ex in ctx.train], 2, 4
    queries = encode_texts(ctx.pipeline.query_encoder, questions)
    candidates, _ = ctx.pipeline.index.search(queries, L)
    rows = rerank_rows(ctx.pipeline, queries, k, L)
    for q, cand, got in zip(queries, candidates, rows):
        scores = encode_texts(tower, [ctx.pipeline.corpus[int(r)].as_text() for r in cand]) @ q
        assert set(got) <= set(cand) and list(got) == [int(cand[i]) for i in np.argsort(-scores)[:k]]


def test_the_flop_counter_charges_the_reranked_passages(tmp_path, tiny_data):
    ctx = tiny_fit_context(tmp_path, tiny_data, "rag_end2end")
    tower = moved_passage_tower(ctx)
    counter = FlopCounter()
    counter.watch(tower)
    queries = encode_texts(ctx.pipeline.query_encoder, [ctx.train[0].question])
    L = 5
    candidates, _ = ctx.pipeline.index.search(queries, L)
    rerank_rows(ctx.pipeline, queries, 2, L)
    texts = [ctx.pipeline.corpus[int(r)].as_text() for r in np.unique(candidates)]
    expected = step_flops(counter._watched[id(tower)], encoder_token_count(tower, texts), backward=False)
    assert counter.take() == pytest.approx(expected)


@pytest.mark.parametrize("policy, every, mode", [("background", 2, "background"), ("sync", 2, "sync"),
                                                  ("rerank", 0, "sync"), ("none", 0, "sync")])
def test_refresh_schedule_per_policy(tmp_path, tiny_data, policy, every, mode):
    ctx = tiny_fit_context(tmp_path, tiny_data, "rag_end2end")
    tower = separate_passage_tower(ctx.pipeline)
    with refresh_schedule(ctx, tower, 2, policy) as refresher:
        assert isinstance(refresher, IndexRefresher) and refresher.every == every and refresher.worker.mode == mode
    with pytest.raises(ValueError, match="refresh must be one of"):
        refresh_schedule(ctx, tower, 2, "hourly")


def test_candidate_count_is_k_at_least_and_the_corpus_at_most(tmp_path, tiny_data):
    ctx = tiny_fit_context(tmp_path, tiny_data, "rag_token")
    n = len(ctx.pipeline.corpus)
    assert candidate_count(ctx.pipeline, 3, 0) == 3
    assert candidate_count(ctx.pipeline, 3, 2) == 3
    assert candidate_count(ctx.pipeline, 3, 5) == 5
    assert candidate_count(ctx.pipeline, 3, n + 10) == n


def test_candidates_beyond_the_top_k_are_scored_without_grad(tmp_path, tiny_data):
    from harness.models.lora import prepare_generator_for_lora
    from harness.training.loop import gold_answer

    ctx = tiny_fit_context(tmp_path, tiny_data, "rag_token")
    generator = prepare_generator_for_lora(ctx)
    generator.model.eval()  # no dropout: the two computations must agree
    batch = ctx.train[:2]
    questions, answers = [ex.question for ex in batch], [gold_answer(ex) for ex in batch]
    rows = retrieve_rows(ctx.pipeline, questions, 4)
    passages = [ctx.pipeline.passages(r) for r in rows]
    token_lp, mask = candidate_answer_log_probs(generator, questions, passages, answers, read=2)
    all_lp, all_mask = passage_answer_log_probs(generator, questions, passages, answers)
    torch.testing.assert_close(token_lp, all_lp, rtol=1e-5, atol=1e-5)
    assert torch.equal(mask, all_mask)
    lora = [p for n, p in generator.model.named_parameters() if "lora_" in n]
    beyond = torch.autograd.grad(token_lp[:, 2:].sum(), lora, allow_unused=True, retain_graph=True)
    read = torch.autograd.grad(token_lp[:, :2].sum(), lora, allow_unused=True)
    assert all(g is None or not g.any() for g in beyond)
    assert any(g is not None and g.any() for g in read)
