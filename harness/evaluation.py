"""The harness, not the strategy, evaluates: every leaderboard row is measured by this code."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.metrics import answer_hit, bootstrap_interval, exact_match, f1_score, passage_hit
from harness.pipeline import RagPipeline
from harness.runtime.distributed import gather_in_order, shard
from harness.runtime.progress import progress
from harness.types import RagExample


@dataclass
class SplitResult:
    split: str
    metrics: dict[str, float]
    predictions: list[dict]


def evaluate(pipeline: RagPipeline, examples: list[RagExample], split: str, max_new_tokens: int = 24,
             batch_size: int | None = 8, seed: int = 0, accelerator=None) -> SplitResult:
    """Retrieve top-k for every question (one batched search), generate in batches, score each example.

    In a run launched on several processes each one predicts its contiguous shard of `examples`, and the
    predictions are gathered in shard order: every example once, in the order given. `batch_size` None:
    8 on the CPU, by free memory on a GPU (`Generator.batch_size_for`).
    """
    if not examples:
        return SplitResult(split, {}, [])
    part = shard(accelerator, examples)
    if pipeline.generator.sharded:
        mine = predict_in_step(pipeline, part, examples, split, max_new_tokens, batch_size, accelerator)
    else:
        mine = predict(pipeline, part, split, max_new_tokens, batch_size, accelerator)
    predictions = gather_in_order(accelerator, mine)
    return SplitResult(split, summarize(predictions, pipeline.k, seed), predictions)


def predict_in_step(pipeline: RagPipeline, part: list[RagExample], examples: list[RagExample], split: str,
                    max_new_tokens: int, batch_size: int | None, accelerator) -> list[dict]:
    """`predict` with the generator sharded (FSDP): every process generates as many batches, of one size, as
    the process with the largest shard (a shorter shard is topped up with copies of the first example,
    whose predictions are dropped), and `generate` steps until every process's batch is done."""
    largest = -(-len(examples) // accelerator.num_processes)
    padded = part + [examples[0]] * (largest - len(part))
    return predict(pipeline, padded, split, max_new_tokens, batch_size, accelerator)[: len(part)]


def predict(pipeline: RagPipeline, examples: list[RagExample], split: str, max_new_tokens: int, batch_size: int,
            accelerator=None) -> list[dict]:
    """One scored prediction per example, in order."""
    if not examples:
        return []
    questions = [ex.question for ex in examples]
    rows, _ = pipeline.retrieve(questions)
    prompts = pipeline.prompts(questions, rows)
    batch_size = batch_size or pipeline.generator.batch_size_for(prompts, max_new_tokens)
    if pipeline.generator.sharded:  # one batch size on every process: as many generate calls on each
        batch_size = min(gather_in_order(accelerator, [batch_size]))
    answers: list[str] = []
    with progress(desc=f"evaluating {split}", total=len(prompts), unit="questions") as bar:
        for start in range(0, len(prompts), batch_size):
            answers += pipeline.generator.generate(prompts[start : start + batch_size], max_new_tokens, batch_size)
            bar.update(len(prompts[start : start + batch_size]))
    return [_score(ex, answer, pipeline.passages(r), pipeline.k, split)
            for ex, answer, r in zip(examples, answers, rows)]


def _score(ex: RagExample, answer: str, passages, k: int, split: str) -> dict:
    has_labels = bool(ex.gold_passage_ids)
    return {
        "split": split,
        "example_id": ex.id,
        "question": ex.question,
        "prediction": answer,
        "golds": ex.answers,
        "gold_passage_ids": ex.gold_passage_ids,
        "retrieved_ids": [p.id for p in passages],
        "em": exact_match(answer, ex.answers),
        "f1": f1_score(answer, ex.answers),
        "hit": passage_hit([p.id for p in passages], ex.gold_passage_ids, k) if has_labels else None,
        "answer_hit": answer_hit([p.text for p in passages], ex.answers, k),
    }


def summarize(predictions: list[dict], k: int, seed: int = 0) -> dict[str, float]:
    """Split metrics in percent, with 95% bootstrap intervals for EM and F1."""
    out: dict[str, float] = {"n": float(len(predictions))}
    for name in ("em", "f1"):
        values = [100 * p[name] for p in predictions]
        out[name] = float(np.mean(values))
        out[f"{name}_low"], out[f"{name}_high"] = bootstrap_interval(values, seed=seed)
    hits = [p["hit"] for p in predictions if p["hit"] is not None]
    if hits:
        out[f"recall@{k}"] = 100 * float(np.mean(hits))
    out[f"answer_recall@{k}"] = 100 * float(np.mean([p["answer_hit"] for p in predictions]))
    return out
