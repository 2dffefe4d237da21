"""rag_token and rag_sequence: the joint loop sends gradient into E_q (through p(z|x)) and into the LoRA
adapters, and nowhere else; the two losses differ as they should; both artifacts are saved."""

import pytest
import torch

from harness.builtins.strategies import rag_token
from harness.builtins.strategies.rag_sequence import rag_sequence_loss
from harness.builtins.strategies.rag_token import rag_token_loss
from harness.training.loop import snapshot
from tests.plugins.strategies._tiny import (
    assert_micro_batches_match,
    changed,
    encoder_trainable_names,
    tiny_context,
)


def run_with_spy(ctx, strategy, monkeypatch):
    """fit(), remembering every parameter when the joint loop starts (after LoRA was added)."""
    at_start = {}
    original = rag_token.train_rag

    def spy(ctx, *args, **kwargs):
        at_start.update({f"gen.{n}": p for n, p in snapshot(ctx.pipeline.generator.model).items()})
        at_start.update({f"enc.{n}": p for n, p in snapshot(ctx.pipeline.query_encoder).items()})
        return original(ctx, *args, **kwargs)

    monkeypatch.setattr(rag_token, "train_rag", spy)
    strategy.fit(ctx)
    return at_start


@pytest.mark.parametrize("name", ["rag_token", "rag_sequence"])
def test_gradients_reach_the_query_tower_and_the_adapters_only(tmp_path, tiny_data, monkeypatch, name):
    ctx, strategy = tiny_context(tmp_path, tiny_data, name)
    vectors_before = ctx.pipeline.index.vectors.copy()
    at_start = run_with_spy(ctx, strategy, monkeypatch)
    model, encoder = ctx.pipeline.generator.model, ctx.pipeline.query_encoder
    gen_before = {n[4:]: p for n, p in at_start.items() if n.startswith("gen.")}
    enc_before = {n[4:]: p for n, p in at_start.items() if n.startswith("enc.")}
    lora = {n for n, _ in model.named_parameters() if "lora_" in n}
    assert lora and changed(gen_before, model) == lora
    assert all(p.grad is None for n, p in model.named_parameters() if "lora_" not in n)
    assert changed(enc_before, encoder) == encoder_trainable_names(encoder)  # E_q in full, via p(z|x)
    assert (ctx.pipeline.index.vectors == vectors_before).all()  # passage vectors: as indexed, frozen
    kinds = set(ctx.folder.artifacts())
    assert kinds == {"adapter", "embedder"}


def test_the_query_tower_gets_its_gradient_through_the_retrieval_distribution(tmp_path, tiny_data):
    """One step by hand: the tower's gradient is non-zero, and zero if p(z|x) is detached."""
    from harness.training.likelihoods import (
        indexed_passage_vectors,
        passage_answer_log_probs,
        retrieval_log_probs,
        retrieve_rows,
    )
    from harness.training.loop import gold_answer

    ctx, _ = tiny_context(tmp_path, tiny_data, "rag_token")
    pipeline, batch = ctx.pipeline, ctx.train[:3]
    questions, answers = [ex.question for ex in batch], [gold_answer(ex) for ex in batch]
    rows = retrieve_rows(pipeline, questions, 5)
    log_pz = retrieval_log_probs(pipeline.query_encoder, questions, indexed_passage_vectors(pipeline, rows), 0.05)
    token_lp, mask = passage_answer_log_probs(pipeline.generator, questions, [pipeline.passages(r) for r in rows], answers)
    for loss_fn in (rag_token_loss, rag_sequence_loss):
        pipeline.query_encoder.zero_grad()
        loss_fn(log_pz, token_lp.detach(), mask).backward(retain_graph=True)
        grads = [p.grad for p in pipeline.query_encoder.parameters() if p.grad is not None]
        assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    detached = rag_token_loss(log_pz.detach(), token_lp.detach(), mask)
    assert not detached.requires_grad


def test_token_and_sequence_marginals_differ_on_multi_token_answers():
    torch.manual_seed(0)
    log_pz = torch.log_softmax(torch.randn(2, 3), -1)
    token_lp = torch.log_softmax(torch.randn(2, 3, 4, 7), -1)[..., 0]  # (B, k, T)
    mask = torch.ones(2, 3, 4)
    tok, seq = rag_token_loss(log_pz, token_lp, mask), rag_sequence_loss(log_pz, token_lp, mask)
    assert tok.item() < seq.item()  # Jensen: mixing per token is never worse than per sequence
    one = mask.clone()
    one[..., 1:] = 0
    assert rag_token_loss(log_pz, token_lp, one).item() == pytest.approx(rag_sequence_loss(log_pz, token_lp, one).item())


@pytest.mark.parametrize("loss_fn", [rag_token_loss, rag_sequence_loss])
def test_micro_batches_give_the_whole_batch_gradient(tmp_path, tiny_data, loss_fn):
    """One question at a time (the default) and the whole batch at once: the same loss and gradient."""
    from harness.models.lora import prepare_generator_for_lora
    from harness.training.loop import backward_in_chunks, unfreeze

    ctx, _ = tiny_context(tmp_path, tiny_data, "rag_token")
    prepare_generator_for_lora(ctx)
    unfreeze(ctx.pipeline.query_encoder)
    modules = [ctx.pipeline.query_encoder, ctx.pipeline.generator.model]
    shares = assert_micro_batches_match(modules, lambda micro: backward_in_chunks(
        ctx, ctx.train[:3], micro, lambda chunk: rag_token.rag_step(ctx, chunk, 3, loss_fn, True, True)))
    assert [[share for share, _ in parts] for parts in shares] == [[1.0], [1 / 3] * 3]


def test_a_negative_micro_batch_is_a_clean_error(tiny_data, capsys):
    from tests.conftest import run_cli, tiny_run_args

    assert run_cli(tiny_run_args(tiny_data, "rag_sequence", "--set", "micro_batch=-1")) == 2
    assert "micro_batch must be >= 0" in capsys.readouterr().err
