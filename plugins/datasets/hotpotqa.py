"""`hotpotqa` and `hotpotqa_wiki`: HotPotQA, distractor setting (Yang et al., 2018; used by 000_*).

Each question comes with ten paragraphs (two gold, eight distractors); its `supporting_facts` name the gold
ones by title. Context labels: those supporting paragraphs.
- `hotpotqa`: the corpus is the pooled paragraphs of the loaded questions (self-contained; with --limit
  it shrinks with the questions). One passage per paragraph, id `<title>#<hash of its text>`.
- `hotpotqa_wiki`: the corpus is a Wikipedia chunk corpus (the MedRAG chunks 000_* retrieves from, or
  your own, see `wikipedia`); labels are the chunks whose title is a supporting-fact title.
Splits: train = upstream train less a hashed 10% (dev); test = upstream validation (7,405 questions).

Source: hub `hotpotqa/hotpot_qa`, config `distractor` (rows: id, question, answer, type, level,
supporting_facts{title[], sent_id[]}, context{title[], sentences[[...]]}), or --data-dir with the same rows
(train/validation .jsonl/.json/.parquet, a hub clone's distractor/*.parquet) or the original release files
hotpot_train_v1.1.json / hotpot_dev_distractor_v1.json (a list of {_id, supporting_facts: [[title, sent_id]],
context: [[title, [sentences]]], ...}).
"""

from __future__ import annotations

import dataclasses
import hashlib

from harness import Corpus, DatasetOptions, DatasetSpec, Passage, RagDataset, RagExample, UserError, hookimpl
from harness.data import (
    UpstreamSplit,
    require_id,
    require_str,
    split_files,
    train_dev_test,
    upstream_rows,
    validate_dataset,
)

HUB_ID = "hotpotqa/hotpot_qa"
SOURCES = {
    "train": UpstreamSplit(HUB_ID, "distractor", "train",
                           split_files("train", ("distractor",), ("hotpot_train_v1.1.json",))),
    "validation": UpstreamSplit(HUB_ID, "distractor", "validation",
                                split_files("validation", ("distractor",), ("hotpot_dev_distractor_v1.json",))),
}


def context_paragraphs(row: dict, where: str) -> list[tuple[str, list]]:
    """(title, sentences) pairs from the hub form {title[], sentences[[...]]} or the original [[title, [...]]]."""
    context = row.get("context")
    shape = "must be {title: [...], sentences: [[...]]} or [[title, [sentences]]]"
    if isinstance(context, dict) and isinstance(context.get("title"), list):
        titles, sentences = context["title"], context.get("sentences")
        if not isinstance(sentences, list) or len(titles) != len(sentences):
            raise UserError(f"{where}: field 'context' {shape}, with one sentence list per title")
        pairs = list(zip(titles, sentences))
    elif isinstance(context, list) and all(isinstance(c, list) and len(c) == 2 for c in context):
        pairs = [(c[0], c[1]) for c in context]
    else:
        raise UserError(f"{where}: field 'context' {shape}")
    for title, sents in pairs:
        if not isinstance(title, str) or not isinstance(sents, list) or not all(isinstance(s, str) for s in sents):
            raise UserError(f"{where}: field 'context' must pair each title with a list of sentences")
    if not pairs:
        raise UserError(f"{where}: field 'context' has no paragraphs")
    return pairs


def supporting_titles(row: dict, where: str) -> list[str]:
    facts = row.get("supporting_facts")
    if isinstance(facts, dict) and isinstance(facts.get("title"), list):
        titles = facts["title"]
    elif isinstance(facts, list) and all(isinstance(f, list) and len(f) == 2 for f in facts):
        titles = [f[0] for f in facts]
    else:
        raise UserError(f"{where}: field 'supporting_facts' must be {{title: [...], sent_id: [...]}} "
                        "or [[title, sent_id]]")
    if not titles or not all(isinstance(t, str) for t in titles):
        raise UserError(f"{where}: field 'supporting_facts' must name at least one paragraph title")
    return list(dict.fromkeys(titles))


def paragraph_passage(title: str, sentences: list[str]) -> Passage | None:
    text = " ".join(s.strip() for s in sentences if s.strip())
    if not text:
        return None
    return Passage(f"{title}#{hashlib.sha1(text.encode()).hexdigest()[:8]}", title, text)


