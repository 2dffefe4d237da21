"""`triviaqa` and `triviaqa_rc`: TriviaQA (Joshi et al., 2017) questions over a Wikipedia chunk corpus.

`triviaqa` is the `unfiltered.nocontext` config (the open-domain setting of DPR, RAG and JSA-RAG),
`triviaqa_rc` the `rc.nocontext` one. No context labels: answer_recall@k only. Answers: `answer.value` and
its `answer.aliases`. Splits: train = upstream train less a hashed 10% (dev); test = upstream validation (the
set open-domain papers report as test; upstream test has no answers). A question id that occurs twice with
the same question (rc pools the web and Wikipedia files) is kept once. Corpus: see `wikipedia`.

Source: hub `mandarjoshi/trivia_qa` (rows: question, question_id, question_source, entity_pages{...},
search_results{...}, answer{aliases, normalized_aliases, matched_wiki_entity_name,
normalized_matched_wiki_entity_name, normalized_value, type, value}), or --data-dir with those rows
(train/validation .jsonl/.json/.parquet, a hub clone's <config>/*.parquet) or the original release's JSON
({"Data": [{"Question", "QuestionId", "Answer": {"Value", "Aliases", ...}}]}: unfiltered-web-train.json /
unfiltered-web-dev.json; for rc, qa/web-*.json and qa/wikipedia-*.json together), next to the corpus.
"""

from __future__ import annotations

from pathlib import Path

from harness import DatasetOptions, DatasetSpec, RagDataset, RagExample, UserError, hookimpl
from harness.data import (
    UpstreamSplit,
    require_answers,
    require_dict,
    require_id,
    require_str,
    split_files,
    train_dev_test,
    upstream_rows,
    validate_dataset,
)

HUB_ID = "mandarjoshi/trivia_qa"
ORIGINAL_FILES = {  # the release's own JSON, per config and upstream split
    ("unfiltered.nocontext", "train"): ("unfiltered-web-train.json", "triviaqa-unfiltered/unfiltered-web-train.json"),
    ("unfiltered.nocontext", "validation"): ("unfiltered-web-dev.json", "triviaqa-unfiltered/unfiltered-web-dev.json"),
    ("rc.nocontext", "train"): ("qa/w*-train.json",),
    ("rc.nocontext", "validation"): ("qa/w*-dev.json",),
}
ORIGINAL_KEYS = {"Question": "question", "QuestionId": "question_id", "QuestionSource": "question_source"}
ORIGINAL_ANSWER_KEYS = {"Value": "value", "Aliases": "aliases", "NormalizedAliases": "normalized_aliases",
                        "NormalizedValue": "normalized_value", "Type": "type",
                        "MatchedWikiEntityName": "matched_wiki_entity_name",
                        "NormalizedMatchedWikiEntityName": "normalized_matched_wiki_entity_name"}


def sources(config: str, split: str) -> UpstreamSplit:
    return UpstreamSplit(HUB_ID, config, split, split_files(split, (config,), ORIGINAL_FILES[(config, split)]))


def flatten_original(doc: dict, path: Path):
    """The release's {"Data": [...]} with CamelCase keys, as hub-shaped rows."""
    if not isinstance(doc.get("Data"), list):
        raise UserError(f"{path}: expected TriviaQA's release form {{'Data': [...]}} or a list of rows")
    for i, item in enumerate(doc["Data"]):
        row = {ORIGINAL_KEYS.get(k, k): v for k, v in item.items()}
        if isinstance(item.get("Answer"), dict):
            row["answer"] = {ORIGINAL_ANSWER_KEYS.get(k, k): v for k, v in item["Answer"].items()}
        yield f"{path} Data[{i}]", row


def parse_row(row: dict, where: str) -> RagExample:
    answer = require_dict(row, "answer", where)
    aliases = answer.get("aliases") or []
    if not isinstance(aliases, list):
        raise UserError(f"{where}: field 'answer.aliases' must be a list of strings")
    values = [answer.get("value") or "", *aliases]
    return RagExample(require_id(row, "question_id", where), require_str(row, "question", where),
                      require_answers(values, "answer.value/answer.aliases", where))


def read_split(dataset: str, config: str, split: str, data_dir: str | None) -> list[RagExample]:
    examples: dict[str, RagExample] = {}
    for where, row in upstream_rows(dataset, sources(config, split), data_dir, flatten_original):
        example = parse_row(row, where)
        seen = examples.setdefault(example.id, example)
        if seen.question != example.question:
            raise UserError(f"{where}: field 'question_id': '{example.id}' already names another question")
    return list(examples.values())


def loader(dataset: str, config: str):
    def load(options: DatasetOptions) -> RagDataset:
        from harness.data import load_wikipedia_corpus

        train = read_split(dataset, config, "train", options.data_dir)
        validation = read_split(dataset, config, "validation", options.data_dir)
        train, dev, test = train_dev_test(train, validation, options.limit)
        corpus = load_wikipedia_corpus(dataset, options.data_dir)
        validate_dataset(dataset, {"train": train, "dev": dev, "test": test}, corpus)
        return RagDataset(dataset, train, dev, test, corpus)

    return load


@hookimpl
def register_datasets(register):
    card = dict(has_context_labels=False, license="unknown on the hub (release: Apache 2.0); corpus CC BY-SA")
    register(
        DatasetSpec(
            name="triviaqa",
            load=loader("triviaqa", "unfiltered.nocontext"),
            description="TriviaQA unfiltered (open-domain) over Wikipedia chunks; no context labels",
            source=f"hub {HUB_ID} (unfiltered.nocontext) + MedRAG/wikipedia, or --data-dir",
            size="87,622 train / 11,313 validation questions; 29.9M passages (MedRAG)",
            **card,
        )
    )
    register(
        DatasetSpec(
            name="triviaqa_rc",
            load=loader("triviaqa_rc", "rc.nocontext"),
            description="TriviaQA reading-comprehension questions over Wikipedia chunks; no context labels",
            source=f"hub {HUB_ID} (rc.nocontext) + MedRAG/wikipedia, or --data-dir",
            size="138,384 train / 17,944 validation rows; 29.9M passages (MedRAG)",
            **card,
        )
    )
