"""`indp`: ft_embed and ft_gen, each from the base models, combined for evaluation.

Lawton et al. (2025), §2.1-2.2 and Table 3 row "Indp.".

    harness run --plugin indp
    harness run --plugin indp --embed-lr 1e-6 --gen-lr 1e-5

Objectives (two independent problems, see ft_embed.py and ft_gen.py):

    embedder:  min_E  −(1/B) Σ_b log softmax_{b'}(cos(E(x_b), E(z_{b'})) / τ)_b     (needs context labels)
    generator: min_θ  −(1/B) Σ_b Σ_t log p_θ(y_t | prompt(x_b, Z_0(x_b)), y_<t)

where Z_0(x) is the top-k of the *base* retriever: the generator is trained first, on the base
retriever's passages, and never sees the tuned embedder; then the embedder is tuned from its base
weights. The evaluated pipeline is the tuned embedder (retrieving from the original index unless
`--set reindex=true`) feeding the tuned generator. Its cost is the sum of the two fits, and each
learning rate can be chosen on its own (`harness grid --plugin indp` searches them one after the other).

Defaults are ft_embed's (lr 1e-5, batch 8) and ft_gen's (lr 1e-3, --batch-size), 1 epoch each.
"""

from dataclasses import dataclass

from harness import DEFAULT_BATCH_SIZE, hookimpl
from harness.builtins.strategies.ft_embed import (
    DEFAULT_EMBED_LR,
    EmbedOptions,
    default_batch,
    finish_embedder,
    train_embedder,
)
from harness.builtins.strategies.ft_gen import DEFAULT_GEN_LR, train_generator
from harness.builtins.strategies.rag_token import LAWTON
from harness.training import prepare_generator_for_lora, save_adapter


class Independent:
    name = "indp"
    citation = LAWTON
    needs_context_labels = True
    sharded_generator = True  # its generator calls go through backward_in_chunks (FSDP-safe)
    description = "ft_embed + ft_gen, each from the base models, combined (Lawton et al. 2025)"
    learning_rates = {"embed_lr": DEFAULT_EMBED_LR, "gen_lr": DEFAULT_GEN_LR}
    lr_stages = (("gen_lr", {}), ("embed_lr", {}))

    @dataclass
    class Options(EmbedOptions):
        """ft_embed's options (reindex, cached, chunk_size, passages) for the embedder half."""

    def fit(self, ctx) -> None:
        cfg = ctx.config
        # 1) the generator, on the base retriever's top-k (before the embedder changes)
        generator = prepare_generator_for_lora(ctx)
        steps = train_generator(ctx, cfg.gen_lr, desc="indp 1/2 (ft_gen)")
        save_adapter(ctx, generator)
        # 2) the embedder, from its base weights, on (question, gold passage)
        # its batch: ft_embed's (8; 64 cached) unless --batch-size differs from the harness's 4 (ft_gen's batch)
        embed_batch = default_batch(ctx.options) if cfg.batch_size == DEFAULT_BATCH_SIZE else cfg.batch_size
        train_embedder(ctx, cfg.embed_lr, ctx.options, embed_batch, desc="indp 2/2 (ft_embed)", step_offset=steps)
        finish_embedder(ctx, ctx.options)


@hookimpl
def register_strategies(register):
    register(Independent)
