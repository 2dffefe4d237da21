"""`nq_open`: hub rows and the release's NQ-open.*.jsonl over a corpus/ folder of shards; no context labels."""

import pytest

from harness.errors import UserError
from tests.plugins.datasets.conftest import all_examples, load, medrag_rows, write_jsonl, write_parquet

TRAIN = [{"question": "where is the capital of france", "answer": ["Paris"]},
         {"question": "who wrote the rebus novels", "answer": ["Ian Rankin", "Ian James Rankin"]},
         *({"question": f"which river flows north through africa {i}", "answer": ["the Nile", "Nile"]} for i in range(8))]
VALIDATION = [{"question": "what is the capital city of scotland", "answer": ["Edinburgh"]},
              {"question": "when was arthur's magazine first published", "answer": ["1844"]}]


@pytest.fixture
def nq_dir(tmp_path):
    root = tmp_path / "nq"
    write_parquet(root / "nq_open" / "train-00000-of-00001.parquet", TRAIN)  # a hub clone's layout
    write_parquet(root / "nq_open" / "validation-00000-of-00001.parquet", VALIDATION)
    rows = medrag_rows()
    write_jsonl(root / "corpus" / "chunk" / "wiki_000.jsonl", rows[:4])  # a MedRAG clone: chunk/*.jsonl
    write_jsonl(root / "corpus" / "chunk" / "wiki_001.jsonl", rows[4:])
    write_jsonl(root / "corpus" / ".git" / "stray.jsonl", [{"not": "a passage"}])  # hidden folders are skipped
    return root


def test_questions_answers_and_a_sharded_corpus_without_context_labels(nq_dir):
    ds = load("nq_open", nq_dir)
    assert [(ex.id, ex.question, ex.answers) for ex in ds.test] == [
        ("validation-1", "what is the capital city of scotland", ["Edinburgh"]),
        ("validation-2", "when was arthur's magazine first published", ["1844"])]
    by_id = {ex.id: ex for ex in all_examples(ds)}
    assert by_id["train-2"].answers == ["Ian Rankin", "Ian James Rankin"]
    assert len(ds.train) == 9 and len(ds.dev) == 1
    assert not ds.has_context_labels and all(not ex.gold_passage_ids for ex in all_examples(ds))
    assert len(ds.corpus) == 9 and ds.corpus[4].id == "wiki20220301en003_0"  # shards in name order


def test_the_release_files_give_the_same_questions(nq_dir, tmp_path):
    root = tmp_path / "release"
    write_jsonl(root / "NQ-open.train.jsonl", TRAIN)
    write_jsonl(root / "NQ-open.dev.jsonl", VALIDATION)
    (root / "corpus").symlink_to(nq_dir / "corpus")  # one corpus shared by several datasets
    a, b = load("nq_open", nq_dir), load("nq_open", root)
    assert (a.train, a.dev, a.test) == (b.train, b.dev, b.test)
    assert a.corpus.folder == b.corpus.folder  # converted once


@pytest.mark.parametrize("row, message", [
    ({"question": "q", "answer": []}, "field 'answer' must be a non-empty list"),
    ({"question": "q", "answer": [""]}, "field 'answer' must be a non-empty list"),
    ({"answer": ["a"]}, "field 'question'"),
])
def test_a_bad_row_names_file_line_and_field(nq_dir, row, message):
    write_jsonl(nq_dir / "validation.jsonl", [VALIDATION[0], row])
    with pytest.raises(UserError, match=f"validation.jsonl:2: {message}"):
        load("nq_open", nq_dir)
