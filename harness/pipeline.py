"""The RAG pipeline a strategy trains and the harness evaluates: query tower, passage index, generator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.models.generation import Generator
from harness.retrieval.index import PassageIndex, encode_texts
from harness.types import Corpus, Passage


@dataclass
class RagPipeline:
    query_encoder: Any  # SentenceTransformer E_q
    passage_encoder: Any  # E_p: the same object as E_q unless a strategy trains a separate passage tower
    index: PassageIndex
    corpus: Corpus
    generator: Generator
    k: int = 5

    def retrieve(self, questions: list[str], k: int | None = None, encoder=None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k corpus rows and cosine scores for each question: (Q, k), (Q, k). Batched."""
        vecs = encode_texts(encoder or self.query_encoder, questions)
        return self.index.search(vecs, k or self.k)

    def passages(self, rows) -> list[Passage]:
        return [self.corpus[int(r)] for r in rows if int(r) >= 0]

    def prompts(self, questions: list[str], rows: np.ndarray) -> list[str]:
        """One prompt per question with its top-k passages concatenated (inference for every strategy)."""
        return [self.generator.format_prompt(q, self.passages(r)) for q, r in zip(questions, rows)]
