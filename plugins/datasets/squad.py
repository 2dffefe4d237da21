"""`squad`: SQuAD v1.1 with its own contexts as the knowledge base (Siriwardhana et al., 001_*).

Knowledge base: every context of train and validation, chunked to at most 100 words with its title (001_*:
"around 20 000 passages"). Context labels: the chunk(s) the answer span falls in, found from `answer_start`.
Splits: train = upstream train less a hashed 10% (dev); test = upstream validation (10,570 questions).

Source: hub `rajpurkar/squad` (rows: id, title, context, question, answers{text[], answer_start[]}), or
--data-dir with the same rows (train/validation .jsonl/.json/.parquet, a hub clone's plain_text/*.parquet)
or the official train-v1.1.json / dev-v1.1.json (`data[].paragraphs[].qas[]`).
"""

from __future__ import annotations

import bisect
import hashlib
import re
from pathlib import Path

from harness import Corpus, DatasetOptions, DatasetSpec, Passage, RagDataset, RagExample, UserError, hookimpl
from harness.data import (
    UpstreamSplit,
    chunk_words,
    require_dict,
    require_id,
    require_str,
    split_files,
    train_dev_test,
    upstream_rows,
    validate_dataset,
)

HUB_ID = "rajpurkar/squad"
MAX_WORDS = 100
SOURCES = {
    "train": UpstreamSplit(HUB_ID, None, "train", split_files("train", ("plain_text",), ("train-v1.1.json",))),
    "validation": UpstreamSplit(HUB_ID, None, "validation",
                                split_files("validation", ("plain_text",), ("dev-v1.1.json",))),
}


def flatten_official(doc: dict, path: Path):
    """The official JSON (`data[].paragraphs[].qas[]`) as hub-shaped rows, one per question."""
    if not isinstance(doc.get("data"), list):
        raise UserError(f"{path}: expected SQuAD's official form {{'data': [...]}} or a list of rows")
    for a, article in enumerate(doc["data"]):
        for p, paragraph in enumerate(article.get("paragraphs") or []):
            for q, qa in enumerate(paragraph.get("qas") or []):
                answers = qa.get("answers")
                if isinstance(answers, list) and all(isinstance(x, dict) for x in answers):
                    answers = {"text": [x.get("text") for x in answers],
                               "answer_start": [x.get("answer_start") for x in answers]}
                yield f"{path} data[{a}].paragraphs[{p}].qas[{q}]", {
                    "id": qa.get("id"), "title": article.get("title", ""), "context": paragraph.get("context"),
                    "question": qa.get("question"), "answers": answers}


def answer_chunks(context: str, text: str, start: int, where: str) -> range:
    """Indexes of the ≤100-word chunks (as chunk_words cuts them) that the answer span overlaps."""
    if context[start : start + len(text)] != text:
        raise UserError(f"{where}: field 'answers.answer_start' ({start}) does not point at the answer '{text}'")
    word_starts = [m.start() for m in re.finditer(r"\S+", context)]
    first = max(0, _word_at(word_starts, start))
    last = _word_at(word_starts, start + max(len(text), 1) - 1)
    return range(first // MAX_WORDS, last // MAX_WORDS + 1)


def _word_at(word_starts: list[int], char: int) -> int:
    return bisect.bisect_right(word_starts, char) - 1


def context_id(title: str, context: str) -> str:
    return "squad:" + hashlib.sha1(f"{title}\x1f{context}".encode()).hexdigest()[:12]


def parse_row(row: dict, where: str) -> tuple[RagExample, list[Passage]]:
    """One hub-shaped row → its example (labels = answer chunks) and its context's passages."""
    title = row.get("title") or ""
    if not isinstance(title, str):
        raise UserError(f"{where}: field 'title' must be a string")
    context = require_str(row, "context", where)
    answers = require_dict(row, "answers", where)
    texts, starts = answers.get("text"), answers.get("answer_start")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise UserError(f"{where}: field 'answers.text' must be a non-empty list of non-empty strings")
    if not isinstance(starts, list) or len(starts) != len(texts) or not all(isinstance(s, int) for s in starts):
        raise UserError(f"{where}: field 'answers.answer_start' must be one integer per answer text")
    doc_id = context_id(title, context)
    chunks = [i for t, s in zip(texts, starts) for i in answer_chunks(context, t, s, where)]
    passages = [Passage(f"{doc_id}#{i}", title, chunk) for i, chunk in enumerate(chunk_words(context, MAX_WORDS))]
    example = RagExample(
        id=require_id(row, "id", where),
        question=require_str(row, "question", where),
        answers=list(dict.fromkeys(texts)),
        gold_passage_ids=[f"{doc_id}#{i}" for i in sorted(set(chunks))],
    )
    return example, passages


def load(options: DatasetOptions) -> RagDataset:
    passages: dict[str, Passage] = {}
    splits: dict[str, list[RagExample]] = {}
    for name, source in SOURCES.items():
        splits[name] = []
        for where, row in upstream_rows("squad", source, options.data_dir, flatten_official):
            example, chunks = parse_row(row, where)
            splits[name].append(example)
            for passage in chunks:
                passages.setdefault(passage.id, passage)
    train, dev, test = train_dev_test(splits["train"], splits["validation"], options.limit)
    corpus = Corpus(list(passages.values()))
    validate_dataset("squad", {"train": train, "dev": dev, "test": test}, corpus)
    return RagDataset("squad", train, dev, test, corpus)


@hookimpl
def register_datasets(register):
    register(
        DatasetSpec(
            name="squad",
            load=load,
            description="SQuAD v1.1, its contexts chunked to ≤100 words as the knowledge base (001_*)",
            has_context_labels=True,
            license="CC BY-SA 4.0",
            source=f"hub {HUB_ID}, or --data-dir (hub rows or train-v1.1.json/dev-v1.1.json)",
            size="87,599 train / 10,570 validation questions; ≈21k contexts",
        )
    )
