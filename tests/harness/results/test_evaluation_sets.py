"""Issue 22 §1: runs scored on different questions never rank together.

The scenario as a new user met it: a full run (test only), then two quick `--limit` runs (jsa_rag and
rag_token), then `--dataset local` runs on two different data folders; the terminal (`--format json`) and
the dashboard must show the same rows, each with its `n`, ranked only within its evaluation set.
"""

import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest

from harness.config import data_digest, evaluation_set_id
from harness.store.db import Store
from harness.store.migrations import m001_initial, m002_answer_match_definition, m003_run_folders, migrate
from tests.conftest import TINY_CORPUS, TINY_QUESTIONS, run_cli, tiny_run_args


def write_dataset(root: Path, flip_answer: bool = False) -> Path:
    """A local dataset with 10 test questions (the tiny ones), 4 dev, 6 train; `flip_answer` changes one
    test answer: the same ids, other contents."""
    root.mkdir(parents=True)
    with (root / "corpus.jsonl").open("w") as fh:
        for i, (title, text) in enumerate(TINY_CORPUS):
            fh.write(json.dumps({"id": f"p{i}", "title": title, "text": text}) + "\n")
    splits = {"train": TINY_QUESTIONS[:6], "dev": TINY_QUESTIONS[6:], "test": TINY_QUESTIONS}
    for split, rows in splits.items():
        with (root / f"{split}.jsonl").open("w") as fh:
            for i, (question, answer, gold) in enumerate(rows):
                if flip_answer and split == "test" and i == 0:
                    answer = "Lyon"
                fh.write(json.dumps({"id": f"{split}-{i}", "question": question, "answers": [answer],
                                     "gold_passage_ids": [f"p{gold}"]}) + "\n")
    return root


