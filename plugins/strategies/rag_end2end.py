"""`rag_end2end`: train the query tower, a separate passage tower and the generator together, re-indexing
the corpus in the background while training continues.

Siriwardhana et al. (2021), "Fine-tune the entire RAG architecture (including DPR retriever)"; the loss:
Lewis et al. (2020), RAG-Token / RAG-Sequence.

    harness run --plugin rag_end2end                                  # offline defaults
    harness run --plugin rag_end2end --set refresh_every=2            # re-index more often
    harness run --plugin rag_end2end --set refresh=sync               # training waits for each re-index
    harness run --plugin rag_end2end --set loss=rag_sequence

Objective. Z(x) = the top-k passages of the index in use for q = E_q(x); each is re-encoded by the
passage tower *with grad*, d_z = E_p(z), so

    p_η(z|x) = softmax_{z∈Z(x)}(E_q(x)·E_p(z) / τ)
    L = −(1/B) Σ_b Σ_t log Σ_{z∈Z(x_b)} p_η(z|x_b) · p_θ(y_t | x_b, z, y_<t)          (loss=rag_token)
    L = −(1/B) Σ_b log Σ_{z∈Z(x_b)} p_η(z|x_b) · p_θ(y | x_b, z)                       (loss=rag_sequence)

and one backward updates E_q, E_p (both in full) and the generator's LoRA adapters. E_p starts as a
copy of the embedder (so the cached corpus index is exact at step 0) and becomes
`pipeline.passage_encoder`.

Re-indexing (harness/retrieval/refresh.py). Once E_p moves, the indexed corpus vectors are stale. Every
`refresh_every` steps the loop snapshots E_p (deep copy, eval, no grad) and a worker thread re-encodes
the corpus and builds a new index while training continues; the loop swaps it in at the first step
boundary after it is ready, never mid-step. Stored: index refreshes and their seconds (cost metrics),
and in the training log the staleness of each swap (steps between snapshot and swap), its mean, and the
seconds training waited. After the last step the index is rebuilt once more from the final E_p (unless a
refresh snapshotted at that step is already in flight, or `final_refresh=false`), so the harness
evaluates E_q against passages encoded by the E_p it was trained with. `refresh=sync` makes training
wait for every re-index (bench/bench_refresh.py compares the two).

Cost. Each re-index encodes the whole corpus: about 6-8 minutes for the offline default's 12k passages
on 2 CPU cores (MiniLM), longer than the 10 training steps themselves; so on the defaults the one
background refresh (snapshot at step 5) is still running when training ends, is cancelled as stale,
and the final re-index dominates the fit time. With more steps than a re-encode takes, the background
refreshes are hidden behind training (see the benchmark).

Memory. Two MiniLM towers with grad, B·k generator passes with grad and a background encoder: the
whole-batch step of the offline default peaks near 17 GB RSS on CPU (as vrag's), so by default each
step back-propagates one question at a time (`micro_batch=1`; the update is the same, the activations of
one question's k passages are alive at a time).

Defaults: 1 epoch; gen lr 1e-3 and embed lr 1e-5 for both towers, as rag_token: the paper's rates
(3e-8..3e-7 for the embedder) leave the towers where they were after the ~10 steps that the offline
default's 38 training questions give.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from harness import hookimpl
from harness.builtins.strategies.rag_sequence import rag_sequence_loss
from harness.builtins.strategies.rag_token import rag_token_loss
from harness.training import (
    REFRESH_MODES,
    IndexRefresher,
    StepMeter,
    backward_in_chunks,
    effective_k,
    encoder_token_count,
    epoch_batches,
    generator_token_count,
    gold_answer,
    linear_schedule,
    passage_answer_log_probs,
    passage_vectors_with_grad,
    prepare_generator_for_lora,
    retrieval_log_probs,
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
LOSSES = {"rag_token": rag_token_loss, "rag_sequence": rag_sequence_loss}
CITATION = """@article{siriwardhana2021finetune,
  title={Fine-tune the Entire RAG Architecture (including DPR retriever) for Question-Answering},
  author={Siriwardhana, Shamane and Weerasekera, Rivindu and Wen, Elliott and Nanayakkara, Suranga},
  journal={arXiv:2106.11517}, year={2021}}
