"""The pieces of a training loop, shared by the strategies; the loops themselves live in each strategy file.

Data order (`epoch_batches`), the optimiser and its schedule (`linear_schedule`), a batch back-propagated
in chunks (`backward_in_chunks`), what a step logs (`StepMeter`, token counts), what a step trains on
(`gold_answer`, `gold_passage`), and which parameters train. The likelihoods a loss is made of are in
harness/training/likelihoods.py, LoRA in harness/models/lora.py, saving what was trained in harness/runner/artifacts.py.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence

import torch

from harness.models.generation import Generator
from harness.pipeline import RagPipeline
from harness.runtime.timing import peak_memory_mb
from harness.types import Corpus, Passage, RagExample


# -- data order ---------------------------------------------------------------------------------
def epoch_batches(examples: Sequence[RagExample], batch_size: int, epochs: int, seed: int) -> Iterator[tuple[int, list[RagExample]]]:  # noqa: E501
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
def linear_schedule(param_groups: list[tuple], total_steps: int):
    """AdamW over groups of (params, lr) or (params, lr, name) with the papers' linear decay to 0, no warm-up.

    A named group's current learning rate is logged as `<name>_lr` by `StepMeter`. The decay's horizon
    (`horizon[0]` steps, shared by every group) starts at `total_steps`; under `--max-train-flops`,
    `StepMeter` shortens it to the steps the remaining budget pays for, so the rate reaches 0 at the budget.
    """
    horizon = [max(1, total_steps)]
    groups = [
        {"params": [p for p in group[0] if p.requires_grad], "lr": group[1], "name": group[2] if len(group) > 2 else None,
         "horizon": horizon}
        for group in param_groups
    ]
    groups = [g for g in groups if g["params"]]
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1.0 - step / horizon[0]))
    return optimizer, scheduler


def budget_horizon(planned_steps: int, steps_done: int, flops_spent_here: float, flops_left: float) -> int:
    """Steps a loop can run within the FLOPs left, at its mean cost per step so far (never more than planned)."""
    per_step = flops_spent_here / max(1, steps_done)
    if per_step <= 0:
        return planned_steps
    return max(steps_done, min(planned_steps, steps_done + int(flops_left // per_step)))


def backward_in_chunks(ctx, batch: Sequence, micro_batch: int, step_fn) -> tuple[torch.Tensor, list[tuple[float, object]]]:
    """Back-propagate this process's share of the batch's mean loss, `micro_batch` examples at a time
    (0 = its whole shard at once).

    The RAG losses are means of per-question terms, so Σ_chunks (|chunk|/B)·loss(chunk) has exactly the
    whole batch's gradient, while only one chunk's activations are alive at a time (rag_token's batch of
    4 × k=5 single-passage sequences is ~15 GB of activations on CPU at once). With several processes
    each takes its shard of the batch (`ctx.shard`) and B stays the global batch size, so the processes'
    shares add up to the batch mean once `ctx.step` sums the gradients. `step_fn(chunk)` returns
    (loss, info). Returns the batch loss (detached, summed over the processes) and this process's
    [(share, info)] per chunk, share = |chunk|/B.
    """
    part = ctx.shard(batch)
    size = micro_batch or max(1, len(part))  # a last batch may leave this process nothing
    total, parts = torch.zeros(()), []
    for start in range(0, len(part), size):
        chunk = part[start : start + size]
        share = len(chunk) / len(batch)
        loss, info = step_fn(chunk)
        ctx.backward(loss * share)
        total += loss.detach().cpu() * share
        parts.append((share, info))
    for _ in range(ctx.lockstep_calls(len(batch), micro_batch) - len(parts)):
        # a sharded generator (FSDP) needs as many calls here as on the process with the largest shard:
        # the same computation on one example, weighted 0 (no gradient, no loss, no tokens, no FLOPs)
        with ctx.flops.uncounted():
            loss, _ = step_fn(list(batch[:1]))
            ctx.backward(loss * 0.0)
    return torch.tensor(ctx.sum_over_processes(float(total))), parts


# -- retrieval size ------------------------------------------------------------------------------
def effective_k(pipeline: RagPipeline, k: int) -> int:
    """k, capped by the corpus size (a 3-passage corpus cannot give 5 candidates)."""
    return min(k, len(pipeline.corpus))


# -- what a step trains on ---------------------------------------------------------------------
def gold_answer(example: RagExample) -> str:
    """The answer a strategy trains on: the first gold answer."""
    return example.answers[0]


def gold_passage(example: RagExample, corpus: Corpus) -> Passage | None:
    """The first of the example's gold passages that the corpus holds (None without context labels)."""
    for passage_id in example.gold_passage_ids:
        row = corpus.row_of(passage_id)
        if row is not None:
            return corpus[row]
    return None


