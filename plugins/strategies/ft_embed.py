"""`ft_embed`: fine-tune the embedder alone on (question, gold passage) pairs with in-batch negatives.

Lawton et al. (2025), §2.1 and Table 3 row "Ft. Embed."; the loss: Henderson et al. (2017), the
MultipleNegativesRankingLoss of sentence-transformers; the cached variant: Gao et al. (2021), GradCache.

    harness run --plugin ft_embed                                      # offline defaults
    harness run --plugin ft_embed --set cached=true --batch-size 64    # the paper's suggested improvement
    harness run --plugin ft_embed --set reindex=true                   # re-encode the corpus afterwards

Objective (needs context labels). A batch of B questions x_b with gold passages z_b; the other B−1 gold
passages of the batch are the negatives. With cosine similarity and scale 1/τ (τ = 0.05: scale 20, as
sentence-transformers' default):

    L(E) = −(1/B) Σ_b log [ exp(cos(E(x_b), E(z_b)) / τ) / Σ_{b'} exp(cos(E(x_b), E(z_{b'})) / τ) ]

E is the shared query/passage tower, trained in full; both sides are encoded with grad, exactly as
sentence-transformers does (`--set passages=index` instead scores the frozen indexed vectors of the gold
passages, so only the query side moves). A negative that is the same passage as the positive (two
questions about one page in a batch) is masked out, so a question is never pushed away from its own gold
passage. The corpus vectors stay as indexed (the paper: only question embeddings change at retrieval)
unless `--set reindex=true`, which re-encodes the corpus with the tuned tower (`ctx.refresh_index()`).

Cached variant (`--set cached=true`, GradCache): the batch is embedded chunk by chunk without grad, the
loss is taken on the cached embeddings and its gradient d L / d e (B, D) kept; each chunk is then
re-encoded with grad (same dropout RNG state) and back-propagated with e·(dL/de). The gradient equals the
uncached one; memory is that of one chunk, so the batch (and the number of negatives) can be large.

Defaults: batch 8 (the paper; `--batch-size` overrides it; 64 with `cached=true`), 1 epoch, learning
rate 1e-5 (the paper's winner for MiniLM on PopQA). On the offline default the base MiniLM already has
recall@5 = 100% on train, dev and test (measured), so ft_embed has nothing to gain there: at 1e-5 (5
steps) recall@5 stays 100%; at 3e-5 and above the tower drifts away from the frozen index and recall@5
falls to 93-95%. On `synthbio` (base recall@5 53.6), 300 training questions with `--set reindex=true`
reach 88.7 ± 1.4 (3 seeds; 97.3 ± 1.4 at lr 1e-4); with the index kept, the gain is capped at a few
points (61.3 -> 64.7 on synthbio v1), because the tuned questions move toward passage vectors the old index
does not hold (bench/RESULTS.md). Grid-search on other data: `harness grid --plugin ft_embed --lr-grid paper`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from harness import hookimpl
from harness.training import (
    StepMeter,
    encode_with_grad,
    encoder_token_count,
    epoch_batches,
    gold_passage,
    indexed_passage_vectors,
    linear_schedule,
    save_embedder,
    steps_per_run,
    unfreeze,
)

DEFAULT_EMBED_LR = 1e-5
DEFAULT_BATCH, DEFAULT_CACHED_BATCH = 8, 64
CITATION = """@article{lawton2025comparison,
  title={A Comparison of Independent and Joint Fine-tuning Strategies for Retrieval-Augmented Generation},
  author={Lawton, Neal and Samuel, Alfy and Kumar, Anoop and Liu, Daben}, year={2025}}
@article{henderson2017efficient, title={Efficient Natural Language Response Suggestion for Smart Reply},
  author={Henderson, Matthew and others}, journal={arXiv:1705.00652}, year={2017}}
