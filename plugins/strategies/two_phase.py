"""`two_phase`: RAG-Token with the query tower frozen (phase 1), then with the generator frozen (phase 2).

Lawton et al. (2025), §2.4 and Table 3 row "2-Phase"; the loss: Lewis et al. (2020), RAG-Token.

    harness run --plugin two_phase
    harness grid --plugin two_phase --lr-grid paper       # each phase's learning rate searched on its own

Objective: the RAG-Token loss of rag_token.py,

    L(η, θ) = −(1/B) Σ_b Σ_t log Σ_{z∈Z(x_b)} p_η(z|x_b) · p_θ(y_t | x_b, z, y_<t),

minimised first over θ alone (the LoRA adapters; E_q frozen, so Z(x) and p_η(z|x) are those of the base
retriever) for cfg.epochs at the generator learning rate, then over η alone (E_q in full; the tuned
generator frozen, run without grad) for cfg.epochs at the embedder learning rate. Each phase has its own
AdamW and linear schedule. Because phase 1 does not depend on the embedder's learning rate, the two
rates can be grid-searched independently: `harness grid` first searches the generator rate with
`--set phases=1` (stop after phase 1), then the embedder rate from the chosen generator rate.

`--set retriever_candidates=L` widens p_η(z|x) to the top-L in both phases, the generator still on the
top-k (rag_token.py gives the loss): phase 2's E_q gradient then reaches passages ranked k+1..L.

Defaults as rag_token: gen lr 1e-3, embed lr 1e-6 (rag_token.py and ft_gen.py say why).
"""

from dataclasses import dataclass, field

from harness import hookimpl
from harness.builtins.strategies.rag_token import (
    DEFAULT_EMBED_LR,
    DEFAULT_GEN_LR,
    LAWTON,
    LEWIS,
    RagOptions,
    rag_token_loss,
    train_rag,
)
from harness.training import freeze, prepare_generator_for_lora, save_adapter, save_embedder, unfreeze


class TwoPhase:
    name = "two_phase"
    citation = LAWTON + "\n" + LEWIS
    needs_context_labels = False
    sharded_generator = True  # its generator calls go through backward_in_chunks (FSDP-safe)
    description = "RAG-Token: generator with E_q frozen, then E_q with the generator frozen (Lawton et al. 2025)"
    learning_rates = {"embed_lr": DEFAULT_EMBED_LR, "gen_lr": DEFAULT_GEN_LR}
    # `harness grid` searches these one after the other: (learning rate, options for its cells)
    lr_stages = (("gen_lr", {"phases": "1"}), ("embed_lr", {}))

    @dataclass
    class Options(RagOptions):
        phases: int = field(default=2, metadata={"help": "2: both phases; 1: stop after phase 1 (generator only)"})

        def __post_init__(self):
            super().__post_init__()
            if self.phases not in (1, 2):
                raise ValueError(f"phases must be 1 or 2, got {self.phases}")

    def fit(self, ctx) -> None:
        encoder = ctx.pipeline.query_encoder
        embed_lr = ctx.config.embed_lr
        gen_lr = ctx.config.gen_lr
        generator = prepare_generator_for_lora(ctx)
        # phase 1: the generator's adapters, E_q frozen
        freeze(encoder)
        steps = train_rag(ctx, rag_token_loss, embed_lr, gen_lr, "two_phase 1/2 (generator)",
                          micro_batch=ctx.options.micro_batch, retriever_candidates=ctx.options.retriever_candidates)
        save_adapter(ctx, generator)
        if ctx.options.phases == 1:
            return
        # phase 2: E_q, the generator frozen
        freeze(generator.model)
        unfreeze(encoder)
        train_rag(ctx, rag_token_loss, embed_lr, gen_lr, "two_phase 2/2 (embedder)", step_offset=steps,
                  micro_batch=ctx.options.micro_batch, retriever_candidates=ctx.options.retriever_candidates)
        save_embedder(ctx, encoder)


@hookimpl
def register_strategies(register):
    register(TwoPhase)
