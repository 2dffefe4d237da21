"""`local`: your own data as a folder of JSON-lines files (see docs/datasets.md).

    corpus.jsonl   {"id": "p1", "title": "Paris", "text": "Paris is the capital of France."}
    train.jsonl    {"id": "q1", "question": "What is the capital of France?", "answers": ["Paris"],
    dev.jsonl       "gold_passage_ids": ["p1"]}            # gold_passage_ids optional (no context labels)
    test.jsonl

`answers` may be a string or a list of strings. Every row is validated; a bad one is reported with its
file, line and field.
"""

from __future__ import annotations

from pathlib import Path

from harness import Corpus, DatasetOptions, DatasetSpec, Passage, RagDataset, RagExample, UserError, hookimpl
from harness.data import apply_limit, read_jsonl, require_id, require_str, require_str_list, validate_dataset

SPLITS = ("train", "dev", "test")


def read_corpus(path: Path) -> Corpus:
    passages, seen = [], set()
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        pid = require_str(row, "id", where)
        if pid in seen:
            raise UserError(f"{where}: duplicate passage id '{pid}'")
        seen.add(pid)
        title = row.get("title", "")
        if not isinstance(title, str):
            raise UserError(f"{where}: field 'title' must be a string")
        passages.append(Passage(pid, title, require_str(row, "text", where)))
    return Corpus(passages)


def read_examples(path: Path) -> list[RagExample]:
    examples = []
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        examples.append(
            RagExample(
                id=require_id(row, "id", where) if "id" in row else f"{path.stem}-{lineno}",
                question=require_str(row, "question", where),
                answers=require_str_list(row, "answers", where),
                gold_passage_ids=require_str_list(row, "gold_passage_ids", where, allow_empty=True, default=[]),
            )
        )
    return examples


def load(options: DatasetOptions) -> RagDataset:
    if not options.data_dir:
        raise UserError("dataset 'local' needs --data-dir DIR with corpus.jsonl, train.jsonl, dev.jsonl, test.jsonl")
    root = Path(options.data_dir)
    if not root.is_dir():
        raise UserError(f"--data-dir {root} is not a directory")
    corpus = read_corpus(root / "corpus.jsonl")
    splits = {s: apply_limit(read_examples(root / f"{s}.jsonl"), options.limit) for s in SPLITS}
    validate_dataset(f"local:{root}", splits, corpus)
    return RagDataset(f"local:{root.name}", splits["train"], splits["dev"], splits["test"], corpus)


@hookimpl
def register_datasets(register):
    register(
        DatasetSpec(
            name="local",
            load=load,
            description="Your own folder: corpus.jsonl + train/dev/test.jsonl (--data-dir DIR)",
            has_context_labels=True,
            license="yours",
            source="--data-dir",
        )
    )
