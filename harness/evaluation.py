"""The harness, not the strategy, evaluates: every leaderboard row is measured by this code.

Besides EM, F1, recall@k and answer_recall@k of the retrieved top-k (what every run reports), the same code
says where a score comes from (docs/architecture.md §6):
- **retrieved, split by the gold passage**: EM on the questions whose gold passage was in the top-k
  (`em_gold_retrieved`) and on those whose was not (`em_gold_missed`), where the dataset has context labels;
- **grounding**: of the correct answers, the share whose answer is inside a retrieved passage (`grounded`,
  DPR's has_answer); the rest were answered without support (memorised or guessed);
- **modes** (`--eval-modes`, each one more generation pass over the split, on the same models):
  `closed_book` (no passages: what the generator knows by itself) and `oracle` (the gold passages in place of
  retrieval: the reader's ceiling), as `closed_book_em`, `oracle_em`, ... with their intervals;
- **retention** (`--eval-modes retention`): the generator before and after fit on data it never trained on
  (`measure_retention`);
- `decompose` turns two runs on one evaluation set into "retrieval +X, reading +Y" EM points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from harness.metrics import answer_hit, bootstrap_interval, exact_match, f1_score, passage_hit
from harness.runtime.progress import progress
from harness.types import RagExample

if TYPE_CHECKING:  # the arithmetic (summarize, decompose) is read by the leaderboard and dashboard without torch
    from harness.pipeline import RagPipeline


@dataclass
class SplitResult:
    split: str
    metrics: dict[str, float]
    predictions: list[dict]


PASSAGE_MODES = ("closed_book", "oracle")  # modes that score the split's questions with other passages


def evaluate(pipeline: RagPipeline, examples: list[RagExample], split: str, max_new_tokens: int = 24,
             batch_size: int | None = 8, seed: int = 0, accelerator=None, modes: tuple[str, ...] = ()) -> SplitResult:
    """Retrieve top-k for every question (one batched search), generate in batches, score each example.

    In a run launched on several processes each one predicts its contiguous shard of `examples`, and the
    predictions are gathered in shard order: every example once, in the order given. `batch_size` None:
    8 on the CPU, by free memory on a GPU (`Generator.batch_size_for`).
    """
    from harness.runtime.distributed import gather_in_order, shard  # torch: not for readers of the arithmetic

    if not examples:
        return SplitResult(split, {}, [])
    part = shard(accelerator, examples)
    modes = tuple(m for m in modes if m in PASSAGE_MODES)
    if pipeline.generator.sharded:
        mine = predict_in_step(pipeline, part, examples, split, max_new_tokens, batch_size, accelerator, modes)
    else:
        mine = predict(pipeline, part, split, max_new_tokens, batch_size, accelerator, modes)
    predictions = gather_in_order(accelerator, mine)
    metrics = summarize(predictions, pipeline.k, seed)
    for mode in modes:
        metrics.update(summarize_mode(predictions, mode, seed))
    for p in predictions:  # the stored prediction is the retrieved one; the modes live on as split metrics
        for mode in modes:
            p.pop(mode, None)
    return SplitResult(split, metrics, predictions)


def predict_in_step(pipeline: RagPipeline, part: list[RagExample], examples: list[RagExample], split: str,
                    max_new_tokens: int, batch_size: int | None, accelerator, modes: tuple[str, ...] = ()) -> list[dict]:
    """`predict` with the generator sharded (FSDP): every process generates as many batches, of one size, as
    the process with the largest shard (a shorter shard is topped up with copies of the first example,
    whose predictions are dropped), and `generate` steps until every process's batch is done."""
    largest = -(-len(examples) // accelerator.num_processes)
    padded = part + [examples[0]] * (largest - len(part))
    return predict(pipeline, padded, split, max_new_tokens, batch_size, accelerator, modes)[: len(part)]


def predict(pipeline: RagPipeline, examples: list[RagExample], split: str, max_new_tokens: int, batch_size: int,
            accelerator=None, modes: tuple[str, ...] = ()) -> list[dict]:
    """One scored prediction per example, in order; with `modes`, each also answered closed-book and/or with
    its gold passages (`p["closed_book"]`, `p["oracle"]`: prediction, em, f1; oracle None without labels)."""
    if not examples:
        return []
    questions = [ex.question for ex in examples]
    rows, _ = pipeline.retrieve(questions)
    prompts = pipeline.prompts(questions, rows)
    batch_size = batch_size or pipeline.generator.batch_size_for(prompts, max_new_tokens)
    if pipeline.generator.sharded:  # one batch size on every process: as many generate calls on each
        from harness.runtime.distributed import gather_in_order

        batch_size = min(gather_in_order(accelerator, [batch_size]))
    answers = generate_all(pipeline.generator, prompts, max_new_tokens, batch_size, f"evaluating {split}")
    scored = [_score(ex, answer, pipeline.passages(r), pipeline.k, split)
              for ex, answer, r in zip(examples, answers, rows)]
    for mode in modes:
        contexts = [mode_passages(pipeline, ex, mode) for ex in examples]
        # a question without gold passages gets the prompt with none (as on every process: generate in step)
        mode_prompts = [pipeline.generator.format_prompt(ex.question, ctx or []) for ex, ctx in zip(examples, contexts)]
        mode_answers = generate_all(pipeline.generator, mode_prompts, max_new_tokens, batch_size, f"evaluating {split} ({mode})")
        for p, ex, ctx, answer in zip(scored, examples, contexts, mode_answers):
            p[mode] = None if ctx is None else {"prediction": answer, "em": exact_match(answer, ex.answers),
                                                "f1": f1_score(answer, ex.answers)}
    return scored


def generate_all(generator, prompts: list[str], max_new_tokens: int, batch_size: int, desc: str) -> list[str]:
    """Greedy answers to `prompts`, `batch_size` at a time, with a progress bar named `desc`."""
    answers: list[str] = []
    with progress(desc=desc, total=len(prompts), unit="questions") as bar:
        for start in range(0, len(prompts), batch_size):
            answers += generator.generate(prompts[start : start + batch_size], max_new_tokens, batch_size)
            bar.update(len(prompts[start : start + batch_size]))
    return answers


def mode_passages(pipeline: RagPipeline, ex: RagExample, mode: str) -> list | None:
    """The passages a mode puts in the prompt: none (closed-book), or the example's gold passages (oracle; None
    when it has no context labels, or none of them is in the corpus)."""
    if mode == "closed_book":
        return []
    rows = [pipeline.corpus.row_of(pid) for pid in ex.gold_passage_ids]
    gold = [pipeline.corpus[row] for row in rows if row is not None][: pipeline.k]
    return gold or None


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
    out.update(by_gold_retrieval(predictions, seed))
    out.update(grounding(predictions))
    return out


def _with_interval(out: dict[str, float], name: str, values: list[float], seed: int) -> None:
    out[name] = float(np.mean(values))
    out[f"{name}_low"], out[f"{name}_high"] = bootstrap_interval(values, seed=seed)


def by_gold_retrieval(predictions: list[dict], seed: int = 0) -> dict[str, float]:
    """EM (%) on the questions whose gold passage was in the top-k and on those whose was not, with 95%
    intervals, and how many of each; nothing without context labels."""
    out: dict[str, float] = {}
    labelled = [p for p in predictions if p["hit"] is not None]
    for name, keep in (("gold_retrieved", 1.0), ("gold_missed", 0.0)):
        group = [100 * p["em"] for p in labelled if p["hit"] == keep]
        if labelled:
            out[f"n_{name}"] = float(len(group))
        if group:
            _with_interval(out, f"em_{name}", group, seed)
    return out


def grounding(predictions: list[dict]) -> dict[str, float]:
    """Of the correct answers (EM 1), the share (%) whose gold answer is inside a retrieved passage
    (`answer_hit`, DPR's has_answer); the rest were given without support in the passages."""
    correct = [p for p in predictions if p["em"] == 1.0]
    if not correct:
        return {}
    return {"grounded": 100 * float(np.mean([p["answer_hit"] for p in correct])), "n_correct": float(len(correct))}


def summarize_mode(predictions: list[dict], mode: str, seed: int = 0) -> dict[str, float]:
    """A mode's EM and F1 (%) with 95% intervals over the questions it could answer, and their number."""
    answered = [p[mode] for p in predictions if p.get(mode) is not None]
    if not answered:
        return {}
    out: dict[str, float] = {f"{mode}_n": float(len(answered))}
    for name in ("em", "f1"):
        _with_interval(out, f"{mode}_{name}", [100 * a[name] for a in answered], seed)
    return out


def decompose(run: dict[str, float], baseline: dict[str, float]) -> dict[str, float] | None:
    """Where a run's EM gain over a baseline on the same evaluation set comes from, in EM points.

    With h the share of questions whose gold passage is in the top-k, a and m the EM on those and on the rest,
    EM = h·a + (1−h)·m. With x̄ the mean of the two runs' x and Δx the run's minus the baseline's, exactly
    (the symmetric split: neither run's reader or retriever is privileged)

        EM_run − EM_base = Δh·(ā − m̄)              retrieval: more gold passages found, read as both read
                         + h̄·Δa + (1−h̄)·Δm          reading: better answers from what is retrieved

    `run` and `baseline` are one split's metrics (`summarize`); None without context labels on either side.
    A group with no questions (every gold retrieved, say) reads EM 0 there; its weight is then 0 on that side.
    """
    try:
        h_run, h_base = (x["n_gold_retrieved"] / x["n"] for x in (run, baseline))
        a_run, m_run, a_base, m_base = (x.get(f"em_gold_{which}", 0.0) for x in (run, baseline)
                                        for which in ("retrieved", "missed"))
    except (KeyError, ZeroDivisionError, TypeError):
        return None
    retrieval = (h_run - h_base) * ((a_run + a_base) / 2 - (m_run + m_base) / 2)
    return {"retrieval": retrieval, "reading": run["em"] - baseline["em"] - retrieval,
            "total": run["em"] - baseline["em"]}


# -- retention: the generator before and after fit, on data it never trained on --------------------------------
@dataclass
class RetentionProbe:
    """Held-out passages (perplexity) and questions (closed-book EM) from a general dataset (`--retention-probe`),
    minus whatever the run trains on."""

    passages: list[str]
    questions: list[RagExample]


@dataclass
class GeneratorSnapshot:
    """What the generator does on a `RetentionProbe`: per-passage NLL and token counts, per-question EM."""

    nll: list[float]
    tokens: list[int]
    em: list[float]

    def perplexity(self) -> float:
        return math.exp(sum(self.nll) / max(sum(self.tokens), 1))


def snapshot_generator(generator, probe: RetentionProbe, max_new_tokens: int, batch_size: int | None,
                       max_tokens: int = 256) -> GeneratorSnapshot:
    """Score the probe with the generator as it is now (every process the same, so a sharded one runs in step)."""
    nll, tokens = zip(*(passage_nll(generator, text, max_tokens) for text in probe.passages)) if probe.passages else ((), ())
    prompts = [generator.format_prompt(ex.question, []) for ex in probe.questions]
    answers = generate_all(generator, prompts, max_new_tokens, batch_size or 8, "retention probe")
    em = [exact_match(a, ex.answers) for a, ex in zip(answers, probe.questions)]
    return GeneratorSnapshot(list(nll), list(tokens), em)


def passage_nll(generator, text: str, max_tokens: int) -> tuple[float, int]:
    """Summed next-token negative log-likelihood of `text` (its first `max_tokens` tokens) and the tokens scored."""
    import torch

    model, tokenizer = generator.model, generator.tokenizer
    ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=max_tokens)["input_ids"].to(generator.device)
    if ids.shape[1] < 2:
        return 0.0, 0
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(input_ids=ids).logits[:, :-1].float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1),
                                                 reduction="sum")
        return float(loss), int(ids.shape[1] - 1)
    finally:
        model.train(was_training)


def retention_metrics(before: GeneratorSnapshot, after: GeneratorSnapshot, seed: int = 0) -> dict[str, float]:
    """The `retention` metrics: held-out perplexity before and after fit and its change (%), closed-book EM
    (%) before and after and its change (points) with a 95% bootstrap interval over the questions."""
    out = {"n_passages": float(len(before.nll)), "n_questions": float(len(before.em))}
    if before.nll:
        out["perplexity_before"], out["perplexity_after"] = before.perplexity(), after.perplexity()
        out["perplexity_change"] = 100 * (out["perplexity_after"] / out["perplexity_before"] - 1)
    if before.em:
        out["em_before"] = 100 * float(np.mean(before.em))
        out["em_after"] = 100 * float(np.mean(after.em))
        _with_interval(out, "em_change", [100 * (a - b) for a, b in zip(after.em, before.em)], seed)
    return out
