"""The two likelihoods every joint strategy is built from, and the retrieval they score.

Notation (docs/architecture.md §5): question x, answer y = y_1..y_T, passages z in the top-k set Z(x).
    q = E_q(x), d = E_p(z), both L2-normalized;  s(x, z) = q·d
    p_η(z|x)   = softmax_{z∈Z(x)}(s(x, z) / τ)                     retrieval_log_probs
    log p_θ(y|x,z) = Σ_t log p_θ(y_t | prompt(x, z), y_<t)     passage_answer_log_probs (answer tokens only)
The passage vectors d are the indexed (frozen) ones (`indexed_passage_vectors`), or re-encoded by a
training passage tower with grad (`passage_vectors_with_grad`). The losses that combine them live in
the strategy files, beside their maths (rag_token.py, rag_sequence.py, ...).

Two widenings of the retrieved set, both off by default (then everything is over the top-k):
- `retriever_candidates=L` (`candidate_count`): p_η(z|x) and the retriever's gradient over the top-L,
  the reader still trained on the top-k: log p_θ(y|x,z) of the other L−k passages is computed without
  grad (`candidate_answer_log_probs`), so a gold passage at rank k+1..L gets pulled up while the generator
  learns from the k it reads. At L = k it is the top-k loss exactly.
- `refresh=rerank` with `rerank_candidates=L` (`retrieve_rows(..., rerank=L)`): for a passage tower that
  trains, over-retrieve L from the stale index, re-encode those with the current E_p and keep the best.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import numpy as np
import torch

from harness.models.generation import Generator
from harness.pipeline import RagPipeline
from harness.retrieval.index import encode_texts, encode_with_grad
from harness.types import Passage


def retrieve_rows(pipeline: RagPipeline, questions: list[str], k: int, encoder=None, rerank: int = 0) -> np.ndarray:
    """Top-k corpus rows under the current query tower, no grad: (B, k).

    `rerank=L` > k (refresh=rerank): the top-k of `rerank_rows` instead, the L candidates of the index in
    use re-scored against the current passage tower."""
    queries = encode_texts(encoder or pipeline.query_encoder, questions)
    if rerank > k:
        return rerank_rows(pipeline, queries, k, rerank)
    rows, _ = pipeline.index.search(queries, k)
    return rows


def rerank_rows(pipeline: RagPipeline, queries: np.ndarray, k: int, candidates: int) -> np.ndarray:
    """Over-retrieve `candidates` rows per query from the index in use (stale while E_p trains), re-encode
    the distinct ones with the current `pipeline.passage_encoder` (no grad, eval mode: as a re-index would)
    and keep the k best by the current scores q·E_p(z), best first: (B, k).

    Costs B·L passage forwards a step (the FLOP counter charges them) instead of the corpus per refresh;
    when L covers the corpus the result is a full re-index's top-k."""
    rows, _ = pipeline.index.search(queries, min(candidates, len(pipeline.index)))  # (B, L) stale
    distinct = np.unique(rows[rows >= 0])
    vectors = encode_texts(pipeline.passage_encoder, [pipeline.corpus[int(r)].as_text() for r in distinct])
    fresh = vectors[np.searchsorted(distinct, np.where(rows >= 0, rows, distinct[0]))]  # (B, L, D)
    scores = np.einsum("bd,bld->bl", queries, fresh)
    scores[rows < 0] = -np.inf
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(rows, order, 1)


def check_retriever_candidates(value: int) -> None:
    """The option check of `retriever_candidates` (ValueError): 0 (= k) or a count."""
    if value < 0:
        raise ValueError(f"retriever_candidates must be >= 0 (0 = k), got {value}")


def candidate_count(pipeline: RagPipeline, k: int, retriever_candidates: int) -> int:
    """L: the candidates p_η(z|x) is taken over, `retriever_candidates` (0 = k), at least k, at most the corpus."""
    return min(max(k, retriever_candidates), len(pipeline.corpus))


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


def candidate_answer_log_probs(generator: Generator, questions: list[str], passages: list[list[Passage]],
                               answers: list[str], read: int, grad: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """`passage_answer_log_probs` over each question's L candidates: (B, L, T), mask (B, L, T).

    The first `read` (the top-k the reader trains on) with grad when `grad`; the other L−k without grad:
    they only weigh the retriever's gradient. Both parts have the same answers, so the same T."""
    with nullcontext() if grad else torch.no_grad():
        token_lp, mask = passage_answer_log_probs(generator, questions, [zs[:read] for zs in passages], answers)
    if len(passages[0]) <= read:
        return token_lp, mask
    with torch.no_grad():
        rest_lp, rest_mask = passage_answer_log_probs(generator, questions, [zs[read:] for zs in passages], answers)
    return torch.cat([token_lp, rest_lp], 1), torch.cat([mask, rest_mask], 1)
