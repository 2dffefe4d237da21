"""Training building blocks shared by strategies. The loops themselves live in each strategy file.

Notation (DESIGN.md §5): question x, answer y = y_1..y_T, passages z in the top-k set Z(x).
    q = E_q(x), d = E_p(z), both L2-normalized;  s(x, z) = q·d
    p_η(z|x)   = softmax_{z∈Z(x)}(s(x, z) / τ)
    log p_θ(y|x,z) = Σ_t log p_θ(y_t | prompt(x, z), y_<t)     (answer tokens only)
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from harness.generation import Generator
from harness.pipeline import RagPipeline
from harness.retrieval import encode_texts, encode_with_grad
from harness.types import Passage, RagExample


# -- data order ---------------------------------------------------------------------------------
def epoch_batches(examples: Sequence[RagExample], batch_size: int, epochs: int, seed: int) -> Iterator[tuple[int, list[RagExample]]]:
    """(epoch, batch) pairs; each epoch is a seeded shuffle, so a run is reproducible."""
    rng = random.Random(seed)
    for epoch in range(epochs):
        order = list(examples)
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            yield epoch, order[start : start + batch_size]


def steps_per_run(n_examples: int, batch_size: int, epochs: int) -> int:
    return epochs * -(-n_examples // batch_size)


# -- optimisation -------------------------------------------------------------------------------
def linear_schedule(param_groups: list[tuple[list[torch.nn.Parameter], float]], total_steps: int):
    """AdamW over groups of (params, lr) with the papers' linear decay to 0, no warm-up."""
    groups = [{"params": [p for p in params if p.requires_grad], "lr": lr} for params, lr in param_groups]
    groups = [g for g in groups if g["params"]]
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1.0 - step / max(1, total_steps)))
    return optimizer, scheduler


def freeze(module: torch.nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)


def add_lora(generator: Generator, rank: int, quantized: bool = False) -> None:
    """Wrap the generator's model with LoRA adapters (rank r, alpha 2r) on every linear layer (QLoRA if 4-bit)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    model = generator.model
    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    generator.model = get_peft_model(model, config)


# -- retrieval with gradient --------------------------------------------------------------------
def retrieve_rows(pipeline: RagPipeline, questions: list[str], k: int, encoder=None) -> np.ndarray:
    """Top-k corpus rows under the current query tower, no grad: (B, k)."""
    rows, _ = pipeline.index.search(encode_texts(encoder or pipeline.query_encoder, questions), k)
    return rows


def indexed_passage_vectors(pipeline: RagPipeline, rows: np.ndarray) -> torch.Tensor:
    """The indexed (frozen) vectors of `rows`: (B, k, D). Strategies that train E_p re-encode instead."""
    vectors = np.asarray(pipeline.index.vectors[rows.reshape(-1)]).reshape(*rows.shape, -1)
    return torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))


def retrieval_log_probs(query_encoder, questions: list[str], passage_vectors: torch.Tensor, tau: float) -> torch.Tensor:
    """log p_η(z|x) over each question's candidates, with grad into E_q: (B, k)."""
    q = encode_with_grad(query_encoder, questions)  # (B, D)
    scores = torch.einsum("bd,bkd->bk", q, passage_vectors.to(q.device))  # (B, k) cosine
    return torch.log_softmax(scores / tau, dim=-1)


# -- generator likelihoods ----------------------------------------------------------------------
def passage_answer_log_probs(
    generator: Generator, questions: list[str], passages: list[list[Passage]], answers: list[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log p_θ(y_t | x, z, y_<t) with one passage z in the prompt: (B, k, T), mask (B, k, T)."""
    B, k = len(questions), len(passages[0])
    prompts = [generator.format_prompt(q, [z]) for q, zs in zip(questions, passages) for z in zs]
    repeated = [a for a in answers for _ in range(k)]
    token_lp, mask = generator.answer_log_probs(prompts, repeated)  # (B*k, T)
    return token_lp.view(B, k, -1), mask.view(B, k, -1)


def concatenated_answer_log_probs(
    generator: Generator, questions: list[str], passages: list[list[Passage]], answers: list[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log p_θ(y_t | x, z_1..z_k, y_<t) with all passages in one prompt (inference form): (B, T)."""
    prompts = [generator.format_prompt(q, zs) for q, zs in zip(questions, passages)]
    return generator.answer_log_probs(prompts, answers)


def gold_answer(example: RagExample) -> str:
    """The answer a strategy trains on: the first gold answer."""
    return example.answers[0]


# -- the RAG marginal losses (Lewis et al., 2020) -----------------------------------------------
def rag_sequence_loss(log_pz: torch.Tensor, token_lp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L = −log Σ_z p_η(z|x) p_θ(y|x,z), averaged over the batch.

    log_pz (B, k); token_lp, mask (B, k, T). In log space: −logsumexp_z(log p_η(z|x) + Σ_t log p_θ(y_t|x,z,y_<t)).
    """
    seq_lp = (token_lp * mask).sum(-1)  # (B, k)
    return -torch.logsumexp(log_pz + seq_lp, dim=-1).mean()


def rag_token_loss(log_pz: torch.Tensor, token_lp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L = −Σ_t log Σ_z p_η(z|x) p_θ(y_t|x,z,y_<t), averaged over the batch.

    The mixture is taken per token: logsumexp over k of (log p_η(z|x) + log p_θ(y_t|…)), then summed over
    the answer's real tokens.
    """
    per_token = torch.logsumexp(log_pz[:, :, None] + token_lp, dim=1)  # (B, T)
    return -(per_token * mask[:, 0, :]).sum(-1).mean()
