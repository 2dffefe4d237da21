"""The two likelihoods every joint strategy is built from, and the retrieval they score.

Notation (docs/architecture.md §5): question x, answer y = y_1..y_T, passages z in the top-k set Z(x).
    q = E_q(x), d = E_p(z), both L2-normalized;  s(x, z) = q·d
    p_η(z|x)   = softmax_{z∈Z(x)}(s(x, z) / τ)                     retrieval_log_probs
    log p_θ(y|x,z) = Σ_t log p_θ(y_t | prompt(x, z), y_<t)     passage_answer_log_probs (answer tokens only)
The passage vectors d are the indexed (frozen) ones (`indexed_passage_vectors`), or re-encoded by a
training passage tower with grad (`passage_vectors_with_grad`). The losses that combine them live in
the strategy files, beside their maths (rag_token.py, rag_sequence.py, ...).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from harness.models.generation import Generator
from harness.pipeline import RagPipeline
from harness.retrieval.index import encode_texts, encode_with_grad
from harness.types import Passage


def retrieve_rows(pipeline: RagPipeline, questions: list[str], k: int, encoder=None) -> np.ndarray:
    """Top-k corpus rows under the current query tower, no grad: (B, k)."""
    rows, _ = pipeline.index.search(encode_texts(encoder or pipeline.query_encoder, questions), k)
    return rows


def indexed_passage_vectors(pipeline: RagPipeline, rows: np.ndarray) -> torch.Tensor:
    """The indexed (frozen) vectors of corpus `rows` of any shape, e.g. (B, k) -> (B, k, D), (B,) -> (B, D).

    Strategies that train E_p re-encode instead (`passage_vectors_with_grad`)."""
    rows = np.asarray(rows)
    vectors = np.asarray(pipeline.index.vectors[rows.reshape(-1)]).reshape(*rows.shape, -1)
    return torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))


def passage_vectors_with_grad(passage_encoder, passages: Sequence[Sequence[Passage]]) -> torch.Tensor:
    """E_p(z) for each question's candidates, re-encoded with the autograd graph kept: (B, k, D).

    Every row must hold the same number of passages (pad with any passage and mask the scores).
    """
    B, k = len(passages), len(passages[0])
    flat = [z.as_text() for zs in passages for z in zs]
    return encode_with_grad(passage_encoder, flat).view(B, k, -1)


def retrieval_log_probs(query_encoder, questions: list[str], passage_vectors: torch.Tensor, tau: float) -> torch.Tensor:
    """log p_η(z|x) over each question's candidates, with grad into E_q: (B, k)."""
    q = encode_with_grad(query_encoder, questions)  # (B, D)
    scores = torch.einsum("bd,bkd->bk", q, passage_vectors.to(q.device))  # (B, k) cosine
    return torch.log_softmax(scores / tau, dim=-1)


def passage_answer_log_probs(
    generator: Generator, questions: list[str], passages: list[list[Passage]], answers: list[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log p_θ(y_t | x, z, y_<t) with one passage z in the prompt: (B, k, T), mask (B, k, T)."""
    B, k = len(questions), len(passages[0])
    prompts = [generator.format_prompt(q, [z]) for q, zs in zip(questions, passages) for z in zs]
    repeated = [a for a in answers for _ in range(k)]
    token_lp, mask = generator.answer_log_probs(prompts, repeated)  # (B*k, T)
    return token_lp.view(B, k, -1), mask.view(B, k, -1)
