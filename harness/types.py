"""Core data types: passages, examples, datasets, corpora, and the specs plugins register."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Passage:
    id: str
    title: str
    text: str

    def as_text(self) -> str:
        """What the embedder encodes and the prompt shows: the title kept in front of the chunk."""
        return f"{self.title}: {self.text}" if self.title else self.text


@dataclass(frozen=True)
class RagExample:
    id: str
    question: str
    answers: list[str]
    # Empty list = no context labels for this example.
    gold_passage_ids: list[str] = field(default_factory=list)


class Corpus:
    """Passages addressed by row number (the FAISS id) and by passage id.

    The in-memory form suits corpora up to a few million passages; dataset plugins with larger ones
    subclass it with a memory-mapped store and keep the same four methods.
    """

    vectors_dir: Path | None = None  # float16 vectors shipped with a packaged corpus (retrieval.py checks them)

    def __init__(self, passages: Sequence[Passage]):
        self._passages = list(passages)
        self._row_of = {p.id: i for i, p in enumerate(self._passages)}

    def __len__(self) -> int:
        return len(self._passages)

    def __getitem__(self, row: int) -> Passage:
        return self._passages[row]

    def row_of(self, passage_id: str) -> int | None:
        return self._row_of.get(passage_id)

    def iter_texts(self, batch_size: int, start: int = 0, stop: int | None = None) -> Iterator[list[str]]:
        """The passages' texts of rows [start, stop), `batch_size` at a time."""
        stop = len(self) if stop is None else min(stop, len(self))
        for first in range(start, stop, batch_size):
            yield [self[i].as_text() for i in range(first, min(first + batch_size, stop))]

    def fingerprint(self) -> str:
        """sha256 over ids, titles and texts: the corpus half of the index cache key."""
        h = hashlib.sha256()
        for i in range(len(self)):
            p = self[i]
            h.update(f"{p.id}\x1f{p.title}\x1f{p.text}\x1e".encode())
        return h.hexdigest()[:16]


@dataclass
class RagDataset:
    name: str
    train: list[RagExample]
    dev: list[RagExample]
    test: list[RagExample]
    corpus: Corpus

    @property
    def has_context_labels(self) -> bool:
        return any(ex.gold_passage_ids for ex in self.train)

    def split(self, name: str) -> list[RagExample]:
        return {"train": self.train, "dev": self.dev, "test": self.test}[name]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset plugin's registration: ``load(DatasetOptions)`` returns a RagDataset."""

    name: str
    load: Callable[[DatasetOptions], RagDataset]
    description: str = ""
    has_context_labels: bool = True
    license: str = ""
    source: str = ""
    size: str = ""  # for the dataset card, e.g. "14,267 questions; 29.9M passages"
    # Options in the name ("synthbio:people=2000"): resolve("people=2000") returns the concrete spec.
    resolve: Callable[[str], "DatasetSpec"] | None = None


@dataclass(frozen=True)
class DatasetOptions:
    """What a dataset loader is told: a local copy (else the packaged or hub source) and a cap on
    examples per split. Splits never depend on the run's seed, so every run sees the same test set."""

    data_dir: str | None = None
    limit: int | None = None


@dataclass(frozen=True)
class ModelOptions:
    """What a model loader is told: the torch device and an optional quantization ("4bit")."""

    device: str = "cpu"
    quantize: str | None = None


@dataclass(frozen=True)
class EmbedderSpec:
    """``load(ModelOptions)`` returns a sentence_transformers.SentenceTransformer."""

    name: str
    load: Callable[[ModelOptions], Any]
    description: str = ""
    kind: str = "embedder"
    # A family (name ending in ":", e.g. "hf:") resolves "hf:<id>" to a concrete spec.
    resolve: Callable[[str], "EmbedderSpec"] | None = None
    hub_id: str | None = None  # the Hugging Face hub id of these weights: model cards name it as the base model


@dataclass(frozen=True)
class GeneratorSpec:
    """``load(ModelOptions)`` returns ``(model, tokenizer)`` for a Hugging Face causal LM."""

    name: str
    load: Callable[[ModelOptions], tuple[Any, Any]]
    description: str = ""
    kind: str = "generator"
    resolve: Callable[[str], "GeneratorSpec"] | None = None
    hub_id: str | None = None  # the hub id of these weights: a saved adapter's base_model_name_or_path
    # the exact weights loaded, for model cards: e.g. {"file": "X.Q4_1.gguf", "sha256": ..., "note": "dequantized
    # to float32"}; None: the card names the loaded folder and its weights' sha256
    weights: Callable[[], dict[str, str]] | None = None
