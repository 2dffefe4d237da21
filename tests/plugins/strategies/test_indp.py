"""indp: ft_gen on the base retriever's passages, then ft_embed from the base tower; cost = the sum."""

import os

from harness.builtins.strategies import indp
from harness.store.db import Store
from harness.training.loop import snapshot
from tests.conftest import run_cli, tiny_run_args
from tests.plugins.strategies._tiny import changed, encoder_trainable_names, tiny_context


def test_the_generator_trains_on_the_base_retriever_then_the_tower_from_its_base(tmp_path, tiny_data, monkeypatch):
    ctx, strategy = tiny_context(tmp_path, tiny_data, "indp")
    encoder = ctx.pipeline.query_encoder
    base_encoder = snapshot(encoder)
    seen = {}
    original_gen, original_embed = indp.train_generator, indp.train_embedder

    def spy_gen(ctx, *args, **kwargs):
        seen["encoder_changed_before_gen"] = changed(base_encoder, encoder)
        return original_gen(ctx, *args, **kwargs)

    def spy_embed(ctx, *args, **kwargs):
        seen["generator_at_embed"] = snapshot(ctx.pipeline.generator.model)
        seen["encoder_changed_before_embed"] = changed(base_encoder, encoder)
        return original_embed(ctx, *args, **kwargs)

    monkeypatch.setattr(indp, "train_generator", spy_gen)
    monkeypatch.setattr(indp, "train_embedder", spy_embed)
    strategy.fit(ctx)
    assert seen["encoder_changed_before_gen"] == set() and seen["encoder_changed_before_embed"] == set()
    assert changed(base_encoder, encoder) == encoder_trainable_names(encoder)
    assert not changed(seen["generator_at_embed"], ctx.pipeline.generator.model)  # ft_embed leaves it be
    assert set(ctx.folder.artifacts()) == {"adapter", "embedder"}


def test_cost_is_the_sum_of_ft_gen_and_ft_embed(tiny_data):
    for strategy in ("ft_gen", "ft_embed", "indp"):
        assert run_cli(tiny_run_args(tiny_data, strategy)) == 0
    store = Store(os.environ["HARNESS_DB"])
    tokens = {r["strategy"]: store.run_metrics(r["id"])["cost"]["trained_tokens"]
              for r in store.query("SELECT id, strategy FROM runs WHERE status = 'finished'")}
    assert tokens["indp"] == tokens["ft_gen"] + tokens["ft_embed"] > 0
