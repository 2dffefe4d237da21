"""`triviaqa` / `triviaqa_rc`: hub rows (every nested column) and the release's {"Data": [...]} JSON."""

import pyarrow as pa
import pytest

from harness.errors import UserError
from tests.plugins.datasets.conftest import (
    all_examples,
    load,
    write_json,
    write_jsonl,
    write_parquet,
    write_wiki_corpus,
)

STRINGS = pa.list_(pa.string())
SCHEMA = pa.schema([  # mandarjoshi/trivia_qa, *.nocontext configs
    ("question", pa.string()), ("question_id", pa.string()), ("question_source", pa.string()),
    ("entity_pages", pa.struct([("doc_source", STRINGS), ("filename", STRINGS), ("title", STRINGS),
                                ("wiki_context", STRINGS)])),
    ("search_results", pa.struct([("description", STRINGS), ("filename", STRINGS), ("rank", pa.list_(pa.int32())),
                                  ("title", STRINGS), ("url", STRINGS), ("search_context", STRINGS)])),
    ("answer", pa.struct([("aliases", STRINGS), ("normalized_aliases", STRINGS), ("matched_wiki_entity_name", pa.string()),
                          ("normalized_matched_wiki_entity_name", pa.string()), ("normalized_value", pa.string()),
                          ("type", pa.string()), ("value", pa.string())])),
])


def hub_row(qid, question, value, aliases):
    return {"question": question, "question_id": qid, "question_source": "http://www.triviacountry.com/",
            "entity_pages": {"doc_source": [], "filename": [], "title": [], "wiki_context": []},
            "search_results": {"description": [], "filename": [], "rank": [], "title": [], "url": [],
                               "search_context": []},
            "answer": {"aliases": aliases, "normalized_aliases": [a.lower() for a in aliases],
                       "matched_wiki_entity_name": "", "normalized_matched_wiki_entity_name": "",
                       "normalized_value": value.lower(), "type": "WikipediaEntity", "value": value}}


def release_item(row):
    a = row["answer"]
    return {"Question": row["question"], "QuestionId": row["question_id"], "QuestionSource": row["question_source"],
            "Answer": {"Aliases": a["aliases"], "NormalizedAliases": a["normalized_aliases"], "Value": a["value"],
                       "NormalizedValue": a["normalized_value"], "Type": a["type"]},
            "EntityPages": [], "SearchResults": []}


TRAIN = [hub_row("tc_1", "Which Scottish crime writer created Inspector Rebus?", "Ian Rankin", ["Rankin", "Ian Rankin"]),
         *(hub_row(f"tc_{i}", f"Which city is the capital of France ({i})?", "Paris", ["Paris, France"]) for i in range(2, 11))]
VALIDATION = [hub_row("sfq_1", "Which river flows north through Egypt?", "Nile", ["River Nile", "The Nile"]),
              hub_row("sfq_2", "What is the capital of Scotland?", "Edinburgh", [])]


@pytest.fixture
def trivia_dir(tmp_path):
    root = tmp_path / "trivia"
    write_parquet(root / "unfiltered.nocontext" / "train-00000-of-00001.parquet", TRAIN, SCHEMA)
    write_parquet(root / "unfiltered.nocontext" / "validation-00000-of-00001.parquet", VALIDATION, SCHEMA)
    write_wiki_corpus(root)
    return root


def test_questions_value_and_aliases_as_answers_and_no_context_labels(trivia_dir):
    ds = load("triviaqa", trivia_dir)
    assert [(ex.id, ex.question, ex.answers) for ex in ds.test] == [
        ("sfq_1", "Which river flows north through Egypt?", ["Nile", "River Nile", "The Nile"]),
        ("sfq_2", "What is the capital of Scotland?", ["Edinburgh"])]
    assert {ex.id: ex.answers for ex in all_examples(ds)}["tc_1"] == ["Ian Rankin", "Rankin"]
    assert (len(ds.train), len(ds.dev)) == (9, 1) and not ds.has_context_labels
    assert len(ds.corpus) == 9


def test_the_release_json_gives_the_same_questions_and_rc_keeps_a_repeated_id_once(trivia_dir, tmp_path):
    root = tmp_path / "release"
    write_json(root / "unfiltered-web-train.json", {"Data": [release_item(r) for r in TRAIN], "Version": 1.0})
    write_json(root / "unfiltered-web-dev.json", {"Data": [release_item(r) for r in VALIDATION], "Version": 1.0})
    write_wiki_corpus(root)
    a, b = load("triviaqa", trivia_dir), load("triviaqa", root)
    assert (a.train, a.dev, a.test) == (b.train, b.dev, b.test)
    rc = tmp_path / "rc"  # rc pools the web and Wikipedia files: a question may be in both
    write_json(rc / "qa" / "web-train.json", {"Data": [release_item(r) for r in TRAIN]})
    write_json(rc / "qa" / "wikipedia-train.json", {"Data": [release_item(TRAIN[0])]})
    write_json(rc / "qa" / "web-dev.json", {"Data": [release_item(r) for r in VALIDATION]})
    write_json(rc / "qa" / "verified-web-dev.json", {"Data": [release_item(VALIDATION[0])]})  # not a split file
    write_wiki_corpus(rc)
    c = load("triviaqa_rc", rc)
    assert (c.train, c.dev, c.test) == (a.train, a.dev, a.test)


@pytest.mark.parametrize("change, message", [
    (lambda r: r["answer"].update(value="", aliases=[]), "field 'answer.value/answer.aliases' must be a non-empty"),
    (lambda r: r.pop("answer"), "field 'answer' must be an object"),
    (lambda r: r.update(question=None), "field 'question'"),
    (lambda r: r.update(question_id=""), "field 'question_id'"),
])
def test_a_bad_row_names_file_line_and_field(trivia_dir, change, message):
    rows = [hub_row("a", "q?", "x", []), hub_row("b", "r?", "y", [])]
    change(rows[1])
    write_jsonl(trivia_dir / "validation.jsonl", rows)
    with pytest.raises(UserError, match=f"validation.jsonl:2: {message}"):
        load("triviaqa", trivia_dir)


def test_one_id_for_two_different_questions_is_an_error(trivia_dir):
    write_jsonl(trivia_dir / "validation.jsonl", [hub_row("a", "q?", "x", []), hub_row("a", "other?", "y", [])])
    with pytest.raises(UserError, match="validation.jsonl:2: field 'question_id': 'a' already names another question"):
        load("triviaqa", trivia_dir)