@inproceedings{lewis2020retrieval,
  title={Retrieval-Augmented Generation for Knowledge-Intensive NLP Tasks},
  author={Lewis, Patrick and Perez, Ethan and Piktus, Aleksandra and others}, booktitle={NeurIPS}, year={2020}}"""


@dataclass
class End2EndOptions:
    loss: str = field(default="rag_token", metadata={"help": "rag_token or rag_sequence marginal"})
    refresh_every: int = field(default=5, metadata={"help": "re-index every N steps (0 = only after training)"})
    refresh: str = field(default="background", metadata={"help": "background (training continues) or sync (training waits)"})
    final_refresh: bool = field(default=True, metadata={"help": "re-index with the final passage tower before evaluation"})
    micro_batch: int = field(default=1, metadata={"help": "questions per forward/backward within a step (gradients "
                                                          "accumulate: same update, less memory; 0 = the whole batch)"})

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got '{self.loss}'")
        if self.refresh not in REFRESH_MODES:
            raise ValueError(f"refresh must be one of {', '.join(REFRESH_MODES)}, got '{self.refresh}'")
        if self.refresh_every < 0 or self.micro_batch < 0:
            raise ValueError(f"refresh_every and micro_batch must be >= 0, got {self.refresh_every}, {self.micro_batch}")


def end2end_step(ctx, batch, k: int, loss_fn) -> tuple[torch.Tensor, int]:
    """One step's loss with grad into E_q, E_p and the generator; also the tokens read."""
    pipeline, tau = ctx.pipeline, ctx.config.tau
    questions, answers = [ex.question for ex in batch], [gold_answer(ex) for ex in batch]
    # 1) retrieve Z(x) from the index in use with the current E_q, no grad: rows (B, k)
    rows = retrieve_rows(pipeline, questions, k)
    passages = [pipeline.passages(r) for r in rows]
    # 2) re-encode the retrieved passages with E_p, with grad: (B, k, D)
    vectors = passage_vectors_with_grad(pipeline.passage_encoder, passages)
    # 3) log p_η(z|x) = log softmax(E_q(x)·E_p(z)/τ): (B, k), grad into both towers
    log_pz = retrieval_log_probs(pipeline.query_encoder, questions, vectors, tau)
    # 4) per-passage answer likelihoods log p_θ(y_t|x,z,y_<t): (B, k, T), mask (B, k, T)
    token_lp, mask = passage_answer_log_probs(pipeline.generator, questions, passages, answers)
    # 5) marginalise over Z(x): scalar
    loss = loss_fn(log_pz, token_lp, mask)
    prompts = [pipeline.generator.format_prompt(q, [z]) for q, zs in zip(questions, passages) for z in zs]
    tokens = (generator_token_count(pipeline.generator, prompts, [a for a in answers for _ in range(k)])
              + encoder_token_count(pipeline.query_encoder, questions)
              + encoder_token_count(pipeline.passage_encoder, [z.as_text() for zs in passages for z in zs]))
    return loss, tokens


def accumulate_gradients(ctx, batch, k: int, loss_fn, micro_batch: int) -> tuple[torch.Tensor, int]:
    """Backward the batch's mean loss in chunks of `micro_batch` questions (0 = all at once): the same
    gradient as the whole batch, one chunk's activations alive at a time. Returns (loss, tokens read)."""
    loss, parts = backward_in_chunks(ctx, batch, micro_batch, lambda chunk: end2end_step(ctx, chunk, k, loss_fn))
    return loss, sum(tokens for _, tokens in parts)


def train_end2end(ctx, options: End2EndOptions, embed_lr: float, gen_lr: float, refresher: IndexRefresher) -> int:
    """The loop: a step, then (between steps) the re-index schedule. Returns the last step."""
    cfg, pipeline = ctx.config, ctx.pipeline
    towers = [pipeline.query_encoder, pipeline.passage_encoder]
    k = effective_k(pipeline, cfg.k)
    total = steps_per_run(len(ctx.train), cfg.batch_size, cfg.epochs)
    optimizer, scheduler = linear_schedule([(list(towers[0].parameters()), embed_lr, "query"),
                                            (list(towers[1].parameters()), embed_lr, "passage"),
                                            (list(pipeline.generator.model.parameters()), gen_lr, "gen")], total)
    meter = StepMeter(ctx)
    for module in (*towers, pipeline.generator.model):
        module.train()
    step = 0
    batches = epoch_batches(ctx.train, cfg.batch_size, cfg.epochs, cfg.seed)
    for step, (_, batch) in enumerate(ctx.progress(batches, "rag_end2end", total), start=1):
        meter.start()
        optimizer.zero_grad(set_to_none=True)
        loss, tokens = accumulate_gradients(ctx, batch, k, LOSSES[options.loss], options.micro_batch)
        ctx.step(optimizer)  # gradients summed over the processes of a launched run
        meter.log(step, loss, optimizer, tokens)
        scheduler.step()
        refresher.between_steps(step)  # installs a finished index / starts one: never mid-step
    for module in (*towers, pipeline.generator.model):
        module.eval()
    return step


class RagEnd2End:
    name = "rag_end2end"
    citation = CITATION
    needs_context_labels = False
    sharded_generator = True  # its generator calls go through backward_in_chunks (FSDP-safe)
    description = "E_q + E_p + generator, RAG-Token loss, corpus re-indexed in the background (Siriwardhana et al. 2021)"
    learning_rates = {"embed_lr": DEFAULT_EMBED_LR, "gen_lr": DEFAULT_GEN_LR}
    Options = End2EndOptions

    def fit(self, ctx) -> None:
        options = ctx.options or End2EndOptions()
        embed_lr = ctx.config.embed_lr
        gen_lr = ctx.config.gen_lr
        generator = prepare_generator_for_lora(ctx)
        unfreeze(ctx.pipeline.query_encoder)
        passage_tower = separate_passage_tower(ctx.pipeline)
        with IndexRefresher(ctx, passage_tower, options.refresh_every, options.refresh) as refresher:
            last_step = train_end2end(ctx, options, embed_lr, gen_lr, refresher)
            refresher.finish(last_step, options.final_refresh)
        save_adapter(ctx, generator)
        save_embedder(ctx, ctx.pipeline.query_encoder)
        save_passage_tower(ctx, passage_tower)


@hookimpl
def register_strategies(register):
    register(RagEnd2End)
