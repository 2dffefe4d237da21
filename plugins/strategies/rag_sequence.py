"""`rag_sequence`: joint fine-tuning of the query tower (full) and the generator (LoRA/QLoRA), RAG-Sequence.

Lewis et al. (2020), RAG-Sequence; Lawton et al. (2025), §2.3 and Table 3 row "RAG-Seq.".

    harness run --plugin rag_sequence
    harness run --plugin rag_sequence --embed-lr 3e-7 --gen-lr 1e-5

Objective. Z(x) = the top-k retrieved at this step with the current E_q (indexed passage vectors d_z,
frozen); p_η(z|x) = softmax_{z∈Z(x)}(E_q(x)·d_z / τ). The whole answer is generated from one passage,
and the passage is marginalised out once per sequence:

    L(η, θ) = −(1/B) Σ_b log Σ_{z∈Z(x_b)} p_η(z|x_b) · p_θ(y_b | x_b, z)
    log p_θ(y|x,z) = Σ_{t=1..T} log p_θ(y_t | prompt(x, z), y_<t)            (answer tokens only)

in log space: −logsumexp_z(log p_η(z|x) + Σ_t log p_θ(y_t|…)) (`rag_sequence_loss`). RAG-Token instead
mixes the passages at every token (rag_token.py); the loop, the two learning rates and the defaults are
the same, and live in `rag_token.train_rag`: 1) retrieve with the current E_q, 2) score log p_η(z|x)
with grad, 3) per-passage answer likelihoods (B, k, T), 4) this loss, 5) one AdamW step on both groups.

`--set retriever_candidates=L` (L ≥ k): the sum over z runs over the top-L with p_η(z|x) normalised
there, log p_θ(y|x,z) of the passages ranked k+1..L computed without grad (the generator trains on the
top-k, E_q on all L); L = k is the loss above.
"""

import torch

from harness import hookimpl
from harness.builtins.strategies.rag_token import (
    DEFAULT_EMBED_LR,
    DEFAULT_GEN_LR,
    LAWTON,
    LEWIS,
    RagOptions,
    fit_jointly,
)


def rag_sequence_loss(log_pz: torch.Tensor, token_lp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L = −log Σ_z p_η(z|x) p_θ(y|x,z), averaged over the batch.

    log_pz (B, k); token_lp, mask (B, k, T). In log space: −logsumexp_z(log p_η(z|x) + Σ_t log p_θ(y_t|x,z,y_<t)).
    """
    seq_lp = (token_lp * mask).sum(-1)  # (B, k)
    return -torch.logsumexp(log_pz + seq_lp, dim=-1).mean()


class RagSequence:
    name = "rag_sequence"
    citation = LEWIS + "\n" + LAWTON
    needs_context_labels = False
    sharded_generator = True  # its generator calls go through backward_in_chunks (FSDP-safe)
    description = "joint E_q + generator, RAG-Sequence marginal over the top-k (Lewis et al. 2020)"
    learning_rates = {"embed_lr": DEFAULT_EMBED_LR, "gen_lr": DEFAULT_GEN_LR}
    Options = RagOptions

    def fit(self, ctx) -> None:
        fit_jointly(ctx, rag_sequence_loss, self.name)


@hookimpl
def register_strategies(register):
    register(RagSequence)
