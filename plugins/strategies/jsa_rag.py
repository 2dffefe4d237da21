"""`jsa_rag`: end-to-end RAG training by joint stochastic approximation, with a posterior retriever and a
Metropolis independence sampler (MIS) over the retrieved passages.

Cao, Wu, Cai, Zhao, Ou (2025), "Improving End-to-End Training of Retrieval-Augmented Generation Models
via Joint Stochastic Approximation" (JSA-RAG); the JSA algorithm: Ou & Song (2020).

    harness run --plugin jsa_rag                                      # offline defaults (`make run`)
    harness run --plugin jsa_rag --set proposals=16 --set candidates=10
    harness run --plugin jsa_rag --epochs 3 --set persistent=true     # JSA proper: chains carry across epochs
    harness run --plugin jsa_rag --set train_passages=true            # E_p trains too, index rebuilt as rag_end2end

Three models: the prior retriever p_η(h|x) (the query tower E_q, which decodes), the posterior retriever
q_φ(h|x,y) (a copy of the embedder that encodes the text `x [SEP] y`), and the generator p_θ(y|x,h)
(LoRA). For each training example (x, y):

1. Candidates H = top-K(prior) ∪ top-K(posterior) from the index (∪ the example's cached sample, when
   the chain is persistent). Over H, with d_h the passage vectors (indexed, or E_p(h) with grad):
       p_η(h|x)   = softmax_{h∈H}(E_q(x)·d_h / τ)        q_φ(h|x,y) = softmax_{h∈H}(φ(x [SEP] y)·d_h / τ)
2. E-step, MIS: n proposals h'_1..h'_n ~ q_φ(·|x,y) with replacement; log p_θ(y|x,h') without grad
   (once per distinct passage: the cost is bounded by |H|, not n). The chain starts at h'_1 (or at the
   cached sample from the previous epoch: JSA proper) and accepts h'_i with probability
       min(1, w(h'_i)/w(h)),    w(h) = p_θ(y|x,h) · p_η(h|x) / q_φ(h|x,y)
   i.e. an independence Metropolis-Hastings chain whose stationary law is the true posterior
   p(h|x,y) ∝ p_η(h|x) p_θ(y|x,h) over H. The acceptance rate is logged every step.
3. M-step: S = the chain's states with their frequencies f_h (Σ f_h = 1):
       L = (1/B) Σ_b Σ_{h∈S_b} f_h · [−log p_θ(y|x,h) − log p_η(h|x) − log q_φ(h|x,y)]
   one backward updates θ, η and φ: the generator learns from posterior samples, the prior is pulled
   towards them (the retrieval the harness evaluates), and the proposal q_φ towards the posterior.
   (L is linear in log p_θ, so the generator's part is back-propagated `m_step_chunk` pairs at a time:
   the same gradient with a fraction of the activation memory.)
4. Optional (`train_passages=true`): a separate passage tower E_p re-encodes H with grad and the corpus
   is re-indexed every `refresh_every` steps in the background, exactly as rag_end2end; or, with
   `refresh=rerank`, never while training: each top-K of step 1 is the best K of the stale index's top-R
   (`rerank_candidates`) re-scored against the current E_p (rag_end2end.py, docs/scaling.md).
Wider retriever candidates (`retriever_candidates=L`; 0 = `candidates`): H = top-L(prior) ∪
top-L(posterior), so p_η, q_φ and the retrievers' gradient are over the wider set, and the reader trains
on the chain's states drawn from it (the proposal set is the reader's set here). L = K is the above.
Decoding (the harness's evaluation) uses the prior retriever only, top-k passages concatenated.

Defaults and cost. 1 epoch (10 steps on the offline default's 38 questions, batch 4), K=5 (|H| ≤ 10),
n=8 proposals, τ = --tau (0.05). gen lr 1e-3, embed lr 1e-5 for η and φ (as rag_token): the paper's
rates (2e-5 generator with full fine-tuning, 1e-5 retriever over 20k steps) do nothing measurable in 10
LoRA steps. Per step the generator runs ≤ B·|H| forwards without grad (the distinct proposals, usually
far fewer: q_φ is peaked) and one forward+backward per distinct chain state — about rag_token's cost
(bench/bench_jsa_cost.py). On the 2-core CPU the default run fits in ~4 minutes plus evaluation with
the corpus index cached. With one epoch a persistent chain has nothing to carry; it matters with
`--epochs > 1`.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from harness import hookimpl
from harness.training import (
    IndexRefresher,
    StepMeter,
    check_refresh_policy,
    check_retriever_candidates,
    encode_with_grad,
    encoder_token_count,
    epoch_batches,
    generator_token_count,
    gold_answer,
    indexed_passage_vectors,
    linear_schedule,
    passage_vectors_with_grad,
    prepare_generator_for_lora,
    refresh_schedule,
    retrieve_rows,
    save_adapter,
    save_embedder,
    save_passage_tower,
    separate_passage_tower,
    steps_per_run,
    unfreeze,
)

DEFAULT_EMBED_LR = 1e-5
DEFAULT_GEN_LR = 1e-3
LIKELIHOOD_CHUNK = 16  # (question, passage) pairs per no-grad generator forward in the E-step
CITATION = """@article{cao2025jsarag,
  title={Improving End-to-End Training of Retrieval-Augmented Generation Models via Joint Stochastic Approximation},
  author={Cao, Hongyu and Wu, Yuxuan and Cai, Yucheng and Zhao, Xianyu and Ou, Zhijian}, year={2025}}
