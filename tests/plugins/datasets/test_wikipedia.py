"""`wikipedia`: your questions over a large corpus (DPR's psgs_w100.tsv form here), and its checks."""

import json

import pytest

from harness.data.corpus import ArrowCorpus
from harness.errors import UserError
from tests.plugins.datasets.conftest import WIKI_CHUNKS, load, write_jsonl, write_tsv


@pytest.fixture
def wiki_dir(tmp_path):
    root = tmp_path / "wiki"
    # DPR's psgs_w100.tsv: a header "id text title", integer ids
    write_tsv(root / "corpus.tsv", [{"id": n, "text": text, "title": title} for n, (_, title, text) in enumerate(WIKI_CHUNKS, 1)])
    questions = {
        "train": [{"id": "q1", "question": "What is the capital of France?", "answers": ["Paris"], "gold_passage_ids": ["1"]},
                  {"id": "q2", "question": "Who writes Rebus novels?", "answers": ["Ian Rankin"], "gold_passage_ids": ["5"]}],
        "dev": [{"id": "q3", "question": "What is the capital of Scotland?", "answers": "Edinburgh", "gold_passage_ids": ["6"]}],
        "test": [{"id": "q4", "question": "Where does the Nile flow?", "answers": ["north"]}],
    }
    for split, rows in questions.items():
        write_jsonl(root / f"{split}.jsonl", rows)
    return root


def test_local_questions_over_a_memory_mapped_corpus(wiki_dir):
    ds = load("wikipedia", wiki_dir)
    assert isinstance(ds.corpus, ArrowCorpus) and len(ds.corpus) == len(WIKI_CHUNKS)
    assert ds.corpus[ds.corpus.row_of("5")].title == "Ian Rankin"
    assert [ex.gold_passage_ids for ex in ds.train] == [["1"], ["5"]] and ds.dev[0].answers == ["Edinburgh"]
    assert ds.test[0].gold_passage_ids == []


def test_labels_pointing_at_missing_passages_give_the_count_and_the_first_few(wiki_dir):
    rows = [{"id": f"q{i}", "question": "?", "answers": ["a"], "gold_passage_ids": [f"missing{i}"]} for i in range(5)]
    write_jsonl(wiki_dir / "train.jsonl", rows)
    with pytest.raises(UserError, match=r"train: 5 context label\(s\) point at passage ids not in the corpus "
                                        r"\(first: q0→missing0, q1→missing1, q2→missing2\)"):
        load("wikipedia", wiki_dir)


def test_without_a_data_dir_it_says_what_to_give(tmp_path):
    with pytest.raises(UserError, match="dataset 'wikipedia' is your questions over a large corpus: --data-dir DIR"):
        load("wikipedia", None)


@pytest.mark.parametrize("row, message", [
    ({"id": "wiki_9", "title": "Empty", "text": "  "}, "corpus.jsonl:3: field 'text' must be a non-empty string"),
    ({"id": "", "title": "No id", "text": "x"}, "corpus.jsonl:3: field 'id' must be a non-empty string"),
    ({"id": "wiki_9", "title": "No text"}, "corpus.jsonl:3: no passage text"),
    ({"id": "wiki_1", "title": "Again", "text": "x"}, "corpus.jsonl:3: field 'id': duplicate passage id 'wiki_1' "
                                                       r"\(first at .*corpus.jsonl:1\)"),
])
def test_a_bad_corpus_row_names_file_line_and_field(wiki_dir, row, message):
    (wiki_dir / "corpus.tsv").unlink()
    rows = [{"id": "wiki_1", "title": "A", "text": "a"}, {"id": "wiki_2", "title": "B", "text": "b"}, row]
    (wiki_dir / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for split in ("train", "dev", "test"):
        write_jsonl(wiki_dir / f"{split}.jsonl", [{"id": split, "question": "?", "answers": ["a"]}])
    with pytest.raises(UserError, match=message):
        load("wikipedia", wiki_dir)
