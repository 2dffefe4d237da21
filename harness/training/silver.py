"""Silver context labels (DPR's training positives, Karpukhin et al. 2020, §5.1).

For datasets without gold passage ids (nq_open, triviaqa, popqa): the passages among the *base*
retriever's top N for a training question that contain a gold answer, by the same matcher as
answer_recall (`harness.metrics.has_answer`), become that question's context labels. Questions with no
such passage are dropped from training and counted. Only the training split is relabelled; a dataset's
own labels there are replaced, so silver and gold labels can be compared on a labelled dataset.

    harness run --plugin ft_embed --dataset nq_open --silver-labels 20
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from harness.errors import UserError
from harness.metrics import has_answer
from harness.pipeline import RagPipeline
from harness.types import RagDataset, RagExample


@dataclass(frozen=True)
class SilverLabels:
    top_n: int
    labelled: int  # training questions kept, each with ≥ 1 silver passage
    dropped: int  # training questions with no answer-bearing passage in the top N

    def metrics(self) -> list[tuple[str, str, float]]:
        """As stored with the run (split `train`)."""
        return [("train", "silver_top_n", float(self.top_n)), ("train", "silver_labelled", float(self.labelled)),
                ("train", "silver_dropped", float(self.dropped))]


def silver_labelled(pipeline: RagPipeline, examples: list[RagExample], top_n: int) -> list[RagExample]:
    """`examples` with gold_passage_ids = their answer-bearing passages in the base top N; the others left out."""
    rows, _ = pipeline.retrieve([ex.question for ex in examples], k=min(top_n, len(pipeline.corpus)))  # (Q, N)
    kept = []
    for ex, row in zip(examples, rows):
        golds = [p.id for p in pipeline.passages(row) if has_answer(p.text, ex.answers)]
        if golds:
            kept.append(replace(ex, gold_passage_ids=golds))
    return kept


def with_silver_labels(pipeline: RagPipeline, dataset: RagDataset, top_n: int) -> tuple[RagDataset, SilverLabels]:
    train = silver_labelled(pipeline, dataset.train, top_n)
    if not train:
        raise UserError(f"--silver-labels {top_n}: no training question has a gold answer in the base retriever's "
                        f"top {top_n} passages; try a larger N")
    labels = SilverLabels(top_n, len(train), len(dataset.train) - len(train))
    return replace(dataset, train=train), labels
