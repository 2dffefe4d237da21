"""`vrag`: variational RAG: a posterior retriever q_φ(z|x,y) picks the passages the generator trains on,
and a KL term pulls the prior retriever p_η(z|x) (which decodes) towards it.

The VRAG baseline of Cao et al. (2025, JSA-RAG), in the form of docs/architecture.md §5; the evidence lower bound
of variational inference over a discrete latent passage.

    harness run --plugin vrag                                 # offline defaults
    harness run --plugin vrag --set kl_weight=0.5

Objective. Z_q = the top-k passages retrieved by the posterior retriever φ for the text `x [SEP] y`
(φ: a copy of the embedder). Over Z_q, with the indexed passage vectors d_z:
    q_φ(z|x,y) = softmax_{z∈Z_q}(φ(x [SEP] y)·d_z / τ)        p_η(z|x) = softmax_{z∈Z_q}(E_q(x)·d_z / τ)
    L = (1/B) Σ_b [ Σ_{z∈Z_q} q_φ(z|x,y)·(−log p_θ(y|x,z))  +  β · KL(q_φ(·|x,y) ‖ p_η(·|x)) ]
with log p_θ(y|x,z) = Σ_t log p_θ(y_t|prompt(x,z), y_<t) and β = `kl_weight` (1: the negative ELBO over
Z_q). The expectation is exact over Z_q (no sampling), so φ gets the gradient of both terms, η only
the KL's, θ the posterior-weighted NLL's. Decoding uses the prior retriever, as for every strategy.

`--set retriever_candidates=L` (L ≥ k; 0 = k): Z_q becomes the posterior's top-L, q_φ, p_η, the NLL's
expectation and the KL are all over it; log p_θ(y|x,z) of the passages ranked k+1..L is computed without
grad (the generator trains on the top-k, both retrievers on all L). L = k is the loss above.

Memory: k generator passes with grad per question; the whole batch of the offline default peaks near
17 GB RSS on CPU, so each step back-propagates one question at a time by default (`micro_batch=1`: the
loss is a mean over questions, the update is the same).

Defaults: 1 epoch; gen lr 1e-3, embed lr 1e-5 for η and φ, as rag_token and jsa_rag (the paper's rates do
nothing measurable in the ~10 steps of the offline default). Cost per step: k generator forward+backward
passes per question, as rag_token, plus the posterior tower's forward (bench/bench_jsa_cost.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from harness import hookimpl
from harness.builtins.strategies.jsa_rag import CITATION as JSA_CITATION
from harness.builtins.strategies.jsa_rag import make_posterior_retriever, posterior_text
from harness.training import (
    StepMeter,
    backward_in_chunks,
    candidate_answer_log_probs,
    candidate_count,
    check_retriever_candidates,
    effective_k,
    encode_with_grad,
    encoder_token_count,
    epoch_batches,
    generator_token_count,
    gold_answer,
    indexed_passage_vectors,
    linear_schedule,
    prepare_generator_for_lora,
    retrieve_rows,
    save_adapter,
    save_embedder,
    steps_per_run,
    unfreeze,
)

DEFAULT_EMBED_LR = 1e-5
DEFAULT_GEN_LR = 1e-3


@dataclass
class VragOptions:
    kl_weight: float = field(default=1.0, metadata={"help": "β, the weight of KL(q_φ ‖ p_η) (1 = the ELBO)"})
    micro_batch: int = field(default=1, metadata={"help": "questions per forward/backward within a step (gradients "
                                                          "accumulate: same update, less memory; 0 = the whole batch)"})
    retriever_candidates: int = field(default=0, metadata={"help": "L: q_φ, p_η and the KL over the posterior's "
                                                                   "top-L, the generator on the top-k (0 = k)"})

    def __post_init__(self):
        if self.kl_weight < 0 or self.micro_batch < 0:
            raise ValueError(f"kl_weight and micro_batch must be >= 0, got {self.kl_weight}, {self.micro_batch}")
        check_retriever_candidates(self.retriever_candidates)


def vrag_loss(log_post: torch.Tensor, log_prior: torch.Tensor, seq_lp: torch.Tensor, kl_weight: float = 1.0):
    """(loss, nll, kl): the posterior-weighted NLL plus β·KL(q‖p), averaged over the batch.

    log_post, log_prior, seq_lp: (B, k) = log q_φ(z|x,y), log p_η(z|x), log p_θ(y|x,z) over Z_q.
    """
    q = log_post.exp()  # (B, k)
    nll = (q * -seq_lp).sum(-1).mean()
    kl = (q * (log_post - log_prior)).sum(-1).mean()
    return nll + kl_weight * kl, nll, kl


def vrag_step(ctx, prior, posterior, batch, k: int, kl_weight: float, candidates: int = 0):
    """One batch: (loss, stats, tokens), with grad into θ, η and φ; over the posterior's top-`candidates`
    (L; 0 = k), the generator trained on the top-k."""
    pipeline, tau, generator = ctx.pipeline, ctx.config.tau, ctx.pipeline.generator
    questions, answers = [ex.question for ex in batch], [gold_answer(ex) for ex in batch]
    post_texts = [posterior_text(posterior, x, y) for x, y in zip(questions, answers)]
    # 1) Z_q: the posterior's top-L for `x [SEP] y`, no grad: rows (B, L), indexed vectors (B, L, D)
    rows = retrieve_rows(pipeline, post_texts, max(k, candidates), posterior)
    passages = [pipeline.passages(r) for r in rows]
    d = indexed_passage_vectors(pipeline, rows)
    # 2) q_φ(z|x,y) and p_η(z|x) over Z_q, with grad: (B, L)
    log_post = torch.log_softmax(torch.einsum("bd,bkd->bk", encode_with_grad(posterior, post_texts), d) / tau, -1)
    log_prior = torch.log_softmax(torch.einsum("bd,bkd->bk", encode_with_grad(prior, questions), d) / tau, -1)
    # 3) log p_θ(y|x,z) per passage: (B, L), with grad for the top-k
    token_lp, mask = candidate_answer_log_probs(generator, questions, passages, answers, k)  # (B, L, T)
    seq_lp = (token_lp * mask).sum(-1)
    # 4) posterior-weighted NLL + β·KL(q‖p)
    loss, nll, kl = vrag_loss(log_post, log_prior, seq_lp, kl_weight)
    prompts = [generator.format_prompt(x, [z]) for x, zs in zip(questions, passages) for z in zs]
    tokens = (generator_token_count(generator, prompts, [a for a, zs in zip(answers, passages) for _ in zs])
              + encoder_token_count(prior, questions) + encoder_token_count(posterior, post_texts))
    return loss, {"nll": float(nll.detach()), "kl": float(kl.detach())}, tokens


def accumulate_gradients(ctx, prior, posterior, batch, k: int, options: VragOptions):
    """Backward the batch's mean loss `micro_batch` questions at a time (0 = all): same gradient, less memory.

    Returns the batch loss (detached), its mean nll and kl, and the tokens read.
    """
    def step(chunk):
        L = candidate_count(ctx.pipeline, k, options.retriever_candidates)
        loss, stats, tokens = vrag_step(ctx, prior, posterior, chunk, k, options.kl_weight, L)
        return loss, (stats, tokens)

    loss, parts = backward_in_chunks(ctx, batch, options.micro_batch, step)
    nll_kl = ctx.sum_over_processes([sum(share * s[name] for share, (s, _) in parts) for name in ("nll", "kl")])
    stats = dict(zip(("nll", "kl"), nll_kl))
    return loss, stats, sum(tokens for _, (_, tokens) in parts)


def train_vrag(ctx, prior, posterior, options: VragOptions, embed_lr: float, gen_lr: float) -> int:
    cfg, generator = ctx.config, ctx.pipeline.generator
    k = effective_k(ctx.pipeline, cfg.k)
    total = steps_per_run(len(ctx.train), cfg.batch_size, cfg.epochs)
    optimizer, scheduler = linear_schedule([(list(prior.parameters()), embed_lr, "prior"),
                                            (list(posterior.parameters()), embed_lr, "posterior"),
                                            (list(generator.model.parameters()), gen_lr, "gen")], total)
    for module in (prior, posterior, generator.model):
        module.train()
    meter, step = StepMeter(ctx), 0
    batches = epoch_batches(ctx.train, cfg.batch_size, cfg.epochs, cfg.seed)
    for step, (_, batch) in enumerate(ctx.progress(batches, "vrag", total), start=1):
        meter.start()
        optimizer.zero_grad(set_to_none=True)
        loss, stats, tokens = accumulate_gradients(ctx, prior, posterior, batch, k, options)
        ctx.step(optimizer)  # gradients summed over the processes of a launched run
        meter.log(step, loss, optimizer, tokens, **stats)
        scheduler.step()
    for module in (prior, posterior, generator.model):
        module.eval()
    return step


class Vrag:
    name = "vrag"
    citation = JSA_CITATION
    needs_context_labels = False
    sharded_generator = True  # its generator calls go through backward_in_chunks (FSDP-safe)
    description = "posterior retriever top-k, posterior-weighted NLL + KL(posterior ‖ prior) (VRAG)"
    learning_rates = {"embed_lr": DEFAULT_EMBED_LR, "gen_lr": DEFAULT_GEN_LR}
    Options = VragOptions

    def fit(self, ctx) -> None:
        options = ctx.options or VragOptions()
        embed_lr = ctx.config.embed_lr
        gen_lr = ctx.config.gen_lr
        generator = prepare_generator_for_lora(ctx)
        prior = ctx.pipeline.query_encoder
        posterior = make_posterior_retriever(prior)
        unfreeze(prior)
        train_vrag(ctx, prior, posterior, options, embed_lr, gen_lr)
        save_adapter(ctx, generator)
        save_embedder(ctx, prior)


@hookimpl
def register_strategies(register):
    register(Vrag)