@article{ou2020joint, title={Joint Stochastic Approximation and Its Application to Learning Discrete Latent Variable Models},
  author={Ou, Zhijian and Song, Yunfu}, journal={UAI}, year={2020}}"""


@dataclass
class JsaOptions:
    proposals: int = field(default=8, metadata={"help": "n: MIS proposals per example per step, drawn from the posterior"})
    candidates: int = field(default=5, metadata={"help": "K: top-K of the prior and of the posterior form the candidates H"})
    persistent: bool = field(default=True, metadata={"help": "start each chain at the example's sample from the last epoch"})
    train_passages: bool = field(default=False, metadata={"help": "train a separate passage tower and re-index the corpus"})
    refresh_every: int = field(default=5, metadata={"help": "train_passages: re-index every N steps (0 = only at the end)"})
    refresh: str = field(default="background", metadata={"help": "train_passages: background, sync, rerank or none "
                                                                 "(rag_end2end's refresh policies)"})
    rerank_candidates: int = field(default=20, metadata={"help": "refresh=rerank: candidates taken from the stale index"})
    retriever_candidates: int = field(default=0, metadata={"help": "L: H = top-L(prior) ∪ top-L(posterior) "
                                                                   "(0 = candidates)"})
    m_step_chunk: int = field(default=4, metadata={"help": "M-step generator pairs per forward/backward (gradients "
                                                            "accumulate: same update, less memory; 0 = all at once)"})

    def __post_init__(self):
        if self.proposals < 1 or self.candidates < 1:
            raise ValueError(f"proposals and candidates must be at least 1, got {self.proposals}, {self.candidates}")
        check_refresh_policy(self.refresh, self.rerank_candidates)
        if self.refresh_every < 0 or self.m_step_chunk < 0:
            raise ValueError(f"refresh_every and m_step_chunk must be >= 0, got {self.refresh_every}, {self.m_step_chunk}")
        check_retriever_candidates(self.retriever_candidates)

    @property
    def top(self) -> int:
        """K of the candidate set: `retriever_candidates` when set, else `candidates`."""
        return self.retriever_candidates or self.candidates

    def rerank(self) -> int:
        """Candidates to re-rank per retrieval (0 = search the index in use directly)."""
        return self.rerank_candidates if self.train_passages and self.refresh == "rerank" else 0


# -- the Metropolis independence sampler (pure: tensors in, samples out) -------------------------
class ChainResult(NamedTuple):
    states: torch.Tensor  # (B, n) long: the chain's state after each proposal (indices into H)
    accepted: torch.Tensor  # (B, n) bool: proposal i became the state
    decided: torch.Tensor  # (B, n) bool: proposal i went through the accept/reject test

    @property
    def acceptance_rate(self) -> float:
        """Accepted proposals / proposals tested (the first proposal of a fresh chain is not a test)."""
        return float(self.accepted[self.decided].float().mean()) if self.decided.any() else float("nan")


def acceptance_probability(log_w_proposed: torch.Tensor, log_w_current: torch.Tensor) -> torch.Tensor:
    """min(1, w(h')/w(h)) from log weights; 0 where the proposal's weight is 0 (log −inf), elementwise."""
    ratio = torch.exp(torch.clamp(log_w_proposed - log_w_current, max=0.0))
    return torch.nan_to_num(ratio, nan=0.0)


def draw_proposals(log_q: torch.Tensor, n: int, generator: torch.Generator | None = None,
                   uniforms: torch.Tensor | None = None) -> torch.Tensor:
    """n proposals per row from q = exp(log_q) (rows of log-probabilities, −inf = excluded), with replacement.

    By inversion of q's CDF at `uniforms` (B, n) ~ U(0,1), drawn from `generator` when None: a row's draws
    depend on its own uniforms only, so a process can draw its shard's rows from the whole batch's uniforms.
    """
    if uniforms is None:
        uniforms = torch.rand(log_q.shape[0], n, generator=generator)
    cdf = log_q.exp().cumsum(-1)  # (B, H); flat where q = 0, so an excluded h is never the first cdf > u·total
    rows = torch.searchsorted(cdf, uniforms * cdf[:, -1:], right=True)  # (B, n)
    return rows.clamp(max=log_q.shape[1] - 1)


def metropolis_independence_chain(
    log_w: torch.Tensor, proposals: torch.Tensor, start: torch.Tensor | None = None,
    uniforms: torch.Tensor | None = None, generator: torch.Generator | None = None,
) -> ChainResult:
    """Run B independent MIS chains over n proposals each.

    log_w (B, H): log w(h) = log p_θ(y|x,h) + log p(h|x) − log q(h|x,y); only the entries at `proposals`
    and `start` are read. proposals (B, n): indices drawn from q. start (B,): the chain's initial state
    (−1 or None: the first proposal starts the chain, untested). uniforms (B, n): the U(0,1) draws of the
    accept tests (drawn from `generator` if None). Proposal i is accepted when u_i < min(1, w(h'_i)/w(h)).
    """
    B, n = proposals.shape
    if start is None:
        start = torch.full((B,), -1, dtype=torch.long)
    if uniforms is None:
        uniforms = torch.rand(B, n, generator=generator)
    fresh = start < 0  # (B,)
    current = torch.where(fresh, proposals[:, 0], start)  # (B,)
    states = torch.empty(B, n, dtype=torch.long)
    accepted = torch.zeros(B, n, dtype=torch.bool)
    decided = torch.ones(B, n, dtype=torch.bool)
    decided[:, 0] = ~fresh
    for i in range(n):
        proposed = proposals[:, i]
        a = acceptance_probability(log_w.gather(1, proposed[:, None])[:, 0], log_w.gather(1, current[:, None])[:, 0])
        take = (uniforms[:, i] < a) | (proposed == current)
        current = torch.where(take, proposed, current)
        states[:, i], accepted[:, i] = current, take
    return ChainResult(states, accepted, decided)


def sample_frequencies(states: torch.Tensor, num_candidates: int) -> torch.Tensor:
    """f_h: the share of the chain's states equal to h: (B, H), rows summing to 1."""
    counts = torch.zeros(states.shape[0], num_candidates)
    counts.scatter_add_(1, states, torch.ones_like(states, dtype=counts.dtype))
    return counts / states.shape[1]


def jsa_loss(freq: torch.Tensor, log_lik: torch.Tensor, log_prior: torch.Tensor, log_post: torch.Tensor) -> torch.Tensor:
    """M-step: (1/B) Σ_b Σ_h f_h·[−log p_θ(y|x,h) − log p_η(h|x) − log q_φ(h|x,y)] over the sampled h.

    All (B, H); entries with f_h = 0 are never read (they may be −inf or undefined).
    """
    terms = torch.where(freq > 0, -(log_lik + log_prior + log_post), 0.0)  # (B, H); zero grad where unsampled
    return (freq * terms).sum(-1).mean()


def m_step_backward(freq: torch.Tensor, log_prior: torch.Tensor, log_post: torch.Tensor, pairs: list[tuple[int, int]],
                    chunk: int, pair_log_lik, batch_size: int | None = None, backward=torch.Tensor.backward) -> torch.Tensor:
    """Back-propagate `jsa_loss` with the generator's passes in chunks of `chunk` pairs (0 = all at once).

    jsa_loss is linear in log p_θ(y|x,h), so its gradient is that of the retrieval terms
    (1/B) Σ f_h·[−log p_η − log q_φ] plus, chunk by chunk, of −(1/B) Σ f_h·log p_θ(y|x,h); only one chunk's
    generator activations are alive at a time. `pair_log_lik(pairs)` gives log p_θ with grad: (P,).
    With several processes the rows are this process's shard and `batch_size` the global B (default: the
    rows), so the processes' parts add up to the batch's loss. Returns this part's loss value (detached).
    """
    B = batch_size or freq.shape[0]
    retrieval = jsa_loss(freq, torch.zeros_like(freq), log_prior, log_post) * (freq.shape[0] / B)
    backward(retrieval)
    total = retrieval.detach()
    size = chunk or len(pairs)
    for start in range(0, len(pairs), size):
        part = pairs[start : start + size]
        weights = torch.tensor([float(freq[b, h]) for b, h in part]) / B  # (P,)
        generator_term = -(weights * pair_log_lik(part)).sum()
        backward(generator_term)
        total = total + generator_term.detach()
    return total


# -- the posterior retriever and the candidate set ---------------------------------------------
def posterior_text(encoder, question: str, answer: str) -> str:
    """The posterior retriever's input `x [SEP] y` (the tokenizer's own separator when it has one)."""
    sep = getattr(getattr(encoder, "tokenizer", None), "sep_token", None) or "[SEP]"
    return f"{question} {sep} {answer}"


def make_posterior_retriever(query_encoder) -> torch.nn.Module:
    """φ: a trainable copy of the embedder, initialized from the base weights."""
    posterior = copy.deepcopy(query_encoder)
    unfreeze(posterior)
    return posterior


def candidate_rows(*row_sets: np.ndarray, extra: list[int | None] | None = None) -> tuple[np.ndarray, torch.Tensor]:
    """Per example the union of its rows in each (B, K) set (first occurrence order) plus an extra row.

    Returns rows (B, H) padded with each row's first candidate, and the mask (B, H) of real candidates.
    """
    B = len(row_sets[0])
    unions = []
    for b in range(B):
        seen = dict.fromkeys(int(r) for rows in row_sets for r in rows[b] if int(r) >= 0)
        if extra is not None and extra[b] is not None:
            seen.setdefault(int(extra[b]))
        unions.append(list(seen))
    H = max(len(u) for u in unions)
    rows = np.array([u + [u[0]] * (H - len(u)) for u in unions], dtype=np.int64)
    mask = torch.tensor([[i < len(u) for i in range(H)] for u in unions])
    return rows, mask


def masked_log_softmax(scores: torch.Tensor, mask: torch.Tensor, tau: float) -> torch.Tensor:
    """log softmax(scores/τ) over the real candidates; −inf on padding: (B, H)."""
    return torch.log_softmax((scores / tau).masked_fill(~mask, float("-inf")), dim=-1)


# -- generator likelihoods of (example, passage) pairs -----------------------------------------
def pair_log_likelihoods(generator, questions, answers, passages, pairs: list[tuple[int, int]], chunk: int = 0) -> torch.Tensor:
    """log p_θ(y_b|x_b,h) for each pair (b, h) of `pairs`, one passage h = passages[b][h] in the prompt: (P,)."""
    prompts = [generator.format_prompt(questions[b], [passages[b][h]]) for b, h in pairs]
    targets = [answers[b] for b, _ in pairs]
    chunk = chunk or len(pairs)
    out = []
    for start in range(0, len(pairs), chunk):
        token_lp, mask = generator.answer_log_probs(prompts[start : start + chunk], targets[start : start + chunk])
        out.append((token_lp * mask).sum(-1))
    return torch.cat(out)


def scatter_pairs(values: torch.Tensor, pairs: list[tuple[int, int]], shape: tuple[int, int], fill: float) -> torch.Tensor:
    """A (B, H) tensor holding `values` at `pairs` and `fill` elsewhere (keeps the autograd graph)."""
    b = torch.tensor([p[0] for p in pairs], dtype=torch.long)
    h = torch.tensor([p[1] for p in pairs], dtype=torch.long)
    flat = torch.full((shape[0] * shape[1],), fill, dtype=values.dtype)
    return flat.index_put((b * shape[1] + h,), values).view(shape)


def distinct_pairs(indices: torch.Tensor, start: torch.Tensor | None = None) -> list[tuple[int, int]]:
    """The distinct (b, h) over a (B, n) index tensor and the chains' starts."""
    pairs = {(b, int(h)) for b in range(indices.shape[0]) for h in indices[b].tolist()}
    if start is not None:
        pairs |= {(b, int(h)) for b, h in enumerate(start.tolist()) if h >= 0}
    return sorted(pairs)


# -- one training step ----------------------------------------------------------------------------
@dataclass
class JsaModels:
    prior: torch.nn.Module  # E_q (η)
    posterior: torch.nn.Module  # φ
    passage: torch.nn.Module | None  # E_p when the passage side trains, else None (indexed vectors)


def candidate_vectors(pipeline, rows: np.ndarray, passages, passage_tower) -> torch.Tensor:
    """d_h for every candidate: (B, H, D), indexed (frozen) or re-encoded by E_p with grad."""
    if passage_tower is not None:
        return passage_vectors_with_grad(passage_tower, passages)
    return indexed_passage_vectors(pipeline, rows)


def jsa_step(ctx, models: JsaModels, batch, chains: dict, options: JsaOptions, rng: torch.Generator):
    """One batch: E-step, then the M-step loss back-propagated into θ, η, φ (, E_p); updates `chains`.

    With several processes each runs its shard of the batch; every process draws the whole batch's uniforms
    from `rng` and uses its shard's rows, so the samples (and the run) are those of one process.
    Returns (the batch's loss value, detached; stats; tokens read here). The caller zeroes the gradients
    before and steps the optimizer (`ctx.step`) after.
    """
    start, stop = ctx.shard_bounds(len(batch))
    uniforms = torch.rand(len(batch), 2, options.proposals, generator=rng)[start:stop]  # (b, 2, n): proposals, tests
    shard = list(batch[start:stop])
    loss, counts, states, tokens = (jsa_shard_step(ctx, models, shard, chains, options, uniforms, len(batch)) if shard
                                    else (torch.zeros(()), [0.0] * 5, [], 0))
    loss_value, accepted, decided, candidates, proposals, samples = ctx.sum_over_processes([float(loss), *counts])
    chains.update(ctx.gather_in_order(states))
    stats = {"acceptance_rate": accepted / decided if decided else float("nan"), "candidates": candidates / len(batch),
             "distinct_proposals": proposals / len(batch), "distinct_samples": samples / len(batch)}
    return torch.tensor(loss_value), stats, tokens


def jsa_shard_step(ctx, models: JsaModels, batch, chains: dict, options: JsaOptions, uniforms: torch.Tensor,
                   batch_size: int):
    """`jsa_step` on this process's rows `batch` of a batch of `batch_size`, with their uniforms (b, 2, n).

    Returns (this part's loss, [accepted, tested, candidates, distinct proposals, distinct samples] counts,
    [(example id, corpus row of its chain's last state)], tokens read).
    """
    pipeline, tau, generator = ctx.pipeline, ctx.config.tau, ctx.pipeline.generator
    K, R = min(options.top, len(pipeline.corpus)), options.rerank()
    questions, answers = [ex.question for ex in batch], [gold_answer(ex) for ex in batch]
    post_texts = [posterior_text(models.posterior, x, y) for x, y in zip(questions, answers)]
    # 1) candidates H = top-K(prior) ∪ top-K(posterior) ∪ {cached sample}: rows (B, H), mask (B, H)
    cached = [chains.get(ex.id) if options.persistent else None for ex in batch]
    rows, mask = candidate_rows(retrieve_rows(pipeline, questions, K, models.prior, rerank=R),
                                retrieve_rows(pipeline, post_texts, K, models.posterior, rerank=R), extra=cached)
    passages = [pipeline.passages(r) for r in rows]
    start = torch.tensor([list(r).index(c) if c is not None else -1 for r, c in zip(rows.tolist(), cached)])
    # 2) p_η(h|x) and q_φ(h|x,y) over H, with grad: (B, H)
    d = candidate_vectors(pipeline, rows, passages, models.passage)  # (B, H, D)
    q_prior = encode_with_grad(models.prior, questions)  # (B, D)
    q_post = encode_with_grad(models.posterior, post_texts)  # (B, D)
    log_prior = masked_log_softmax(torch.einsum("bd,bhd->bh", q_prior, d), mask, tau)
    log_post = masked_log_softmax(torch.einsum("bd,bhd->bh", q_post, d), mask, tau)
    # 3) E-step: n proposals ~ q_φ; log p_θ(y|x,h') once per distinct passage, no grad; the MIS chain
    proposals = draw_proposals(log_post.detach(), options.proposals, uniforms=uniforms[:, 0])  # (B, n)
    e_pairs = distinct_pairs(proposals, start)
    with torch.no_grad():
        e_lik = pair_log_likelihoods(generator, questions, answers, passages, e_pairs, LIKELIHOOD_CHUNK)
    log_lik = scatter_pairs(e_lik, e_pairs, tuple(rows.shape), float("nan"))
    log_w = log_lik + log_prior.detach() - log_post.detach()
    chain = metropolis_independence_chain(log_w, proposals, start, uniforms=uniforms[:, 1])
    # 4) M-step over the chain's states with their frequencies: one backward for θ, η, φ (, E_p)
    freq = sample_frequencies(chain.states, rows.shape[1])  # (B, H)
    m_pairs = distinct_pairs(chain.states)
    loss = m_step_backward(freq, log_prior, log_post, m_pairs, options.m_step_chunk,
                           lambda pairs: pair_log_likelihoods(generator, questions, answers, passages, pairs),
                           batch_size, ctx.backward)
    states = [(ex.id, int(rows[b, chain.states[b, -1]])) for b, ex in enumerate(batch)]  # for the next epoch
    counts = [float((chain.accepted & chain.decided).sum()), float(chain.decided.sum()), float(mask.sum()),
              float(len(e_pairs)), float(len(m_pairs))]
    tokens = _tokens_read(generator, models, questions, answers, post_texts, passages, e_pairs + m_pairs)
    return loss, counts, states, tokens


def _tokens_read(generator, models: JsaModels, questions, answers, post_texts, passages, pairs) -> int:
    prompts = [generator.format_prompt(questions[b], [passages[b][h]]) for b, h in pairs]
    tokens = generator_token_count(generator, prompts, [answers[b] for b, _ in pairs])
    tokens += encoder_token_count(models.prior, questions) + encoder_token_count(models.posterior, post_texts)
    if models.passage is not None:
        tokens += encoder_token_count(models.passage, [z.as_text() for zs in passages for z in zs])
    return tokens


# -- the loop ---------------------------------------------------------------------------------------
def train_jsa(ctx, models: JsaModels, options: JsaOptions, embed_lr: float, gen_lr: float,
              refresher: IndexRefresher | None) -> int:
    cfg, generator = ctx.config, ctx.pipeline.generator
    total = steps_per_run(len(ctx.train), cfg.batch_size, cfg.epochs)
    groups = [(list(models.prior.parameters()), embed_lr, "prior"),
              (list(models.posterior.parameters()), embed_lr, "posterior"),
              (list(generator.model.parameters()), gen_lr, "gen")]
    if models.passage is not None:
        groups.insert(2, (list(models.passage.parameters()), embed_lr, "passage"))
    optimizer, scheduler = linear_schedule(groups, total)
    trained = [m for m in (models.prior, models.posterior, models.passage, generator.model) if m is not None]
    for module in trained:
        module.train()
    rng = torch.Generator().manual_seed(cfg.seed)
    chains: dict[str, int] = {}  # example id -> corpus row of its chain's last state
    meter, step = StepMeter(ctx), 0
    batches = epoch_batches(ctx.train, cfg.batch_size, cfg.epochs, cfg.seed)
    for step, (_, batch) in enumerate(ctx.progress(batches, "jsa_rag", total), start=1):
        meter.start()
        optimizer.zero_grad(set_to_none=True)
        loss, stats, tokens = jsa_step(ctx, models, batch, chains, options, rng)  # back-propagates
        ctx.step(optimizer)  # gradients summed over the processes of a launched run
        meter.log(step, loss, optimizer, tokens, **stats)
        scheduler.step()
        if refresher is not None:
            refresher.between_steps(step)
    for module in trained:
        module.eval()
    return step


class JsaRag:
    name = "jsa_rag"
    citation = CITATION
    needs_context_labels = False
    description = "prior + posterior retriever + generator, MIS E-step and EM-like M-step (Cao et al. 2025)"
    learning_rates = {"embed_lr": DEFAULT_EMBED_LR, "gen_lr": DEFAULT_GEN_LR}
    Options = JsaOptions

    def fit(self, ctx) -> None:
        options = ctx.options or JsaOptions()
        embed_lr = ctx.config.embed_lr
        gen_lr = ctx.config.gen_lr
        generator = prepare_generator_for_lora(ctx)
        prior = ctx.pipeline.query_encoder
        posterior = make_posterior_retriever(prior)  # copied before the prior trains
        unfreeze(prior)
        passage = separate_passage_tower(ctx.pipeline) if options.train_passages else None
        models = JsaModels(prior, posterior, passage)
        schedule = refresh_schedule(ctx, passage, options.refresh_every, options.refresh) if passage else nullcontext()
        with schedule as refresher:
            last_step = train_jsa(ctx, models, options, embed_lr, gen_lr, refresher)
            if refresher is not None:
                refresher.finish(last_step)
        save_adapter(ctx, generator)
        save_embedder(ctx, prior)
        if passage is not None:
            save_passage_tower(ctx, passage)


@hookimpl
def register_strategies(register):
    register(JsaRag)
