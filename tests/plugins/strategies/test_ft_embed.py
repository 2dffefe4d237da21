"""ft_embed: the MNRL loss against a direct computation, GradCache's gradient equals the plain one,
only the tower trains, the corpus stays as indexed unless reindex=true, and unlabelled data is refused."""

import math
import os

import pytest
import torch

from harness.builtins.models.tiny import tiny_embedder_dir
from harness.builtins.strategies import ft_embed
from harness.builtins.strategies.ft_embed import EmbedOptions, cached_mnrl_backward, mnrl_loss
from harness.retrieval.index import encode_with_grad
from harness.store.db import Store
from harness.training.loop import snapshot
from tests.conftest import run_cli, tiny_run_args
from tests.plugins.strategies._tiny import changed, encoder_trainable_names, tiny_context


def test_mnrl_equals_the_softmax_over_in_batch_passages():
    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    d = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    expected = 0.0
    for b in range(4):
        logits = [20 * float(q[b] @ d[j]) for j in range(4)]
        expected -= logits[b] - math.log(sum(math.exp(x) for x in logits))
    assert mnrl_loss(q, d, 20.0).item() == pytest.approx(expected / 4, rel=1e-5)


def test_a_copy_of_the_positive_is_not_a_negative():
    torch.manual_seed(1)
    q = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    d = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    d[2] = d[0]  # rows 0 and 2 share their gold passage
    loss = mnrl_loss(q, d, 20.0, ["p0", "p1", "p0"])
    expected = 0.0
    for b, negatives in ((0, [1]), (1, [0, 2]), (2, [1])):
        logits = [20 * float(q[b] @ d[b])] + [20 * float(q[b] @ d[j]) for j in negatives]
        expected -= logits[0] - math.log(sum(math.exp(x) for x in logits))
    assert loss.item() == pytest.approx(expected / 3, rel=1e-5)


@pytest.fixture
def encoder():
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_embedder_dir()), device="cpu")


QUESTIONS = ["capital of france", "capital of spain", "highest mountain", "river in africa", "capital of japan", "oslo"]
PASSAGES = ["paris is in france", "madrid is in spain", "everest is high", "the nile", "tokyo is in japan", "oslo, norway"]
IDS = [f"p{i}" for i in range(6)]


def plain_gradient(encoder):
    encoder.zero_grad()
    loss = mnrl_loss(encode_with_grad(encoder, QUESTIONS), encode_with_grad(encoder, PASSAGES), 20.0, IDS)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in encoder.named_parameters() if p.grad is not None}


def cached_gradient(encoder, chunk):
    encoder.zero_grad()
    loss = cached_mnrl_backward(encoder, QUESTIONS, PASSAGES, 20.0, chunk, IDS)
    return loss.item(), {n: p.grad.clone() for n, p in encoder.named_parameters() if p.grad is not None}


def test_gradcache_gradient_equals_the_plain_gradient_in_small_chunks(encoder):
    encoder.eval()  # no dropout: chunking must not change the gradient at all
    loss, grads = plain_gradient(encoder)
    cached_loss, cached = cached_gradient(encoder, chunk=2)
    assert cached_loss == pytest.approx(loss, rel=1e-5)
    assert grads.keys() == cached.keys() and grads
    for name in grads:
        torch.testing.assert_close(cached[name], grads[name], rtol=1e-4, atol=1e-6)


def test_gradcache_replays_the_dropout_masks(encoder):
    """With dropout on and one chunk, the cached pass must re-draw exactly the masks of its no-grad pass."""
    encoder.train()
    torch.manual_seed(3)
    loss, grads = plain_gradient(encoder)
    torch.manual_seed(3)
    cached_loss, cached = cached_gradient(encoder, chunk=len(QUESTIONS))
    assert cached_loss == pytest.approx(loss, rel=1e-5)
    for name in grads:
        torch.testing.assert_close(cached[name], grads[name], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("options", [{}, {"cached": "true", "chunk_size": "2"}, {"passages": "index"}])
def test_only_the_tower_trains_and_the_index_stays(tmp_path, tiny_data, options):
    ctx, strategy = tiny_context(tmp_path, tiny_data, "ft_embed", strategy_options=options)
    encoder = ctx.pipeline.query_encoder
    encoder_before, generator_before = snapshot(encoder), snapshot(ctx.pipeline.generator.model)
    vectors_before = ctx.pipeline.index.vectors.copy()
    strategy.fit(ctx)
    assert changed(encoder_before, encoder) >= encoder_trainable_names(encoder)
    assert not changed(generator_before, ctx.pipeline.generator.model)
    assert all(p.grad is None for p in ctx.pipeline.generator.model.parameters())
    assert (ctx.pipeline.index.vectors == vectors_before).all() and ctx.index_refreshes == 0
    assert ctx.trained_tokens > 0


def test_reindex_re_encodes_the_corpus_with_the_tuned_tower(tmp_path, tiny_data):
    ctx, strategy = tiny_context(tmp_path, tiny_data, "ft_embed", strategy_options={"reindex": "true"})
    vectors_before = ctx.pipeline.index.vectors.copy()
    strategy.fit(ctx)
    assert ctx.index_refreshes == 1 and ctx.refresh_seconds > 0
    assert not (ctx.pipeline.index.vectors == vectors_before).all()


def test_batch_defaults_to_the_papers_8_and_follows_batch_size(tmp_path, tiny_data):
    ctx, _ = tiny_context(tmp_path, tiny_data, "ft_embed")
    assert ctx.config.batch_size == 8  # resolved before the run: the stored config says so
    steps = ft_embed.train_embedder(ctx, 1e-4, EmbedOptions(), ctx.config.batch_size)
    assert steps == 1  # 6 pairs at batch 8, 1 epoch
    ctx, _ = tiny_context(tmp_path, tiny_data, "ft_embed", batch_size=2, epochs=2)
    assert ft_embed.train_embedder(ctx, 1e-4, EmbedOptions(), ctx.config.batch_size) == 6
    ctx, _ = tiny_context(tmp_path, tiny_data, "ft_embed", strategy_options={"cached": "true"})
    assert ctx.config.batch_size == 64


def test_unlabelled_data_is_refused_before_anything_is_stored(tiny_data_unlabelled, capsys):
    assert run_cli(tiny_run_args(tiny_data_unlabelled, "ft_embed")) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "needs context labels" in lines[0] and "Traceback" not in err
    assert Store(os.environ["HARNESS_DB"]).query("SELECT id FROM runs") == []


def test_a_bad_option_value_is_one_clear_line(tiny_data, capsys):
    assert run_cli(tiny_run_args(tiny_data, "ft_embed", "--set", "passages=somewhere")) == 2
    err = capsys.readouterr().err
    assert "passages must be 'tower' or 'index'" in err and len(err.strip().splitlines()) == 1