def parse_row(row: dict, where: str) -> tuple[RagExample, list[Passage]]:
    """One question → its example (labels = its supporting paragraphs) and its ten paragraphs as passages.
    An empty distractor paragraph is dropped; a question none of whose supporting titles has a non-empty
    paragraph in its context is an error."""
    eid = require_id(row, "id" if "id" in row else "_id", where)
    passages = [p for title, sents in context_paragraphs(row, where) if (p := paragraph_passage(title, sents))]
    by_title = {p.title: p.id for p in passages}
    wanted = supporting_titles(row, where)
    gold = [by_title[t] for t in wanted if t in by_title]
    if not gold:
        raise UserError(f"{where}: field 'supporting_facts': none of {wanted} is a non-empty paragraph of 'context'")
    answer = require_str(row, "answer", where)
    return RagExample(eid, require_str(row, "question", where), [answer], gold), passages


def read_questions(dataset: str, data_dir: str | None):
    """Examples per upstream split, each example's paragraph ids, and every distinct paragraph by id:
    (dict[split, list[RagExample]], dict[example id, list[passage id]], dict[passage id, Passage])."""
    splits: dict[str, list[RagExample]] = {}
    paragraphs_of: dict[str, list[str]] = {}
    passages: dict[str, Passage] = {}
    for name, source in SOURCES.items():
        splits[name] = []
        for where, row in upstream_rows(dataset, source, data_dir):
            example, paragraphs = parse_row(row, where)
            splits[name].append(example)
            paragraphs_of[example.id] = [p.id for p in paragraphs]
            for passage in paragraphs:
                passages.setdefault(passage.id, passage)
    return splits, paragraphs_of, passages


def load(options: DatasetOptions) -> RagDataset:
    splits, paragraphs_of, passages = read_questions("hotpotqa", options.data_dir)
    train, dev, test = train_dev_test(splits["train"], splits["validation"], options.limit)
    pooled = dict.fromkeys(pid for ex in (*train, *dev, *test) for pid in paragraphs_of[ex.id])
    corpus = Corpus([passages[pid] for pid in pooled])
    validate_dataset("hotpotqa", {"train": train, "dev": dev, "test": test}, corpus)
    return RagDataset("hotpotqa", train, dev, test, corpus)


def load_wiki(options: DatasetOptions) -> RagDataset:
    from harness.data import load_wikipedia_corpus

    splits, _, passages = read_questions("hotpotqa_wiki", options.data_dir)
    train, dev, test = train_dev_test(splits["train"], splits["validation"], options.limit)
    corpus = load_wikipedia_corpus("hotpotqa_wiki", options.data_dir)
    relabelled = {}
    for name, examples in (("train", train), ("dev", dev), ("test", test)):
        supporting = [[passages[pid].title for pid in ex.gold_passage_ids] for ex in examples]
        relabelled[name] = [dataclasses.replace(ex, gold_passage_ids=_title_labels(corpus, titles))
                            for ex, titles in zip(examples, supporting)]
    validate_dataset("hotpotqa_wiki", relabelled, corpus)
    return RagDataset("hotpotqa_wiki", relabelled["train"], relabelled["dev"], relabelled["test"], corpus)


def _title_labels(corpus, titles: list[str]) -> list[str]:
    """The corpus chunks whose title is one of the supporting titles (none if the corpus lacks them)."""
    return list(dict.fromkeys(pid for title in titles for pid in corpus.ids_with_title(title)))


@hookimpl
def register_datasets(register):
    card = dict(has_context_labels=True, license="CC BY-SA 4.0",
                source=f"hub {HUB_ID} (distractor), or --data-dir (hub rows or hotpot_*_v1*.json)")
    register(
        DatasetSpec(
            name="hotpotqa",
            load=load,
            description="HotPotQA distractor; corpus = the pooled paragraphs of the loaded questions",
            size="90,447 train / 7,405 validation questions; ~10 paragraphs each",
            **card,
        )
    )
    register(
        DatasetSpec(
            name="hotpotqa_wiki",
            load=load_wiki,
            description="HotPotQA distractor over a Wikipedia chunk corpus (MedRAG, as 000_*); labels by title",
            size="90,447 train / 7,405 validation questions; 29.9M passages (MedRAG)",
            **{**card, "source": card["source"] + "; corpus: hub MedRAG/wikipedia or --data-dir corpus"},
        )
    )
