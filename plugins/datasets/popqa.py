"""`popqa`: PopQA (Mallen et al., 2023; used by 000_*) over a Wikipedia chunk corpus.

14,267 entity questions built from Wikidata triples, in one labelled split, divided here by a hash of the
id into train/dev/test (50/20/30, `stable_split`). Answers: `possible_answers` (a JSON-encoded list in
upstream). Context labels: the corpus chunks whose title is the subject's Wikipedia title `s_wiki_title`
(questions whose subject has no chunk get none; recall@k counts only labelled questions);
answer_recall@k is reported for every question. Corpus: the MedRAG Wikipedia chunks 000_* used (hub
MedRAG/wikipedia, 29.9M passages) or the corpus in --data-dir (see `wikipedia` and docs/datasets.md).

Source: hub `akariasai/PopQA` split `test` (rows: id, subj, prop, obj, subj_id, prop_id, obj_id, s_aliases,
o_aliases, s_uri, o_uri, s_wiki_title, o_wiki_title, s_pop, o_pop, question, possible_answers), or
--data-dir with those rows as test.tsv (the hub file), popQA.tsv (the original release), test.jsonl/.json/
.parquet, next to the corpus.
"""

from __future__ import annotations

import dataclasses
import json

from harness import DatasetOptions, DatasetSpec, RagDataset, RagExample, UserError, hookimpl
from harness.data import (
    UpstreamSplit,
    apply_limit,
    require_answers,
    require_id,
    require_str,
    split_files,
    stable_split,
    upstream_rows,
    validate_dataset,
)

HUB_ID = "akariasai/PopQA"
SOURCE = UpstreamSplit(HUB_ID, None, "test", split_files("test", (), ("popQA.tsv", "data/popQA.tsv")))


def possible_answers(row: dict, where: str) -> list[str]:
    """`possible_answers` as upstream encodes it (a JSON string of a list) or as a plain list."""
    value = row.get("possible_answers")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise UserError(f"{where}: field 'possible_answers' is not a JSON list of strings") from None
    return require_answers(value, "possible_answers", where)


def parse_row(row: dict, where: str) -> tuple[RagExample, str]:
    """One question → its example (no labels yet) and its subject's Wikipedia title."""
    title = row.get("s_wiki_title") or ""
    if not isinstance(title, str):
        raise UserError(f"{where}: field 's_wiki_title' must be a string")
    question = require_str(row, "question", where)
    return RagExample(require_id(row, "id", where), question, possible_answers(row, where)), title


def load(options: DatasetOptions) -> RagDataset:
    from harness.data import load_wikipedia_corpus

    parsed = [parse_row(row, where) for where, row in upstream_rows("popqa", SOURCE, options.data_dir)]
    subject_of = {ex.id: title for ex, title in parsed}
    train, dev, test = (apply_limit(s, options.limit) for s in stable_split([ex for ex, _ in parsed]))
    corpus = load_wikipedia_corpus("popqa", options.data_dir)
    splits = {
        name: [dataclasses.replace(ex, gold_passage_ids=corpus.ids_with_title(subject_of[ex.id])) for ex in examples]
        for name, examples in (("train", train), ("dev", dev), ("test", test))
    }
    validate_dataset("popqa", splits, corpus)
    return RagDataset("popqa", splits["train"], splits["dev"], splits["test"], corpus)


@hookimpl
def register_datasets(register):
    register(
        DatasetSpec(
            name="popqa",
            load=load,
            description="PopQA entity questions over Wikipedia chunks (000_*); labels = subject article's chunks",
            has_context_labels=True,
            license="MIT (questions); corpus CC BY-SA (Wikipedia)",
            source=f"hub {HUB_ID} + MedRAG/wikipedia, or --data-dir (test.tsv/popQA.tsv + corpus)",
            size="14,267 questions, split 50/20/30 by id hash; 29.9M passages (MedRAG)",
        )
    )
