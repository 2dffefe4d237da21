"""`nq_open`: Natural Questions, open-domain form (Lee et al., 2019), over a Wikipedia chunk corpus.

Questions with short answers and no passage: no context labels, so strategies that need them refuse it and
recall@k is not reported; answer_recall@k is. Splits: train = upstream train less a hashed 10% (dev); test =
upstream validation (the 3,610 questions papers report as NQ test). Upstream rows have no id: the id is
`<split>-<row number>`, stable for a given file. Corpus: see `wikipedia` and docs/datasets.md.

Source: hub `google-research-datasets/nq_open` (rows: question, answer[]), or --data-dir with the same rows
(train/validation .jsonl/.json/.parquet, a hub clone's nq_open/*.parquet) or the original release's
NQ-open.train.jsonl / NQ-open.dev.jsonl, next to the corpus.
"""

from __future__ import annotations

from harness import DatasetOptions, DatasetSpec, RagDataset, RagExample, hookimpl
from harness.data import (
    UpstreamSplit,
    require_answers,
    require_str,
    split_files,
    train_dev_test,
    upstream_rows,
    validate_dataset,
)

HUB_ID = "google-research-datasets/nq_open"
SOURCES = {
    "train": UpstreamSplit(HUB_ID, "nq_open", "train", split_files("train", ("nq_open",), ("NQ-open.train.jsonl",))),
    "validation": UpstreamSplit(HUB_ID, "nq_open", "validation",
                                split_files("validation", ("nq_open",), ("NQ-open.dev.jsonl", "dev.jsonl"))),
}


def read_split(name: str, data_dir: str | None) -> list[RagExample]:
    examples = []
    for n, (where, row) in enumerate(upstream_rows("nq_open", SOURCES[name], data_dir), start=1):
        question = require_str(row, "question", where)
        examples.append(RagExample(f"{name}-{n}", question, require_answers(row.get("answer"), "answer", where)))
    return examples


def load(options: DatasetOptions) -> RagDataset:
    from harness.data import load_wikipedia_corpus

    train, dev, test = train_dev_test(read_split("train", options.data_dir), read_split("validation", options.data_dir),
                                      options.limit)
    corpus = load_wikipedia_corpus("nq_open", options.data_dir)
    validate_dataset("nq_open", {"train": train, "dev": dev, "test": test}, corpus)
    return RagDataset("nq_open", train, dev, test, corpus)


@hookimpl
def register_datasets(register):
    register(
        DatasetSpec(
            name="nq_open",
            load=load,
            description="NQ-open questions over Wikipedia chunks; no context labels (answer_recall@k)",
            has_context_labels=False,
            license="CC BY-SA 3.0 (questions); corpus CC BY-SA (Wikipedia)",
            source=f"hub {HUB_ID} + MedRAG/wikipedia, or --data-dir (rows or NQ-open.*.jsonl + corpus)",
            size="87,925 train / 3,610 validation questions; 29.9M passages (MedRAG)",
        )
    )
