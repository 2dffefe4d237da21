"""`popqa`: the hub's test.tsv (JSON-encoded answers) over MedRAG-format chunks; labels from s_wiki_title."""

import json

import pytest

from harness.data.splits import stable_split
from harness.errors import UserError
from tests.plugins.datasets.conftest import all_examples, load, write_jsonl, write_parquet, write_tsv, write_wiki_corpus


def popqa_row(qid, subj, prop, obj, question, answers, s_wiki_title, o_wiki_title):
    """Every column of akariasai/PopQA, with s_aliases, o_aliases and possible_answers JSON-encoded as upstream."""
    return {"id": qid, "subj": subj, "prop": prop, "obj": obj, "subj_id": qid % 9973, "prop_id": 22,
            "obj_id": qid % 7919, "s_aliases": json.dumps([subj.upper()]), "o_aliases": json.dumps(answers[1:]),
            "s_uri": f"http://www.wikidata.org/entity/Q{qid}", "o_uri": "http://www.wikidata.org/entity/Q82955",
            "s_wiki_title": s_wiki_title, "o_wiki_title": o_wiki_title, "s_pop": 142, "o_pop": 25692,
            "question": question, "possible_answers": json.dumps(answers)}


ROWS = [
    popqa_row(4222362, "George Rankin", "occupation", "politician", "What is George Rankin's occupation?",
              ["politician", "political leader", "political figure"], "George Rankin", "Politician"),
    popqa_row(1393291, "Ian Rankin", "occupation", "novelist", "What is Ian Rankin's occupation?",
              ["novelist", "writer", "author"], "Ian_Rankin", "Novelist"),  # underscores, as some titles have
    popqa_row(6915, "France", "capital", "Paris", "What is the capital of France?", ["Paris"], "france", "Paris"),
    popqa_row(2055815, "Edinburgh", "country", "Scotland", "In what country is Edinburgh?",
              ["Scotland", "United Kingdom"], "Edinburgh", "Scotland"),
    popqa_row(955, "Nowhere Man", "genre", "rock", "What genre is Nowhere Man?", ["rock", "rock music"],
              "Nowhere Man (song)", "Rock music"),  # no chunk of this article in the corpus: no labels
    *(popqa_row(7000 + i, "Paris", "country", "France", f"In what country is Paris ({i})?", ["France"], "Paris", "France")
      for i in range(5)),
]


@pytest.fixture
def popqa_dir(tmp_path):
    root = tmp_path / "popqa"
    write_tsv(root / "test.tsv", ROWS)
    write_wiki_corpus(root)
    return root


def test_questions_answers_and_labels_from_the_subject_title(popqa_dir):
    ds = load("popqa", popqa_dir)
    by_id = {ex.id: ex for ex in all_examples(ds)}
    assert len(by_id) == 10
    rankin = by_id["4222362"]
    assert rankin.question == "What is George Rankin's occupation?"
    assert rankin.answers == ["politician", "political leader", "political figure"]
    assert rankin.gold_passage_ids == ["wiki20220301en002_0"]
    assert by_id["1393291"].gold_passage_ids == ["wiki20220301en003_0"]  # Ian_Rankin = Ian Rankin
    assert by_id["6915"].gold_passage_ids == ["wiki20220301en001_0"]  # case folded
    assert by_id["7000"].gold_passage_ids == ["wiki20220301en000_0", "wiki20220301en000_1"]  # every chunk
    assert by_id["955"].gold_passage_ids == []
    assert ds.corpus.row_of("wiki20220301en007_0") == 8 and ds.corpus[2].title == "France"
    assert ds.corpus[2].text == "France is a country in Western Europe whose capital is Paris."  # `content`


def test_one_upstream_split_is_divided_by_id_hash_whatever_the_file_format(popqa_dir, tmp_path):
    ds = load("popqa", popqa_dir)
    assert (len(ds.train), len(ds.dev), len(ds.test)) == (5, 2, 3)
    ids = [str(r["id"]) for r in ROWS]
    assert [ex.id for ex in ds.test] == [ex.id for ex in stable_split([ex for ex in all_examples(ds)])[2]]
    assert sorted(ex.id for ex in all_examples(ds)) == sorted(ids)
    other = tmp_path / "as_parquet"
    write_parquet(other / "test-00000-of-00001.parquet", list(reversed(ROWS)))
    write_wiki_corpus(other, "corpus.parquet")
    again = load("popqa", other)
    assert (again.train, again.dev, again.test) == (ds.train, ds.dev, ds.test)
    assert again.corpus.fingerprint() == ds.corpus.fingerprint()
    assert [len(s) for s in (load("popqa", popqa_dir, limit=1).split(n) for n in ("train", "dev", "test"))] == [1, 1, 1]


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(question=""), "field 'question'"),
    (lambda r: r.update(possible_answers="not json"), "field 'possible_answers' is not a JSON list"),
    (lambda r: r.update(possible_answers="[]"), "field 'possible_answers' must be a non-empty list"),
    (lambda r: r.pop("id"), "field 'id'"),
])
def test_a_bad_row_names_file_line_and_field(popqa_dir, change, message):
    rows = [dict(r) for r in ROWS]
    change(rows[3])
    write_jsonl(popqa_dir / "test.jsonl", rows)  # test.jsonl is looked for before test.tsv
    with pytest.raises(UserError, match=f"test.jsonl:4: {message}"):
        load("popqa", popqa_dir)


def test_the_original_release_name_is_found(popqa_dir):
    (popqa_dir / "test.tsv").rename(popqa_dir / "popQA.tsv")
    assert len(all_examples(load("popqa", popqa_dir))) == 10