# -- what a loop logs ---------------------------------------------------------------------------
class StepMeter:
    """Per-step cost of a training loop (torchtune style).

    `start()` before a step, `log(step, loss, optimizer, tokens)` after it: adds `tokens` to
    ctx.trained_tokens (every process's, in a launched run) and logs loss, the learning rate of every param
    group (`lr` = the first group's, `<name>_lr` for named groups), tokens/s, peak memory (MB) and the step's estimated FLOPs
    (`train_flops`, harness/training/flops.py) to the store, and `mfu` (those FLOPs over the step's seconds over
    the device's peak) where the peak is known: a GPU in harness.gpu.PEAK_TFLOPS, or `--peak-tflops`.
    On a GPU the clock reads wait for the device, so a step's seconds are its kernels', not their launch.
    Under `--max-train-flops` it re-aims the schedule's horizon at the budget (see `linear_schedule`).
    """

    def __init__(self, ctx):
        from harness.runtime.gpu import generator_dtype_name, peak_flops, probe

        self.ctx = ctx
        caps = probe(ctx.device)
        self.peak = peak_flops(caps.name, generator_dtype_name(caps), getattr(ctx.config, "peak_tflops", None))
        if self.peak and getattr(ctx, "accelerator", None) is not None:
            self.peak *= ctx.accelerator.num_processes  # the FLOPs are summed over every process's device
        self._start = time.perf_counter()
        self.ctx.take_train_flops()  # before the loop (baseline retrieval, setup): in the total, in no step
        self._steps, self._flops, self._planned = 0, 0.0, None

    def start(self) -> None:
        _synchronize(self.ctx.device)
        self._start = time.perf_counter()

    def log(self, step: int, loss: torch.Tensor, optimizer: torch.optim.Optimizer, tokens: int, **extra: float) -> None:
        from harness.runtime.gpu import mfu

        _synchronize(self.ctx.device)
        seconds = max(time.perf_counter() - self._start, 1e-9)
        tokens = int(self.ctx.sum_over_processes(tokens))  # every process's shard
        self.ctx.trained_tokens += tokens
        lrs = {f"{g['name']}_lr": g["lr"] for g in optimizer.param_groups if g.get("name")}
        flops = self.ctx.take_train_flops()
        if self.peak:
            extra["mfu"] = mfu(flops, seconds, self.peak)
        self.ctx.log(step, loss=float(loss.detach()), lr=optimizer.param_groups[0]["lr"], **lrs,
                     tokens_per_second=tokens / seconds, step_seconds=seconds,
                     peak_memory_mb=peak_memory_mb(self.ctx.device), train_flops=flops, **extra)
        self._aim_schedule_at_budget(optimizer, flops)

    def _aim_schedule_at_budget(self, optimizer: torch.optim.Optimizer, step_flops: float) -> None:
        budget = self.ctx.config.max_train_flops
        horizon = optimizer.param_groups[0].get("horizon")
        self._steps, self._flops = self._steps + 1, self._flops + step_flops
        if budget is None or horizon is None:
            return
        self._planned = self._planned or horizon[0]
        horizon[0] = budget_horizon(self._planned, self._steps, self._flops, budget - self.ctx.train_flops)


def _synchronize(device: str) -> None:
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize()


def generator_token_count(generator: Generator, prompts: Sequence[str], answers: Sequence[str]) -> int:
    """Tokens the generator reads in one forward: prompt + answer + EOS of every pair."""
    if not prompts:
        return 0
    prompt_ids = generator.tokenizer(list(prompts), add_special_tokens=not generator.chat)["input_ids"]
    return sum(len(p) for p in prompt_ids) + sum(len(generator.answer_token_ids(a)) for a in answers)


def encoder_token_count(encoder, texts: Sequence[str]) -> int:
    """Tokens a sentence-transformer reads for `texts` (after its truncation)."""
    if not texts:
        return 0
    tokenize = encoder.preprocess if hasattr(encoder, "preprocess") else encoder.tokenize
    return int(tokenize(list(texts))["attention_mask"].sum())


# -- parameters ---------------------------------------------------------------------------------
def trainable(module: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in module.parameters() if p.requires_grad]


def freeze(module: torch.nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)


def unfreeze(module: torch.nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(True)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every parameter: what tests and two_phase compare bit for bit."""
    return {name: p.detach().clone() for name, p in module.named_parameters()}
