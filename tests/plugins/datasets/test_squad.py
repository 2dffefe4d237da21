"""`squad`: hub rows (jsonl + parquet) and the official JSON, answer-span labels, splits, bad rows, the CLI."""

import json
import os

import pytest

from harness.builtins.datasets.squad import context_id
from harness.errors import UserError
from harness.store.db import Store
from tests.conftest import run_cli
from tests.plugins.datasets.conftest import all_examples, load, write_json, write_jsonl, write_parquet

FILLER = [f"w{i}" for i in range(130)]
ND = "University_of_Notre_Dame"
# the answer's word sits at index 100: the second 100-word chunk; "(1879)" starts one character before "1879"
LONG = " ".join(FILLER[:100] + ["(1879)", "is", "when", "the", "Main", "Building", "burned."] + FILLER[100:])
# "Saint Bernadette Soubirous" covers words 98-100: it crosses from chunk 0 into chunk 1
CROSSING = " ".join(FILLER[:98] + "Saint Bernadette Soubirous appeared at Lourdes in 1858.".split() + FILLER[:20])
SHORT = "Atop the Main Building's gold dome is a golden statue of the Virgin Mary."
SB50 = "Super Bowl 50 was an American football game. The Denver Broncos defeated the Carolina Panthers 24-10."


def row(qid, title, context, question, *answers):
    return {"id": qid, "title": title, "context": context, "question": question,
            "answers": {"text": list(answers), "answer_start": [context.index(a) for a in answers]}}


TRAIN = [
    row("5733be284776f41900661182", ND, LONG, "When did the Main Building burn?", "1879"),
    row("5733be284776f4190066117f", ND, CROSSING, "To whom did the Virgin Mary appear in 1858?", "Saint Bernadette Soubirous"),
    row("5733be284776f41900661181", ND, SHORT, "What is atop the Main Building?", "a golden statue of the Virgin Mary"),
    *(row(f"5733be284776f419006611{i:02d}", ND, SHORT, f"Question {i} about the dome?", "gold dome") for i in range(7)),
]
VALIDATION = [
    row("56be4db0acb8001400a502ec", "Super_Bowl_50", SB50, "Which team won Super Bowl 50?",
        "Denver Broncos", "Denver Broncos", "The Denver Broncos"),
    row("56be4db0acb8001400a502ed", "Super_Bowl_50", SB50, "Who lost Super Bowl 50?", "Carolina Panthers"),
]


def official(rows):
    """SQuAD's release form: data[].paragraphs[].qas[] with answers as [{text, answer_start}]."""
    articles = {}
    for r in rows:
        paragraphs = articles.setdefault(r["title"], {})
        qas = paragraphs.setdefault(r["context"], [])
        answers = [{"text": t, "answer_start": s} for t, s in zip(r["answers"]["text"], r["answers"]["answer_start"])]
        qas.append({"answers": answers, "question": r["question"], "id": r["id"]})
    return {"version": "1.1", "data": [
        {"title": title, "paragraphs": [{"context": c, "qas": qas} for c, qas in paragraphs.items()]}
        for title, paragraphs in articles.items()]}


@pytest.fixture
def squad_dir(tmp_path):
    root = tmp_path / "squad"
    write_jsonl(root / "train.jsonl", TRAIN)
    write_parquet(root / "plain_text" / "validation-00000-of-00001.parquet", VALIDATION)  # a hub clone's layout
    return root