@inproceedings{gao2021scaling, title={Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup},
  author={Gao, Luyu and Zhang, Yunyi and Han, Jiawei and Callan, Jamie}, booktitle={RepL4NLP}, year={2021}}"""


@dataclass
class EmbedOptions:
    reindex: bool = field(default=False, metadata={"help": "re-encode the corpus with the tuned tower after training"})
    cached: bool = field(default=False, metadata={"help": "GradCache variant: large batches in chunks (default batch 64)"})
    chunk_size: int = field(default=8, metadata={"help": "cached variant: pairs encoded with grad at a time"})
    passages: str = field(default="tower", metadata={"help": "tower: encode gold passages with grad; index: frozen indexed vectors"})  # noqa: E501

    def __post_init__(self):
        if self.passages not in ("tower", "index"):
            raise ValueError(f"passages must be 'tower' or 'index', got '{self.passages}'")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {self.chunk_size}")


# -- the loss -----------------------------------------------------------------------------------
def mnrl_loss(q: torch.Tensor, d: torch.Tensor, scale: float, passage_ids: list[str] | None = None) -> torch.Tensor:
    """MultipleNegativesRankingLoss: cross-entropy of scale·cos(q_b, d_b') over b' with target b' = b.

    q, d: (B, D), L2-normalized. `passage_ids` (B,) masks in-batch copies of a row's own positive.
    """
    scores = scale * q @ d.T  # (B, B) cosine · 1/τ
    if passage_ids is not None:
        ids = np.asarray(passage_ids, dtype=object)
        duplicate = torch.from_numpy(ids[:, None] == ids[None, :]) & ~torch.eye(len(ids), dtype=torch.bool)
        scores = scores.masked_fill(duplicate.to(scores.device), float("-inf"))  # a copy of the positive is no negative
    return F.cross_entropy(scores, torch.arange(len(q), device=scores.device))


class RandContext:
    """Captures the RNG state (CPU and CUDA) so a chunk re-encoded with grad sees the same dropout masks."""

    def __init__(self):
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None

    def __enter__(self):
        self._fork = torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if self.cuda else [])
        self._fork.__enter__()
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)

    def __exit__(self, *exc):
        return self._fork.__exit__(*exc)


def cached_mnrl_backward(encoder, questions: list[str], positives, scale: float, chunk: int,
                         passage_ids: list[str], all_rows=lambda rows: rows) -> torch.Tensor:
    """GradCache: the MNRL gradient of a large batch, one chunk at a time in memory. Returns the loss.

    `questions` and `positives` (passage texts encoded by the tower, or a frozen (B, D) tensor of the whole
    batch's indexed vectors) are this process's shard; `passage_ids` are the whole batch's, and
    `all_rows` gives the whole batch's rows from a shard's (`ctx.all_rows`; the identity for one process).
    """
    def embed_without_grad(texts):
        states, parts = [], []
        with torch.no_grad():
            for start in range(0, len(texts), chunk):
                states.append(RandContext())
                parts.append(encode_with_grad(encoder, texts[start : start + chunk]))
        return torch.cat(parts).requires_grad_(), states  # (B, D) leaf: its .grad is dL/de

    # 1) embed every chunk of the shard without grad, keeping each chunk's RNG state
    q, q_states = embed_without_grad(questions)
    frozen = isinstance(positives, torch.Tensor)
    d, d_states = (positives, []) if frozen else embed_without_grad(positives)
    # 2) the whole batch's loss on the cached embeddings; backward stops at them: dL/dq, dL/dd (shard, D)
    loss = mnrl_loss(all_rows(q), d if frozen else all_rows(d), scale, passage_ids)
    loss.backward()
    # 3) re-encode chunk by chunk with grad, under the same RNG state, and push the cached gradient in
    sides = [(questions, q, q_states)] + ([] if frozen else [(positives, d, d_states)])
    for texts, cached, states in sides:
        for i, start in enumerate(range(0, len(texts), chunk)):
            with states[i]:
                e = encode_with_grad(encoder, texts[start : start + chunk])  # (chunk, D)
            (e * cached.grad[start : start + chunk]).sum().backward()
    return loss.detach()


# -- the loop -----------------------------------------------------------------------------------
def gold_pairs(ctx) -> list[tuple]:
    """(example, gold passage) for every training example whose gold passage the corpus holds."""
    pairs = [(ex, gold_passage(ex, ctx.pipeline.corpus)) for ex in ctx.train]
    return [(ex, z) for ex, z in pairs if z is not None]


def default_batch(options: EmbedOptions) -> int:
    """The paper's batch of 8 (64 for the cached variant), when --batch-size is not given."""
    return DEFAULT_CACHED_BATCH if options.cached else DEFAULT_BATCH


def train_embedder(ctx, embed_lr: float, options: EmbedOptions, batch_size: int, desc: str = "ft_embed",
                   step_offset: int = 0) -> int:
    """The ft_embed loop on ctx.pipeline.query_encoder. Returns the number of steps run."""
    cfg, pipeline = ctx.config, ctx.pipeline
    encoder = pipeline.query_encoder
    epochs = cfg.epochs
    gold_of = dict((ex.id, z) for ex, z in gold_pairs(ctx))
    examples = [ex for ex in ctx.train if ex.id in gold_of]
    total = steps_per_run(len(examples), batch_size, epochs)
    unfreeze(encoder)
    optimizer, scheduler = linear_schedule([(list(encoder.parameters()), embed_lr, "embed")], total)
    meter, scale = StepMeter(ctx), 1.0 / cfg.tau
    ctx.log(step_offset, batch_size=batch_size, epochs=epochs)
    encoder.train()
    batches = epoch_batches(examples, batch_size, epochs, cfg.seed)
    for step, (_, batch) in enumerate(ctx.progress(batches, desc, total), start=step_offset + 1):
        meter.start()
        # 1) the pairs of this process's shard: questions and gold passages (text, or frozen indexed vectors);
        #    every process scores the whole batch, so the negatives are the batch's, as with one process
        shard = ctx.shard(batch)
        questions = [ex.question for ex in shard]
        ids = [gold_of[ex.id].id for ex in batch]  # (B,) the whole batch's, for the duplicate mask
        texts = [gold_of[ex.id].as_text() for ex in shard]
        positives = indexed_vectors(pipeline, ids) if options.passages == "index" else texts
        optimizer.zero_grad(set_to_none=True)
        if options.cached:
            # 2+3) GradCache: loss and gradient, chunk by chunk
            loss = cached_mnrl_backward(encoder, questions, positives, scale, options.chunk_size, ids, ctx.all_rows)
        else:
            # 2) embed the shard with grad, then the whole batch's rows: q (B, D), d (B, D)
            q = ctx.all_rows(encode_with_grad(encoder, questions))
            frozen = options.passages == "index"
            d = positives.to(q.device) if frozen else ctx.all_rows(encode_with_grad(encoder, positives))
            # 3) in-batch negatives ranking loss over the whole batch (each process back-propagates it into
            #    its own rows; the gradients summed over the processes are the one-process gradient)
            loss = mnrl_loss(q, d, scale, ids)
            ctx.backward(loss)
        # 4) update the tower
        ctx.step(optimizer)  # gradients summed over the processes of a launched run
        tokens = encoder_token_count(encoder, questions) + (0 if options.passages == "index" else encoder_token_count(encoder, texts))  # noqa: E501
        meter.log(step, loss, optimizer, tokens)
        scheduler.step()
    encoder.eval()
    return total


def indexed_vectors(pipeline, passage_ids: list[str]) -> torch.Tensor:
    """The frozen indexed vectors of these passages: (B, D)."""
    return indexed_passage_vectors(pipeline, np.array([pipeline.corpus.row_of(i) for i in passage_ids]))


def finish_embedder(ctx, options: EmbedOptions) -> None:
    """Re-index if asked, then save the tuned tower as the `embedder` artifact."""
    if options.reindex:
        ctx.refresh_index(ctx.pipeline.query_encoder)
    save_embedder(ctx, ctx.pipeline.query_encoder, reindexed=options.reindex)


class FineTuneEmbedder:
    name = "ft_embed"
    citation = CITATION
    needs_context_labels = True
    sharded_generator = True  # FSDP-safe: it calls the generator only in evaluation
    description = "embedder only: MultipleNegativesRankingLoss on (question, gold passage), batch 8 (Lawton et al. 2025)"
    learning_rates = {"embed_lr": DEFAULT_EMBED_LR}
    Options = EmbedOptions

    @staticmethod
    def run_defaults(options: EmbedOptions) -> dict:
        return {"batch_size": default_batch(options)}

    def fit(self, ctx) -> None:
        embed_lr = ctx.config.embed_lr
        train_embedder(ctx, embed_lr, ctx.options, ctx.config.batch_size)
        finish_embedder(ctx, ctx.options)


@hookimpl
def register_strategies(register):
    register(FineTuneEmbedder)
