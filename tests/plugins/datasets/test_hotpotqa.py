"""`hotpotqa` and `hotpotqa_wiki`: hub rows and the original JSON, supporting paragraphs as labels, pooling."""

import copy

import pytest

from harness.builtins.datasets.hotpotqa import paragraph_passage
from harness.errors import UserError
from tests.plugins.datasets.conftest import (
    all_examples,
    load,
    write_json,
    write_jsonl,
    write_parquet,
    write_wiki_corpus,
)

ARTHUR = ("Arthur's Magazine", ["Arthur's Magazine (1844-1846) was an American literary periodical.",
                                " It was edited by T.S. Arthur."])
FIRST = ("First for Women", ["First for Women is a woman's magazine published by Bauer Media Group in the USA.",
                             " The magazine was started in 1989."])
RANKIN = ("Ian Rankin", ["Ian Rankin is a Scottish crime writer.", " He lives in Edinburgh."])
EDINBURGH = ("Edinburgh", ["Edinburgh is the capital city of Scotland."])
DISTRACTOR = ("Radio City (Indian radio station)", ["Radio City is India's first private FM radio station."])
EMPTY = ("Empty page", [])
NILE = ("Nile", ["The Nile is a major north-flowing river in northeastern Africa."])


def hub_row(qid, question, answer, supporting, paragraphs, kind="comparison"):
    """The hub's form: supporting_facts{title[], sent_id[]}, context{title[], sentences[[...]]}."""
    return {"id": qid, "question": question, "answer": answer, "type": kind, "level": "medium",
            "supporting_facts": {"title": [t for t, _ in supporting], "sent_id": [s for _, s in supporting]},
            "context": {"title": [t for t, _ in paragraphs], "sentences": [s for _, s in paragraphs]}}


def original_row(row):
    """The release's form: _id, supporting_facts [[title, sent_id]], context [[title, [sentences]]]."""
    return {"_id": row["id"], "answer": row["answer"], "question": row["question"],
            "supporting_facts": [list(p) for p in zip(row["supporting_facts"]["title"], row["supporting_facts"]["sent_id"])],
            "context": [list(p) for p in zip(row["context"]["title"], row["context"]["sentences"])],
            "type": row["type"], "level": row["level"]}


TRAIN = [
    hub_row("5a7a06935542990198eaf050", "Which magazine was started first Arthur's Magazine or First for Women?",
            "Arthur's Magazine", [("Arthur's Magazine", 0), ("First for Women", 0)], [ARTHUR, DISTRACTOR, FIRST]),
    hub_row("5a8b57f25542995d1e6f1371", "Which city does the author of the Rebus novels live in?", "Edinburgh",
            [("Ian Rankin", 1), ("Edinburgh", 0)], [DISTRACTOR, RANKIN, EDINBURGH, EMPTY], kind="bridge"),
    *(hub_row(f"5a8c7595554299585d9e36{i:02d}", f"Bridge question {i}?", "Scotland", [("Edinburgh", 0)],
              [EDINBURGH, DISTRACTOR]) for i in range(8)),
]
VALIDATION = [
    hub_row("5a8b57f25542995d1e6f1371v", "Where does Ian Rankin live?", "Edinburgh", [("Ian Rankin", 1)],
            [RANKIN, DISTRACTOR]),
    hub_row("5a8b57f25542995d1e6f1372v", "Where does the Nile flow?", "north", [("Nile", 0)], [NILE, DISTRACTOR]),
]
ROWS = {r["id"]: r for r in TRAIN + VALIDATION}


@pytest.fixture
def hotpot_dir(tmp_path):
    root = tmp_path / "hotpot"
    write_jsonl(root / "train.jsonl", TRAIN)
    write_parquet(root / "distractor" / "validation-00000-of-00001.parquet", VALIDATION)
    return root


def pid(paragraph):
    return paragraph_passage(*paragraph).id


