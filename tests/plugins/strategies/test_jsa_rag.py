"""jsa_rag: the MIS sampler against its formula and a known posterior; gradients; the CLI run stored."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.builtins.strategies.jsa_rag import (
    JsaModels,
    JsaOptions,
    acceptance_probability,
    candidate_rows,
    draw_proposals,
    jsa_loss,
    jsa_step,
    m_step_backward,
    make_posterior_retriever,
    metropolis_independence_chain,
    sample_frequencies,
)
from tests.conftest import run_cli, tiny_run_args

# A toy latent-passage problem: 5 candidates with known prior p(h|x), proposal q(h|x,y), likelihood p(y|x,h).
PRIOR = torch.tensor([0.40, 0.25, 0.15, 0.15, 0.05])
PROPOSAL = torch.tensor([0.10, 0.20, 0.30, 0.25, 0.15])
LIKELIHOOD = torch.tensor([0.01, 0.20, 0.50, 0.05, 0.90])
POSTERIOR = PRIOR * LIKELIHOOD / (PRIOR * LIKELIHOOD).sum()  # p(h|x,y) ∝ p(h|x) p(y|x,h)
TV_TOLERANCE = 0.02  # total variation between the chain's empirical law and the true posterior


def toy_log_weights(chains: int) -> torch.Tensor:
    """log w(h) = log p(y|x,h) + log p(h|x) − log q(h|x,y), one row per chain: (B, 5)."""
    return (LIKELIHOOD.log() + PRIOR.log() - PROPOSAL.log()).expand(chains, -1)


def total_variation(states: torch.Tensor, target: torch.Tensor) -> float:
    empirical = torch.bincount(states.reshape(-1), minlength=len(target)).float() / states.numel()
    return 0.5 * float((empirical - target).abs().sum())


# -- the acceptance rule ------------------------------------------------------------------------
@pytest.mark.parametrize("w_new, w_cur, expected", [
    (0.2, 0.4, 0.5),  # w(h')/w(h) = 0.5
    (0.4, 0.2, 1.0),  # a better proposal is always accepted
    (0.3, 0.3, 1.0),
    (0.0, 0.3, 0.0),  # zero weight: never accepted
    (0.0, 0.0, 0.0),
    (1e-30, 1e-10, 1e-20),
])
def test_acceptance_probability_is_min_one_weight_ratio(w_new, w_cur, expected):
    log = lambda w: torch.tensor(math.log(w) if w > 0 else float("-inf"), dtype=torch.float64)  # noqa: E731
    assert acceptance_probability(log(w_new), log(w_cur)).item() == pytest.approx(expected, rel=1e-9)


def test_acceptance_probability_from_the_three_models():
    """w = p_θ(y|x,h)·p(h|x)/q(h|x,y): moving 2 -> 4 in the toy problem, computed by hand."""
    w = lambda h: LIKELIHOOD[h] * PRIOR[h] / PROPOSAL[h]  # noqa: E731
    by_hand = min(1.0, (0.90 * 0.05 / 0.15) / (0.50 * 0.15 / 0.30))  # 0.3 / 0.25 -> 1
    assert by_hand == 1.0 and float(w(4) / w(2)) == pytest.approx(1.2)
    logw = toy_log_weights(1)[0]
    assert acceptance_probability(logw[4], logw[2]).item() == 1.0
    assert acceptance_probability(logw[2], logw[4]).item() == pytest.approx(0.25 / 0.3, rel=1e-6)


def test_chain_follows_the_rule_step_by_step():
    """Given proposals and uniforms, the states are the hand-computed ones."""
    log_w = torch.log(torch.tensor([[1.0, 2.0, 0.5]]))
    proposals = torch.tensor([[0, 1, 2, 0]])
    uniforms = torch.tensor([[0.99, 0.9, 0.3, 0.1]])
    # fresh chain: starts at h'_1 = 0 (no test); 1: a = min(1, 2/1) = 1 -> accept; 2: a = 0.5/2 = 0.25 < 0.3
    # -> reject, stay at 1; 0: a = 1/2 = 0.5 > 0.1 -> accept
    result = metropolis_independence_chain(log_w, proposals, uniforms=uniforms)
    assert result.states.tolist() == [[0, 1, 1, 0]]
    assert result.accepted.tolist() == [[True, True, False, True]]
    assert result.decided.tolist() == [[False, True, True, True]]
    assert result.acceptance_rate == pytest.approx(2 / 3)
    # a persistent chain starting at the cached state 2 tests every proposal, the first one included
    cached = metropolis_independence_chain(log_w, proposals, start=torch.tensor([2]), uniforms=uniforms)
    assert cached.states.tolist() == [[0, 1, 1, 0]]  # 2 -> 0: a = min(1, 1/0.5) = 1
    assert cached.decided.all() and cached.acceptance_rate == pytest.approx(3 / 4)


# -- convergence to the true posterior ----------------------------------------------------------
def test_long_chains_converge_to_the_true_posterior():
    rng = torch.Generator().manual_seed(0)
    chains, n, burn_in = 32, 2000, 50
    proposals = draw_proposals(PROPOSAL.log().expand(chains, -1), n, rng)
    result = metropolis_independence_chain(toy_log_weights(chains), proposals, generator=rng)
    assert total_variation(result.states[:, burn_in:], POSTERIOR) < TV_TOLERANCE
    # the proposal itself is far from the posterior (TV 0.29): the test has power
    assert 0.5 * float((PROPOSAL - POSTERIOR).abs().sum()) > 10 * TV_TOLERANCE


def test_persistent_short_chains_converge_like_jsa():
    """JSA proper: n = 4 proposals per visit, each visit continuing from the cached state of the last."""
    rng = torch.Generator().manual_seed(1)
    chains, n, visits = 64, 4, 300
    start = torch.full((chains,), -1, dtype=torch.long)
    samples = []
    for visit in range(visits):
        proposals = draw_proposals(PROPOSAL.log().expand(chains, -1), n, rng)
        result = metropolis_independence_chain(toy_log_weights(chains), proposals, start, generator=rng)
        start = result.states[:, -1]
        if visit >= 10:
            samples.append(result.states)
    assert total_variation(torch.cat(samples, 1), POSTERIOR) < TV_TOLERANCE


def test_acceptance_rate_matches_its_expectation():
    """Stationary acceptance rate of an independence sampler: E_{h~π, h'~q}[min(1, w(h')/w(h))]."""
    w = LIKELIHOOD * PRIOR / PROPOSAL
    expected = sum(POSTERIOR[i] * PROPOSAL[j] * min(1.0, float(w[j] / w[i])) for i in range(5) for j in range(5))
    rng = torch.Generator().manual_seed(2)
    proposals = draw_proposals(PROPOSAL.log().expand(32, -1), 2000, rng)
    result = metropolis_independence_chain(toy_log_weights(32), proposals, generator=rng)
    assert result.acceptance_rate == pytest.approx(float(expected), abs=0.01)


# -- the M-step loss and the candidate set ------------------------------------------------------
def test_jsa_loss_is_the_frequency_weighted_sum():
    states = torch.tensor([[0, 0, 2, 0], [1, 1, 1, 1]])
    freq = sample_frequencies(states, 3)
    assert freq.tolist() == [[0.75, 0.0, 0.25], [0.0, 1.0, 0.0]]
    log_lik = torch.tensor([[-1.0, float("nan"), -3.0], [0.0, -2.0, 0.0]])  # unsampled entries are never read
    log_prior = torch.log_softmax(torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, float("-inf")]]), -1)
    log_post = torch.log_softmax(torch.tensor([[0.0, 1.0, 0.0], [3.0, 1.0, 0.0]]), -1)
    by_hand = (0.75 * -(-1.0 + log_prior[0, 0] + log_post[0, 0]) + 0.25 * -(-3.0 + log_prior[0, 2] + log_post[0, 2])
               + 1.0 * -(-2.0 + log_prior[1, 1] + log_post[1, 1])) / 2
    assert jsa_loss(freq, log_lik, log_prior, log_post).item() == pytest.approx(by_hand.item(), rel=1e-6)


@pytest.mark.parametrize("chunk", [0, 1, 2])
def test_chunked_m_step_has_the_gradient_of_the_loss(chunk):
    """m_step_backward (generator passes in chunks) = jsa_loss(...).backward() in one piece."""
    torch.manual_seed(0)
    states = torch.tensor([[0, 0, 2, 1], [1, 1, 1, 3]])
    freq = sample_frequencies(states, 4)
    pairs = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 3)]
    leaves = {name: torch.randn(2, 4, requires_grad=True) for name in ("prior", "post")}
    theta = torch.randn(2, 4, requires_grad=True)  # stands in for the generator: log p_θ(y|x,h) = theta[b, h]
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])

    def forward():
        from harness.builtins.strategies.jsa_rag import masked_log_softmax
        return masked_log_softmax(leaves["prior"], mask, 0.5), masked_log_softmax(leaves["post"], mask, 0.5)

    log_prior, log_post = forward()
    expected = jsa_loss(freq, theta, log_prior, log_post)
    expected.backward()
    want = [t.grad.clone() for t in (*leaves.values(), theta)]
    for t in (*leaves.values(), theta):
        t.grad = None
    log_prior, log_post = forward()
    got = m_step_backward(freq, log_prior, log_post, pairs, chunk,
                          lambda part: torch.stack([theta[b, h] for b, h in part]))
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    for a, t in zip(want, (*leaves.values(), theta)):
        torch.testing.assert_close(t.grad, a)


def test_candidates_are_the_union_of_both_top_k_and_the_cached_sample():
    prior = np.array([[3, 1, 4], [5, 9, 2]])
    post = np.array([[1, 5, 9], [5, 9, 2]])
    rows, mask = candidate_rows(prior, post, extra=[7, 9])
    assert rows[0].tolist() == [3, 1, 4, 5, 9, 7]
    assert rows[1, :3].tolist() == [5, 9, 2] and mask.tolist()[1] == [True, True, True, False, False, False]


# -- gradients on the tiny models -----------------------------------------------------------------
def tiny_fit_context(tmp_path, data_dir, strategy: str, **options):
    """A real FitContext over the tiny dataset and models (what `harness run` builds), with its run folder."""
    from harness import plugins
    from harness.config import RunConfig
    from harness.runner.assemble import build_pipeline, load_dataset, resolve
    from harness.store.layout import create_run_folder
    from harness.training.context import FitContext

    cfg = RunConfig(strategy=strategy, dataset="local", data_dir=str(data_dir), embedder="tiny-embedder",
                    generator="tiny-llama", strategy_options={k: str(v) for k, v in options.items()})
    plugins.load_plugins()
    resolved = resolve(cfg)
    cfg = resolved.config
    dataset = load_dataset(cfg, resolved)
    folder = create_run_folder(cfg, tmp_path / "runs")
    torch.manual_seed(0)
    pipeline = build_pipeline(cfg, resolved, dataset, "cpu")
    return FitContext(pipeline, dataset, cfg, resolved.options, "cpu", folder.meta["run_id"], folder)


def grad_norm(module: torch.nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


def test_one_step_sends_gradient_to_generator_prior_and_posterior(tmp_path, tiny_data):
    from harness.models.lora import prepare_generator_for_lora
    from harness.training.loop import unfreeze

    ctx = tiny_fit_context(tmp_path, tiny_data, "jsa_rag")
    generator = prepare_generator_for_lora(ctx)
    prior = ctx.pipeline.query_encoder
    posterior = make_posterior_retriever(prior)
    unfreeze(prior)
    index_before = np.array(ctx.pipeline.index.vectors)
    options = JsaOptions(proposals=6, candidates=3)
    chains: dict = {}
    loss, stats, tokens = jsa_step(ctx, JsaModels(prior, posterior, None), ctx.train[:3], chains, options,
                                   torch.Generator().manual_seed(0))  # back-propagates the M-step loss
    assert torch.isfinite(loss) and tokens > 0
    assert 0.0 <= stats["acceptance_rate"] <= 1.0 and 3 <= stats["candidates"] <= 6
    lora = [p for n, p in generator.model.named_parameters() if "lora_" in n]
    assert lora and sum(float(p.grad.abs().sum()) for p in lora if p.grad is not None) > 0
    assert grad_norm(prior) > 0 and grad_norm(posterior) > 0
    # the passage side is untouched unless configured: no separate tower, index vectors as built
    assert ctx.pipeline.passage_encoder is prior
    np.testing.assert_array_equal(np.array(ctx.pipeline.index.vectors), index_before)
    # every example's chain state is cached (as a corpus row) for the next epoch
    assert set(chains) == {ex.id for ex in ctx.train[:3]}
    assert all(0 <= row < len(ctx.dataset.corpus) for row in chains.values())


def test_persistent_chain_starts_from_the_cached_sample(tmp_path, tiny_data):
    from harness.builtins.strategies.jsa_rag import posterior_text
    from harness.models.lora import prepare_generator_for_lora
    from harness.training.likelihoods import retrieve_rows

    ctx = tiny_fit_context(tmp_path, tiny_data, "jsa_rag")
    prepare_generator_for_lora(ctx)
    prior = ctx.pipeline.query_encoder
    models = JsaModels(prior, make_posterior_retriever(prior), None)
    [ex] = ctx.train[:1]
    tops = {int(retrieve_rows(ctx.pipeline, [ex.question], 1, prior)[0, 0]),
            int(retrieve_rows(ctx.pipeline, [posterior_text(prior, ex.question, ex.answers[0])], 1, models.posterior)[0, 0])}
    cached_row = next(r for r in range(len(ctx.dataset.corpus)) if r not in tops)
    rng = torch.Generator().manual_seed(0)
    # one proposal: a fresh chain only adopts it (no test); a cached chain tests it against the cached state
    _, fresh, _ = jsa_step(ctx, models, [ex], {}, JsaOptions(proposals=1, candidates=1), rng)
    assert math.isnan(fresh["acceptance_rate"]) and fresh["candidates"] == len(tops)
    chains = {ex.id: cached_row}
    _, cached, _ = jsa_step(ctx, models, [ex], chains, JsaOptions(proposals=1, candidates=1), rng)
    assert not math.isnan(cached["acceptance_rate"]) and cached["candidates"] == len(tops) + 1
    _, ignored, _ = jsa_step(ctx, models, [ex], chains, JsaOptions(proposals=1, candidates=1, persistent=False), rng)
    assert ignored["candidates"] == len(tops)


def test_training_the_passage_side_rebuilds_the_index(tmp_path, tiny_data):
    """train_passages=true: a separate E_p gets gradient and the index is rebuilt from it."""
    from harness.builtins.strategies.jsa_rag import JsaRag

    ctx = tiny_fit_context(tmp_path, tiny_data, "jsa_rag", train_passages="true", refresh_every=1,
                           refresh="sync", proposals=3)
    index_before, tower_before = ctx.pipeline.index, ctx.pipeline.passage_encoder
    weights_before = [p.detach().clone() for p in tower_before.parameters()]
    JsaRag().fit(ctx)
    assert ctx.pipeline.passage_encoder is not ctx.pipeline.query_encoder
    changed = [not torch.equal(a, b) for a, b in zip(weights_before, ctx.pipeline.passage_encoder.parameters())]
    assert any(changed)
    assert ctx.index_refreshes >= 2 and ctx.pipeline.index is not index_before
    assert not np.allclose(np.array(ctx.pipeline.index.vectors), np.array(index_before.vectors))


# -- end to end ------------------------------------------------------------------------------------
def test_cli_run_is_stored_with_acceptance_rate(tiny_data, store):
    assert run_cli(tiny_run_args(tiny_data, "jsa_rag", "--set", "proposals=4", "--set", "candidates=3")) == 0
    [run] = store.query("SELECT id, status, strategy FROM runs")
    assert run["status"] == "finished" and run["strategy"] == "jsa_rag"
    metrics = store.run_metrics(run["id"])
    assert {"em", "f1"} <= set(metrics["test"]) and metrics["cost"]["index_refreshes"] == 0
    assert metrics["cost"]["trained_tokens"] > 0
    rates = store.query("SELECT value FROM train_log WHERE run_id = ? AND name = 'acceptance_rate'", [run["id"]])
    assert len(rates) == 2 and all(0 <= r["value"] <= 1 for r in rates)
    kinds = {a["kind"] for a in store.query("SELECT kind FROM artifacts WHERE run_id = ?", [run["id"]])}
    assert kinds == {"adapter", "embedder"}
