"""Helpers every dataset plugin uses: chunking, deterministic splits, limits, row validation."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from harness.errors import UserError
from harness.types import Passage, RagExample


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


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-empty line; a malformed line is a UserError naming it."""
    if not path.is_file():
        raise UserError(f"missing file {path}")
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, row


def require_str(row: dict, field: str, where: str, allow_empty: bool = False) -> str:
    value = row.get(field)
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise UserError(f"{where}: field '{field}' must be a non-empty string")
    return value


def require_str_list(row: dict, field: str, where: str, allow_empty: bool = False, default: list | None = None) -> list[str]:
    if field not in row and default is not None:
        return default
    value = row.get(field)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or (not allow_empty and not value):
        need = "a list of strings" if allow_empty else "a non-empty list of strings"
        raise UserError(f"{where}: field '{field}' must be {need}")
    return value


def validate_dataset(name: str, splits: dict[str, list[RagExample]], corpus) -> None:
    """Checks every dataset gets before model work: non-empty splits, unique ids, labels in the corpus."""
    if len(corpus) == 0:
        raise UserError(f"dataset '{name}': the corpus is empty")
    for split, examples in splits.items():
        seen: set[str] = set()
        for ex in examples:
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
    from harness.types import Corpus, RagDataset

    corpus = dataset.corpus
    gold_rows = {corpus.row_of(pid) for split in (dataset.train, dataset.dev, dataset.test) for ex in split
                 for pid in ex.gold_passage_ids}
    keep = sorted(set(range(min(max_passages, len(corpus)))) | {r for r in gold_rows if r is not None})
    return RagDataset(dataset.name, dataset.train, dataset.dev, dataset.test, Corpus([corpus[r] for r in keep]))