def board(capsys, *args) -> list[dict]:
    capsys.readouterr()
    assert run_cli(["leaderboard", "--format", "json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def run(data: Path, strategy: str, *extra: str) -> str:
    assert run_cli(tiny_run_args(data, strategy, *extra)) == 0
    return Store(os.environ["HARNESS_DB"]).query("SELECT id FROM runs ORDER BY started_at DESC LIMIT 1")[0]["id"]


@pytest.fixture
def scenario(tmp_path, capsys):
    data_a = write_dataset(tmp_path / "data-a")
    data_b = write_dataset(tmp_path / "data-b", flip_answer=True)
    ids = {
        "full": run(data_a, "jsa_rag", "--eval-splits", "test"),  # `make run`: test only, every question
        "quick_jsa": run(data_a, "jsa_rag", "--limit", "4"),  # the README's quick run: dev and test, 4 each
        "quick_token": run(data_a, "rag_token", "--limit", "4"),
        "local_a": run(data_a, "no_ft"),
        "local_b": run(data_b, "no_ft"),
    }
    return ids, board(capsys)


def test_a_quick_run_never_displaces_or_ties_with_a_full_run(scenario):
    ids, rows = scenario
    by_run = {r["id"]: r for r in rows}
    assert {ids["full"], ids["quick_jsa"], ids["quick_token"], ids["local_a"], ids["local_b"]} == set(by_run)
    full, quick = by_run[ids["full"]], by_run[ids["quick_jsa"]]
    assert (full["strategy"], full["n"]) == ("jsa_rag", 10)  # the full run keeps its row: no dev score needed
    assert (quick["strategy"], quick["n"]) == ("jsa_rag", 4)
    assert full["eval_set"] != quick["eval_set"]
    token = by_run[ids["quick_token"]]
    assert token["eval_set"] == quick["eval_set"] and token["n"] == 4  # rag_token is compared with the quick run only
    assert {full["vs_best"], by_run[ids["local_a"]]["vs_best"]} & {"★ best"}  # the full set has its own best
    best_of_quick = [r for r in rows if r["eval_set"] == quick["eval_set"] and r["vs_best"] == "★ best"]
    assert len(best_of_quick) == 1 and best_of_quick[0]["id"] in (ids["quick_jsa"], ids["quick_token"])


def test_two_data_folders_are_two_rows_and_every_row_has_its_n(scenario):
    ids, rows = scenario
    by_run = {r["id"]: r for r in rows}
    a, b = by_run[ids["local_a"]], by_run[ids["local_b"]]
    assert a["strategy"] == b["strategy"] == "no_ft" and a["eval_set"] != b["eval_set"]
    assert a["vs_best"] == "★ best" or a["eval_set"] == by_run[ids["full"]]["eval_set"]
    assert b["vs_best"] == "★ best"  # alone in its set
    assert a["eval_set"] == by_run[ids["full"]]["eval_set"]  # same data, same questions: one set
    assert all(isinstance(r["n"], int) and r["n"] > 0 for r in rows)
    sets = [r["eval_set"] for r in rows]
    assert sets == sorted(sets, key=lambda s: min(i for i, t in enumerate(sets) if t == s))  # each set contiguous


def test_the_dashboard_ranks_the_same_rows(scenario):
    from harness.dashboard import data

    ids, rows = scenario
    frame = data.leaderboard(os.environ["HARNESS_DB"])
    shown = [(r["id"], r["eval_set"], int(r["n"]), r["vs_best"]) for r in frame.to_dict("records")]
    assert shown == [(r["id"], r["eval_set"], r["n"], r["vs_best"]) for r in rows]


def test_the_set_id_names_what_was_scored(tmp_path):
    data = write_dataset(tmp_path / "d")
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    config = {"dataset": "local", "limit": None, "corpus_limit": None}
    same = evaluation_set_id(config, "test", ["a", "b"], data_digest(str(data)))
    assert same == evaluation_set_id(config, "test", ["b", "a"], data_digest(str(copy)))  # a copy elsewhere: same
    assert same != evaluation_set_id(config, "test", ["a"], data_digest(str(data)))
    assert same != evaluation_set_id({**config, "corpus_limit": 5}, "test", ["a", "b"], data_digest(str(data)))
    assert same != evaluation_set_id(config, "dev", ["a", "b"], data_digest(str(data)))
    (copy / "test.jsonl").write_text("changed\n")
    assert same != evaluation_set_id(config, "test", ["a", "b"], data_digest(str(copy)))
    assert data_digest(None) is None and data_digest(str(tmp_path / "gone")).startswith("missing:")


def test_a_large_data_file_is_hashed_once_until_it_changes(tmp_path, monkeypatch):
    """The digest of a file over 1 MiB is remembered by path, size, inode and mtime: a run start does not read
    a large data folder again. Proven by editing a byte behind the cache's back (same size, same mtime): the
    remembered digest stands; a new mtime (any real edit) hashes it again; a file edited seconds ago is never
    remembered."""
    import os

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "data"
    data.mkdir()
    big = data / "corpus.jsonl"
    big.write_bytes(b"a" * (2 << 20))
    os.utime(big, ns=(10**18, 10**18))  # long ago
    first = data_digest(str(data))
    assert (tmp_path / "cache" / "file-digests.json").is_file()
    with big.open("r+b") as handle:
        handle.seek(1 << 20)
        handle.write(b"b")
    os.utime(big, ns=(10**18, 10**18))
    assert data_digest(str(data)) == first  # remembered, not read
    os.utime(big, ns=(10**18 + 1, 10**18 + 1))
    assert data_digest(str(data)) != first  # a new mtime: hashed again
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "corpus.jsonl").write_bytes(b"a" * (2 << 20))
    before = (tmp_path / "cache" / "file-digests.json").read_text()
    data_digest(str(fresh))
    assert (tmp_path / "cache" / "file-digests.json").read_text() == before  # just written: not remembered


def test_the_migration_gives_stored_runs_their_sets(tmp_path):
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    con.execute("CREATE TABLE _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
    for migration in (m001_initial, m002_answer_match_definition, m003_run_folders):
        migration(con)
        con.execute("INSERT INTO _migrations VALUES (?, now())", [migration.__name__])
    for run_id, limit, examples in (("full", None, 10), ("quick", 4, 4), ("metrics_only", None, 0)):
        config = json.dumps({"dataset": "synthbio", "limit": limit, "corpus_limit": None, "data_dir": None})
        con.execute("INSERT INTO runs (id, run_key, config, strategy, dataset, embedder, generator, seed, status, "
                    "started_at) VALUES (?, 'k', ?, 'no_ft', 'synthbio', 'e', 'g', 0, 'finished', now())",
                    [run_id, config])
        con.execute("INSERT INTO metrics VALUES (?, 'test', 'n', ?), (?, 'test', 'em', 50)",
                    [run_id, examples or 7, run_id])
        for i in range(examples):
            con.execute("INSERT INTO predictions VALUES (?, 'test', ?, 'q', 'a', '[]', '[]', '[]', 1, 1, NULL, 1)",
                        [run_id, f"test-{i}"])
    assert migrate(con)[-1].startswith("m004")
    sets = dict(con.execute("SELECT run_id, n FROM evaluation_sets WHERE split = 'test'").fetchall())
    assert sets == {"full": 10, "quick": 4, "metrics_only": 7}
    assert len({row[0] for row in con.execute("SELECT id FROM evaluation_sets").fetchall()}) == 3
    con.close()