def test_hub_rows_give_questions_answers_span_labels_and_the_chunked_contexts(squad_dir):
    ds = load("squad", squad_dir)
    by_id = {ex.id: ex for ex in all_examples(ds)}
    assert len(by_id) == 12
    long_id, crossing_id, short_id = (context_id(ND, c) for c in (LONG, CROSSING, SHORT))
    burned = by_id["5733be284776f41900661182"]
    assert burned.question == "When did the Main Building burn?" and burned.answers == ["1879"]
    assert burned.gold_passage_ids == [f"{long_id}#1"]
    assert by_id["5733be284776f4190066117f"].gold_passage_ids == [f"{crossing_id}#0", f"{crossing_id}#1"]
    assert by_id["5733be284776f41900661181"].gold_passage_ids == [f"{short_id}#0"]
    won = by_id["56be4db0acb8001400a502ec"]
    assert won.answers == ["Denver Broncos", "The Denver Broncos"]
    assert won.gold_passage_ids == [f"{context_id('Super_Bowl_50', SB50)}#0"]
    # the knowledge base: every distinct context of both splits, chunked to ≤100 words, titles kept
    ids = [ds.corpus[i].id for i in range(len(ds.corpus))]
    assert ids == [f"{long_id}#0", f"{long_id}#1", f"{crossing_id}#0", f"{crossing_id}#1", f"{short_id}#0",
                   f"{context_id('Super_Bowl_50', SB50)}#0"]
    assert all(len(ds.corpus[i].text.split()) <= 100 for i in range(len(ds.corpus)))
    assert ds.corpus[1].title == ND and ds.corpus[1].text.startswith("(1879) is when")
    assert ds.has_context_labels


def test_official_json_gives_the_same_dataset(squad_dir, tmp_path):
    official_dir = tmp_path / "official"
    write_json(official_dir / "train-v1.1.json", official(TRAIN))
    write_json(official_dir / "dev-v1.1.json", official(VALIDATION))
    a, b = load("squad", squad_dir), load("squad", official_dir)
    for split in ("train", "dev", "test"):
        assert a.split(split) == b.split(split)
    assert a.corpus.fingerprint() == b.corpus.fingerprint()


def test_test_is_upstream_validation_dev_is_a_hashed_slice_of_train_and_limit_caps_each(squad_dir):
    ds = load("squad", squad_dir)
    assert [ex.id for ex in ds.test] == [r["id"] for r in VALIDATION]
    assert len(ds.dev) == 1 and len(ds.train) == 9
    assert {ex.id for ex in ds.train} | {ex.id for ex in ds.dev} == {r["id"] for r in TRAIN}
    assert load("squad", squad_dir).dev == ds.dev  # deterministic
    small = load("squad", squad_dir, limit=2)
    assert (len(small.train), len(small.dev), len(small.test)) == (2, 1, 2)
    assert len(small.corpus) == len(ds.corpus)  # the knowledge base stays whole


@pytest.mark.parametrize("change, message", [
    (lambda r: r.pop("question"), "field 'question'"),
    (lambda r: r.update(answers={"text": [], "answer_start": []}), "field 'answers.text'"),
    (lambda r: r.pop("answers"), "field 'answers'"),
    (lambda r: r["answers"].update(answer_start=[3]), "field 'answers.answer_start' (3) does not point at"),
    (lambda r: r.update(context="   "), "field 'context'"),
])
def test_a_bad_row_names_file_line_and_field(squad_dir, change, message):
    rows = json.loads(json.dumps(TRAIN))
    change(rows[2])
    write_jsonl(squad_dir / "train.jsonl", rows)
    with pytest.raises(UserError) as err:
        load("squad", squad_dir)
    assert f"train.jsonl:3: {message}" in str(err.value)


def test_a_missing_split_lists_the_file_names_looked_for(squad_dir):
    (squad_dir / "train.jsonl").unlink()
    with pytest.raises(UserError, match=r"no 'train' split in .*train\.jsonl.*train-v1\.1\.json"):
        load("squad", squad_dir)


def test_runs_end_to_end_through_the_cli_with_an_approximate_index(squad_dir, capsys):
    args = ["run", "--plugin", "no_ft", "--dataset", "squad", "--data-dir", str(squad_dir), "--index", "hnsw",
            "--embedder", "tiny-embedder", "--generator", "tiny-llama", "--max-new-tokens", "4"]
    assert run_cli(args) == 0
    [run] = Store(os.environ["HARNESS_DB"]).query("SELECT * FROM runs")
    assert run["status"] == "finished" and json.loads(run["config"])["index"] == "hnsw"
    metrics = Store(os.environ["HARNESS_DB"]).run_metrics(run["id"])
    assert metrics["test"]["n"] == 2 and "recall@5" in metrics["test"]


def test_an_unknown_index_kind_is_refused_before_any_work():
    from harness.config import RunConfig

    with pytest.raises(UserError, match="--index must be one of flat, hnsw, ivfpq, got 'ivf'"):
        RunConfig(index="ivf")
