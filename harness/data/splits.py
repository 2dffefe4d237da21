"""From rows to a RagDataset: passages chunked, deterministic splits, limits, and the checks every dataset
gets before model work."""

from __future__ import annotations

import hashlib

from harness.errors import UserError
from harness.types import Corpus, Passage, RagDataset, RagExample

DEV_FRACTION = 0.1  # share of an upstream train split held out as the harness dev split


def chunk_words(text: str, max_words: int = 100) -> list[str]:
    """Split text into chunks of at most `max_words` words (the papers' ~100-word Wikipedia passages)."""
    words = text.split()
    return [" ".join(words[i : i + max_words]) for i in range(0, len(words), max_words)] or [""]


def chunk_document(doc_id: str, title: str, text: str, max_words: int = 100) -> list[Passage]:
    return [Passage(f"{doc_id}#{i}", title, chunk) for i, chunk in enumerate(chunk_words(text, max_words)) if chunk]


def stable_split(
    examples: list[RagExample], fractions: tuple[float, float] = (0.5, 0.2)
) -> tuple[list[RagExample], list[RagExample], list[RagExample]]:
    """Deterministic train/dev/test split by a hash of each example id (independent of order and seed)."""
    ordered = sorted(examples, key=lambda ex: hashlib.sha256(ex.id.encode()).hexdigest())
    n_train = round(len(ordered) * fractions[0])
    n_dev = round(len(ordered) * fractions[1])
    return ordered[:n_train], ordered[n_train : n_train + n_dev], ordered[n_train + n_dev :]


def apply_limit(examples: list[RagExample], limit: int | None) -> list[RagExample]:
    return examples if limit is None else examples[:limit]


def split_off(examples: list[RagExample], fraction: float = DEV_FRACTION) -> tuple[list[RagExample], list[RagExample]]:
    """Move `fraction` of the examples, chosen by a hash of each id, into a second list (e.g. dev out of an
    upstream train split). Deterministic, independent of order and seed; both lists keep the input order."""
    n_held = max(1, round(len(examples) * fraction)) if len(examples) > 1 else 0
    by_hash = sorted(examples, key=lambda ex: hashlib.sha256(ex.id.encode()).hexdigest())
    held = {ex.id for ex in by_hash[:n_held]}
    return [ex for ex in examples if ex.id not in held], [ex for ex in examples if ex.id in held]


def train_dev_test(train: list[RagExample], validation: list[RagExample], limit: int | None):
    """Upstream train + validation → harness train, dev (a hashed slice of upstream train) and test
    (the upstream validation split: the set papers report), each capped at `limit`."""
    rest, dev = split_off(train)
    return apply_limit(rest, limit), apply_limit(dev, limit), apply_limit(validation, limit)


def validate_dataset(name: str, splits: dict[str, list[RagExample]], corpus) -> None:
    """Checks every dataset gets before model work: non-empty splits, unique ids, labels in the corpus."""
    if len(corpus) == 0:
        raise UserError(f"dataset '{name}': the corpus is empty")
    for split, examples in splits.items():
        seen: set[str] = set()
        for ex in examples:
            if not isinstance(ex.id, str) or not ex.id:
                raise UserError(f"dataset '{name}' {split}: example ids must be non-empty strings, got {ex.id!r}")
            if ex.id in seen:
                raise UserError(f"dataset '{name}' {split}: duplicate example id '{ex.id}'")
            seen.add(ex.id)
        missing = [(ex.id, pid) for ex in examples for pid in ex.gold_passage_ids if corpus.row_of(pid) is None]
        if missing:
            first = ", ".join(f"{eid}→{pid}" for eid, pid in missing[:3])
            raise UserError(
                f"dataset '{name}' {split}: {len(missing)} context label(s) point at passage ids not in the corpus "
                f"(first: {first})"
            )


def limit_corpus(dataset, max_passages: int):
    """The dataset over a smaller corpus: the first `max_passages` passages plus every gold passage of
    every kept example, in corpus order. For quick runs; the task gets easier, so such runs say so."""
    corpus = dataset.corpus
    gold_rows = {corpus.row_of(pid) for split in (dataset.train, dataset.dev, dataset.test) for ex in split
                 for pid in ex.gold_passage_ids}
    keep = sorted(set(range(min(max_passages, len(corpus)))) | {r for r in gold_rows if r is not None})
    return RagDataset(dataset.name, dataset.train, dataset.dev, dataset.test, Corpus([corpus[r] for r in keep]))