def test_supporting_paragraphs_are_the_labels_and_the_corpus_pools_the_paragraphs(hotpot_dir):
    ds = load("hotpotqa", hotpot_dir)
    by_id = {ex.id: ex for ex in all_examples(ds)}
    magazines = by_id["5a7a06935542990198eaf050"]
    assert magazines.question.startswith("Which magazine") and magazines.answers == ["Arthur's Magazine"]
    assert magazines.gold_passage_ids == [pid(ARTHUR), pid(FIRST)]
    assert by_id["5a8b57f25542995d1e6f1371"].gold_passage_ids == [pid(RANKIN), pid(EDINBURGH)]
    # one passage per distinct paragraph, sentences joined; the empty paragraph is dropped
    ids = {ds.corpus[i].id for i in range(len(ds.corpus))}
    assert ids == {pid(p) for p in (ARTHUR, FIRST, RANKIN, EDINBURGH, DISTRACTOR, NILE)} and len(ds.corpus) == 6
    rankin = ds.corpus[ds.corpus.row_of(pid(RANKIN))]
    assert rankin.title == "Ian Rankin" and rankin.text == "Ian Rankin is a Scottish crime writer. He lives in Edinburgh."
    assert [ex.id for ex in ds.test] == [r["id"] for r in VALIDATION] and len(ds.dev) == 1


def test_the_original_release_json_gives_the_same_dataset(hotpot_dir, tmp_path):
    root = tmp_path / "original"
    write_json(root / "hotpot_train_v1.1.json", [original_row(r) for r in TRAIN])
    write_json(root / "hotpot_dev_distractor_v1.json", [original_row(r) for r in VALIDATION])
    a, b = load("hotpotqa", hotpot_dir), load("hotpotqa", root)
    assert (a.train, a.dev, a.test) == (b.train, b.dev, b.test)
    assert a.corpus.fingerprint() == b.corpus.fingerprint()


def test_limit_shrinks_the_pooled_corpus_with_the_questions(hotpot_dir):
    ds = load("hotpotqa", hotpot_dir, limit=1)
    assert (len(ds.train), len(ds.dev), len(ds.test)) == (1, 1, 1)
    pooled = {ds.corpus[i].id for i in range(len(ds.corpus))}
    kept = [ROWS[ex.id]["context"] for ex in all_examples(ds)]
    assert pooled == {pid(p) for c in kept for p in zip(c["title"], c["sentences"]) if p[1]}
    assert pid(NILE) not in pooled


def test_over_a_wikipedia_corpus_the_labels_are_the_chunks_of_the_supporting_titles(hotpot_dir):
    write_wiki_corpus(hotpot_dir)
    ds = load("hotpotqa_wiki", hotpot_dir)
    by_id = {ex.id: ex for ex in all_examples(ds)}
    assert by_id["5a7a06935542990198eaf050"].gold_passage_ids == ["wiki20220301en005_0", "wiki20220301en006_0"]
    assert by_id["5a8b57f25542995d1e6f1371"].gold_passage_ids == ["wiki20220301en003_0", "wiki20220301en004_0"]
    assert len(ds.corpus) == 9 and ds.corpus.row_of("wiki20220301en004_0") == 5


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("question"), "field 'question'"),
    (lambda r: r.update(answer=""), "field 'answer'"),
    (lambda r: r.update(supporting_facts={"title": ["Not in context"], "sent_id": [0]}), "field 'supporting_facts'"),
    (lambda r: r.update(context={"title": ["A", "B"], "sentences": [["x"]]}), "field 'context'"),
])
def test_a_bad_row_names_file_line_and_field(hotpot_dir, change, message):
    rows = copy.deepcopy(TRAIN)
    change(rows[1])
    write_jsonl(hotpot_dir / "train.jsonl", rows)
    with pytest.raises(UserError, match=f"train.jsonl:2: {message}"):
        load("hotpotqa", hotpot_dir)


def test_hotpotqa_wiki_without_a_corpus_says_how_to_give_one(hotpot_dir):
    with pytest.raises(UserError, match=r"dataset 'hotpotqa_wiki': no corpus in .*corpus\.jsonl"):
        load("hotpotqa_wiki", hotpot_dir)
