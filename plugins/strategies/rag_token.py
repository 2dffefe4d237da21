"""`rag_token`: joint fine-tuning of the query tower (full) and the generator (LoRA/QLoRA), RAG-Token.

Lewis et al. (2020), RAG-Token; Lawton et al. (2025), §2.3 and Table 3 row "RAG-Tok.".

    harness run --plugin rag_token                                   # offline defaults
    harness run --plugin rag_token --embed-lr 3e-7 --gen-lr 1e-5     # the paper's MiniLM/PopQA rates

Objective. Z(x) = the top-k passages retrieved *at this step* with the current query tower E_q (passage
vectors d = E_p(z) as indexed, frozen); p_η(z|x) = softmax_{z∈Z(x)}(E_q(x)·d_z / τ). The answer's
tokens are each a mixture over the passages:

    L(η, θ) = −(1/B) Σ_b Σ_{t=1..T} log Σ_{z∈Z(x_b)} p_η(z|x_b) · p_θ(y_t | x_b, z, y_<t)

computed in log space: logsumexp_z(log p_η(z|x) + log p_θ(y_t|x,z,y_<t)) per token (`rag_token_loss`).
p_θ(y_t|x,z,y_<t) has one passage z in the Appendix A prompt; inference still concatenates the top-k.
The gradient reaches E_q through p_η(z|x) (it rewards passages under which the generator predicts the
answer well) and the LoRA adapters through p_θ. Two param groups, two learning rates (embed, gen), one
AdamW, linear decay. The batch's loss is back-propagated `micro_batch` questions at a time (default 1):
the loss is a mean over questions, so the gradient is the whole batch's, while only one question's k
sequences keep activations (batch 4 × k 5 at once peaked at 15.4 GB RSS with SmolLM2-135M on CPU).

Wider retriever candidates (`--set retriever_candidates=L`, L ≥ k; 0 = k). Z_L(x) = the top-L; the
reader's set is still Z(x) = the top-k of it:

    p_η(z|x) = softmax_{z∈Z_L(x)}(E_q(x)·d_z / τ)
    L(η, θ) = −(1/B) Σ_b Σ_t log Σ_{z∈Z_L(x_b)} p_η(z|x_b) · p_θ(y_t | x_b, z, y_<t)

with p_θ(y|x,z) for z ∈ Z_L(x) outside Z(x) computed without grad (a forward only): the generator's gradient
comes from the k it reads, E_q's from all L, so a gold passage at rank k+1..L is pulled up (with L = k
this is the loss above, exactly). Cost per question: L−k more generator forwards without grad.

Defaults: 1 epoch; gen lr 1e-3 (see ft_gen: 10 steps on the offline default's 38 questions); embed lr
1e-6, a tenth of ft_embed's, as the paper's joint rates are 10-30x below its ft_embed rates. On the
offline default the base retriever already has recall@5 = 100%, and a tower moved further (ft_embed at
3e-5) loses recall against the frozen index. For other data reuse the two-phase winners (`harness grid
--plugin rag_token --lrs-from two_phase`), as the paper does, or grid both.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch

from harness import hookimpl
from harness.training import (
    StepMeter,
    backward_in_chunks,
    candidate_answer_log_probs,
    candidate_count,
    check_retriever_candidates,
    effective_k,
    encoder_token_count,
    epoch_batches,
    generator_token_count,
    gold_answer,
    indexed_passage_vectors,
    linear_schedule,
    prepare_generator_for_lora,
    retrieval_log_probs,
    retrieve_rows,
    save_adapter,
    save_embedder,
    steps_per_run,
    trainable,
    unfreeze,
)

DEFAULT_EMBED_LR = 1e-6
DEFAULT_GEN_LR = 1e-3
LAWTON = """@article{lawton2025comparison,
  title={A Comparison of Independent and Joint Fine-tuning Strategies for Retrieval-Augmented Generation},
  author={Lawton, Neal and Samuel, Alfy and Kumar, Anoop and Liu, Daben}, year={2025}}"""
LEWIS = """@inproceedings{lewis2020retrieval,
  title={Retrieval-Augmented Generation for Knowledge-Intensive NLP Tasks},
  author={Lewis, Patrick and Perez, Ethan and Piktus, Aleksandra and others}, booktitle={NeurIPS}, year={2020}}"""

RagLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def rag_token_loss(log_pz: torch.Tensor, token_lp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L = −Σ_t log Σ_z p_η(z|x) p_θ(y_t|x,z,y_<t), averaged over the batch.

    The mixture is taken per token: logsumexp over k of (log p_η(z|x) + log p_θ(y_t|…)), then summed over
    the answer's real tokens.
    """
    per_token = torch.logsumexp(log_pz[:, :, None] + token_lp, dim=1)  # (B, T)
    return -(per_token * mask[:, 0, :]).sum(-1).mean()


@dataclass
class RagOptions:
    micro_batch: int = field(default=1, metadata={"help": "questions per forward/backward within a step (gradients "
                                                          "accumulate: same update, less memory; 0 = the whole batch)"})
    retriever_candidates: int = field(default=0, metadata={"help": "L: p(z|x) and the retriever's gradient over the "
                                                                   "top-L, the reader on the top-k (0 = k)"})

    def __post_init__(self):
        if self.micro_batch < 0:
            raise ValueError(f"micro_batch must be >= 0, got {self.micro_batch}")
        check_retriever_candidates(self.retriever_candidates)


