"""One implementation of every metric, used by every run (docs/architecture.md §6).

EM and F1 follow the official SQuAD evaluation script: lower-case, drop punctuation, drop the
articles a/an/the, collapse whitespace; the score is the max over gold answers. When the prediction or
the gold normalizes to nothing (an empty answer, or one that is only "the"), F1 follows SQuAD v2.0: 1.0
if both are empty, else 0.0 (v1.1's script gave 0.0 even when both were empty). So EM = 1 always
implies F1 = 1.

answer_recall@k and silver context labels use DPR's `has_answer` (Karpukhin et al. 2020, string match
type): Unicode NFD, a simple tokenizer (runs of letters/digits/marks, every other non-space character
a token of its own), lower-case, and the answer's token sequence found inside the passage's tokens.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import regex

_PUNCT = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds))


def _f1_one(prediction: str, gold: str) -> float:
    """Token F1 of one prediction against one gold; both empty after normalization = 1.0 (SQuAD v2.0)."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    overlap = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, golds: Sequence[str]) -> float:
    return max((_f1_one(prediction, g) for g in golds), default=0.0)


def passage_hit(retrieved_ids: Sequence[str], gold_ids: Sequence[str], k: int) -> float:
    """recall@k for one question: 1 if any gold passage id is in the top k."""
    return float(bool(set(retrieved_ids[:k]) & set(gold_ids)))


# DPR's simple tokenizer: a run of letters, digits and combining marks is one token; any other
# character that is neither a separator (\p{Z}) nor a control/format character (\p{C}) is a token alone.
_SIMPLE_TOKEN = regex.compile(r"[\p{L}\p{N}\p{M}]+|[^\p{Z}\p{C}]", flags=regex.UNICODE)


def simple_tokens(text: str) -> list[str]:
    """Lower-cased tokens of `text` after Unicode NFD: "Obama's" -> obama ' s, "U.S." -> u . s ."""
    return [t.lower() for t in _SIMPLE_TOKEN.findall(unicodedata.normalize("NFD", text))]


def _contains_sequence(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def has_answer(text: str, golds: Sequence[str]) -> bool:
    """DPR's `has_answer` (string match): some gold answer's token sequence occurs in `text`'s tokens."""
    tokens = simple_tokens(text)
    return any(_contains_sequence(tokens, simple_tokens(g)) for g in golds)


def answer_hit(passage_texts: Sequence[str], golds: Sequence[str], k: int) -> float:
    """answer_recall@k for one question: 1 if one of the top-k passages `has_answer` for a gold answer.
    "Obama" is in "Obama's policy" and "Prussian" in "the Franco-Prussian war"; "The Who" is not in "who is
    there", "1000" not in "1,000" and "US" not in "the U.S." (token sequences, not substrings)."""
    return float(any(has_answer(text, golds) for text in passage_texts[:k]))


def bootstrap_interval(values: Sequence[float], n_resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean over examples."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, arr.size, size=(n_resamples, arr.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], n_resamples: int = 2000, seed: int = 0) -> float:
    """Two-sided p-value of the paired bootstrap test that mean(a) = mean(b): `a[i]` and `b[i]` score the
    same example. Resample examples, and count how often the mean difference falls on either side of 0."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if diff.size == 0:
        return float("nan")
    if not diff.any():
        return 1.0
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(n_resamples, diff.size))].mean(axis=1)
    one_sided = min(np.mean(means <= 0), np.mean(means >= 0))
    return float(min(1.0, 2 * one_sided))


@dataclass(frozen=True)
class MetricInfo:
    name: str
    higher_is_better: bool
    description: str
    unit: str = ""


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in [
        MetricInfo("em", True, "Exact match after SQuAD normalization, max over gold answers", "%"),
        MetricInfo("f1", True, "Token F1 after SQuAD normalization, max over gold answers", "%"),
        MetricInfo("recall@5", True, "Share of questions with a gold passage id in the top 5 (needs context labels)", "%"),
        MetricInfo("answer_recall@5", True, "Share of questions with a gold answer inside a top-5 passage (DPR has_answer: NFD, simple tokens)", "%"),  # noqa: E501
        MetricInfo("fit_seconds", False, "Wall-clock seconds spent in strategy.fit", "s"),
        MetricInfo("eval_seconds", False, "Wall-clock seconds to retrieve and generate for the evaluated split", "s"),
        MetricInfo("gpu_hours", False, "fit seconds × GPUs used / 3600 (0 on CPU)", "h"),
        MetricInfo("peak_memory_mb", False, "CUDA max allocated, or process peak RSS on CPU", "MB"),
        MetricInfo("trained_tokens", False, "Tokens the generator was trained on (prompt + answer)", ""),
        MetricInfo("index_refreshes", False, "Times the corpus was re-encoded and re-indexed during fit", ""),
        MetricInfo("train_flops", False, "Estimated training FLOPs: 2·N per token forward, 4·N backward for "
                   "trained models (harness/training/flops.py)", "FLOP"),
        MetricInfo("refresh_seconds", False, "Seconds spent re-encoding and re-indexing during fit", "s"),
    ]
}


def metric_info(name: str) -> MetricInfo:
    """Info for a stored metric name; `recall@k` for any k, and `_low`/`_high` interval bounds."""
    base = re.sub(r"_(low|high)$", "", name)
    base = re.sub(r"@\d+$", "@5", base)
    return METRICS.get(base, MetricInfo(name, True, name))
