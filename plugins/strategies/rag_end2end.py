"""`rag_end2end`: train the query tower, a separate passage tower and the generator together, re-indexing
the corpus in the background while training continues.

Siriwardhana et al. (2021), "Fine-tune the entire RAG architecture (including DPR retriever)"; the loss:
Lewis et al. (2020), RAG-Token / RAG-Sequence.

    harness run --plugin rag_end2end                                  # offline defaults
    harness run --plugin rag_end2end --set refresh_every=2            # re-index more often
    harness run --plugin rag_end2end --set refresh=sync               # training waits for each re-index
    harness run --plugin rag_end2end --set refresh=rerank --set rerank_candidates=20   # no re-index while training
    harness run --plugin rag_end2end --set retriever_candidates=20    # p(z|x) over the top-20, reader on top-5
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

Re-ranking instead of re-indexing (`refresh=rerank`, `rerank_candidates=R`; Atlas's over-retrieve and
re-rank). No re-index while training: each step retrieves the top-R of the stale index with E_q(x),
re-encodes those R with the current E_p (no grad), and Z(x) = the k with the best E_q(x)·E_p(z); those are
then re-encoded with grad as above. Per step it encodes B·R passages instead of N per `refresh_every`
steps (docs/scaling.md: the cost of each at 21M passages); the FLOP counter charges both. When R covers
the corpus, Z(x) is exactly a full re-index's top-k (tests). `refresh=none` keeps the stale index's top-k.
Every policy still re-indexes once from the final E_p before evaluation (`final_refresh`).

Wider retriever candidates (`retriever_candidates=L`, L ≥ k; 0 = k): Z_L(x) = the top-L (of the policy
above), all re-encoded by E_p with grad, p_η(z|x) = softmax over Z_L(x), and the marginal runs over Z_L
with p_θ(y|x,z) of the passages ranked k+1..L computed without grad: the generator trains on the top-k,
both towers on all L (rag_token.py). L = k is the loss above, exactly.

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
    IndexRefresher,
    StepMeter,
    backward_in_chunks,
    candidate_answer_log_probs,
    candidate_count,
    check_refresh_policy,
    check_retriever_candidates,
    effective_k,
    encoder_token_count,
    epoch_batches,
    generator_token_count,
    gold_answer,
    linear_schedule,
    passage_vectors_with_grad,
    prepare_generator_for_lora,
    refresh_schedule,
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
    refresh: str = field(default="background", metadata={"help": "background (re-index while training continues), sync "
                                                                 "(training waits), rerank (re-encode each step's "
                                                                 "candidates, no re-index) or none"})
    rerank_candidates: int = field(default=20, metadata={"help": "refresh=rerank: candidates taken from the stale index"})
    retriever_candidates: int = field(default=0, metadata={"help": "L: p(z|x) and the towers' gradient over the top-L, "
                                                                   "the reader on the top-k (0 = k)"})
    final_refresh: bool = field(default=True, metadata={"help": "re-index with the final passage tower before evaluation"})
    micro_batch: int = field(default=1, metadata={"help": "questions per forward/backward within a step (gradients "
                                                          "accumulate: same update, less memory; 0 = the whole batch)"})

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got '{self.loss}'")
        check_refresh_policy(self.refresh, self.rerank_candidates)
        if self.refresh_every < 0 or self.micro_batch < 0:
            raise ValueError(f"refresh_every and micro_batch must be >= 0, got {self.refresh_every}, {self.micro_batch}")
        check_retriever_candidates(self.retriever_candidates)

    def rerank(self) -> int:
        """Candidates to re-rank per question (0 = search the index in use directly)."""
        return self.rerank_candidates if self.refresh == "rerank" else 0


def end2end_step(ctx, batch, k: int, loss_fn, candidates: int = 0, rerank: int = 0) -> tuple[torch.Tensor, int]:
    """One step's loss with grad into E_q, E_p and the generator; also the tokens read. p_η(z|x) over the
    top-`candidates` (L; 0 = k), the generator trained on the top-k; `rerank` > L: refresh=rerank's R."""
    pipeline, tau = ctx.pipeline, ctx.config.tau
    questions, answers = [ex.question for ex in batch], [gold_answer(ex) for ex in batch]
    # 1) retrieve Z_L(x) with the current E_q, no grad: rows (B, L), from the index in use or re-ranked
    rows = retrieve_rows(pipeline, questions, max(k, candidates), rerank=rerank)
    passages = [pipeline.passages(r) for r in rows]
    # 2) re-encode the retrieved passages with E_p, with grad: (B, L, D)
    vectors = passage_vectors_with_grad(pipeline.passage_encoder, passages)
    # 3) log p_η(z|x) = log softmax(E_q(x)·E_p(z)/τ): (B, L), grad into both towers
    log_pz = retrieval_log_probs(pipeline.query_encoder, questions, vectors, tau)
    # 4) per-passage answer likelihoods log p_θ(y_t|x,z,y_<t): (B, L, T), mask; grad on the top-k only
    token_lp, mask = candidate_answer_log_probs(pipeline.generator, questions, passages, answers, k)
    # 5) marginalise over Z_L(x): scalar
    loss = loss_fn(log_pz, token_lp, mask)
    prompts = [pipeline.generator.format_prompt(q, [z]) for q, zs in zip(questions, passages) for z in zs]
    tokens = (generator_token_count(pipeline.generator, prompts, [a for a, zs in zip(answers, passages) for _ in zs])
              + encoder_token_count(pipeline.query_encoder, questions)
              + encoder_token_count(pipeline.passage_encoder, [z.as_text() for zs in passages for z in zs]))
    return loss, tokens


def accumulate_gradients(ctx, batch, k: int, loss_fn, options: End2EndOptions) -> tuple[torch.Tensor, int]:
    """Backward the batch's mean loss in chunks of `micro_batch` questions (0 = all at once): the same
    gradient as the whole batch, one chunk's activations alive at a time. Returns (loss, tokens read)."""
    L = candidate_count(ctx.pipeline, k, options.retriever_candidates)
    loss, parts = backward_in_chunks(ctx, batch, options.micro_batch,
                                     lambda chunk: end2end_step(ctx, chunk, k, loss_fn, L, options.rerank()))
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
        loss, tokens = accumulate_gradients(ctx, batch, k, LOSSES[options.loss], options)
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
        with refresh_schedule(ctx, passage_tower, options.refresh_every, options.refresh) as refresher:
            last_step = train_end2end(ctx, options, embed_lr, gen_lr, refresher)
            refresher.finish(last_step, options.final_refresh)
        save_adapter(ctx, generator)
        save_embedder(ctx, ctx.pipeline.query_encoder)
        save_passage_tower(ctx, passage_tower)


@hookimpl
def register_strategies(register):
    register(RagEnd2End)