def rag_step(ctx, batch, k: int, loss_fn: RagLoss, embed_trains: bool, gen_trains: bool,
             candidates: int = 0) -> tuple[torch.Tensor, int]:
    """The joint loss of `batch` (a frozen side runs without grad) and the tokens read; p_η(z|x) over the
    top-`candidates` (L; 0 = k), the generator trained on the top-k."""
    pipeline, tau = ctx.pipeline, ctx.config.tau
    encoder, generator = pipeline.query_encoder, pipeline.generator
    questions, answers = [ex.question for ex in batch], [gold_answer(ex) for ex in batch]
    L = max(k, candidates)
    # 1) retrieve Z_L(x) with the current E_q, no grad: rows (B, L), their indexed vectors (B, L, D)
    rows = retrieve_rows(pipeline, questions, L)
    passages = [pipeline.passages(r) for r in rows]
    vectors = indexed_passage_vectors(pipeline, rows)
    # 2) score: log p_η(z|x) (B, L), with grad into E_q when it trains
    with nullcontext() if embed_trains else torch.no_grad():
        log_pz = retrieval_log_probs(encoder, questions, vectors, tau)
    # 3) per-passage answer likelihoods log p_θ(y_t|x,z,y_<t): (B, L, T), mask; grad on the top-k only
    token_lp, mask = candidate_answer_log_probs(generator, questions, passages, answers, k, gen_trains)
    # 4) marginalise over Z_L(x) in log space: scalar
    loss = loss_fn(log_pz, token_lp, mask)
    prompts = [generator.format_prompt(q, [z]) for q, zs in zip(questions, passages) for z in zs]
    tokens = generator_token_count(generator, prompts, [a for a, zs in zip(answers, passages) for _ in zs])
    return loss, tokens + (encoder_token_count(encoder, questions) if embed_trains else 0)


def train_rag(ctx, loss_fn: RagLoss, embed_lr: float, gen_lr: float, desc: str, step_offset: int = 0,
              micro_batch: int = 1, retriever_candidates: int = 0) -> int:
    """The joint loop shared by rag_token, rag_sequence and both phases of two_phase.

    Trains whatever of E_q and the generator's adapters has requires_grad; a frozen side runs without
    grad (and in eval mode), so it costs a forward only. Returns the number of steps run.
    """
    cfg, pipeline = ctx.config, ctx.pipeline
    encoder, generator = pipeline.query_encoder, pipeline.generator
    embed_params, gen_params = trainable(encoder), trainable(generator.model)
    k = effective_k(pipeline, cfg.k)
    L = candidate_count(pipeline, k, retriever_candidates)
    total = steps_per_run(len(ctx.train), cfg.batch_size, cfg.epochs)
    optimizer, scheduler = linear_schedule([(embed_params, embed_lr, "embed"), (gen_params, gen_lr, "gen")], total)
    meter = StepMeter(ctx)
    encoder.train(bool(embed_params))
    generator.model.train(bool(gen_params))
    batches = epoch_batches(ctx.train, cfg.batch_size, cfg.epochs, cfg.seed)
    for step, (_, batch) in enumerate(ctx.progress(batches, desc, total), start=step_offset + 1):
        meter.start()
        optimizer.zero_grad(set_to_none=True)
        # 1-4) retrieve, score, per-passage likelihoods, marginal loss; backward chunk by chunk
        loss, parts = backward_in_chunks(
            ctx, batch, micro_batch, lambda chunk: rag_step(ctx, chunk, k, loss_fn, bool(embed_params), bool(gen_params), L))
        # 5) update both groups
        ctx.step(optimizer)  # gradients summed over the processes of a launched run
        meter.log(step, loss, optimizer, sum(tokens for _, tokens in parts))
        scheduler.step()
    encoder.eval()
    generator.model.eval()
    return total


def fit_jointly(ctx, loss_fn: RagLoss, desc: str) -> None:
    """rag_token / rag_sequence: LoRA on the generator, E_q in full, one joint loop, save both."""
    embed_lr = ctx.config.embed_lr
    gen_lr = ctx.config.gen_lr
    generator = prepare_generator_for_lora(ctx)
    unfreeze(ctx.pipeline.query_encoder)
    options = ctx.options or RagOptions()
    train_rag(ctx, loss_fn, embed_lr, gen_lr, desc, micro_batch=options.micro_batch,
              retriever_candidates=options.retriever_candidates)
    save_adapter(ctx, generator)
    save_embedder(ctx, ctx.pipeline.query_encoder)


class RagToken:
    name = "rag_token"
    citation = LEWIS + "\n" + LAWTON
    needs_context_labels = False
    sharded_generator = True  # its generator calls go through backward_in_chunks (FSDP-safe)
    description = "joint E_q + generator, RAG-Token marginal over the top-k (Lewis et al. 2020)"
    learning_rates = {"embed_lr": DEFAULT_EMBED_LR, "gen_lr": DEFAULT_GEN_LR}
    Options = RagOptions

    def fit(self, ctx) -> None:
        fit_jointly(ctx, rag_token_loss, self.name)


@hookimpl
def register_strategies(register):
    register(RagToken)
