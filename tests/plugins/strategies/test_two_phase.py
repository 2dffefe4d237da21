"""two_phase: phase 1 trains the adapters with E_q frozen (bit for bit), phase 2 trains E_q with the
generator frozen (bit for bit); `phases=1` stops after phase 1."""

from harness.builtins.strategies import two_phase
from harness.training.loop import snapshot
from tests.plugins.strategies._tiny import changed, encoder_trainable_names, tiny_context


def test_each_phase_leaves_the_other_model_bit_for_bit(tmp_path, tiny_data, monkeypatch):
    ctx, strategy = tiny_context(tmp_path, tiny_data, "two_phase")
    model_of = lambda: ctx.pipeline.generator.model  # noqa: E731 (LoRA wraps it inside fit)
    encoder = ctx.pipeline.query_encoder
    snapshots = []  # (generator, encoder) at the start of each phase, then at the end
    original = two_phase.train_rag

    def spy(ctx, *args, **kwargs):
        snapshots.append((snapshot(model_of()), snapshot(encoder)))
        return original(ctx, *args, **kwargs)

    monkeypatch.setattr(two_phase, "train_rag", spy)
    strategy.fit(ctx)
    snapshots.append((snapshot(model_of()), snapshot(encoder)))
    (gen0, enc0), (gen1, enc1), _ = snapshots
    lora = {n for n, _ in model_of().named_parameters() if "lora_" in n}
    # phase 1: the adapters move, the embedder is untouched bit for bit
    assert changed(gen0, _as_module(gen1)) == lora
    assert not changed(enc0, _as_module(enc1))
    # phase 2: the embedder moves, the generator (adapters included) is untouched bit for bit
    assert not changed(gen1, model_of())
    assert changed(enc1, encoder) == encoder_trainable_names(encoder)
    ctx.flush_log()
    steps = sorted({r["step"] for r in ctx.folder.steps() if r["name"] == "loss"})
    assert steps == [1, 2, 3, 4]  # two phases of 2 steps, numbered on
    assert set(ctx.folder.artifacts()) == {"adapter", "embedder"}


class _as_module:
    """A snapshot dict seen as a module, for `changed`."""

    def __init__(self, params):
        self.params = params

    def named_parameters(self):
        return self.params.items()


def test_phases_1_stops_after_the_generator(tmp_path, tiny_data):
    ctx, strategy = tiny_context(tmp_path, tiny_data, "two_phase", strategy_options={"phases": "1"})
    encoder_before = snapshot(ctx.pipeline.query_encoder)
    strategy.fit(ctx)
    assert not changed(encoder_before, ctx.pipeline.query_encoder)
    assert set(ctx.folder.artifacts()) == {"adapter"}
