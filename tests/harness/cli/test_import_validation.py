"""`harness import` validates everything it stores: a crafted folder whose digests are correct is stored as it
says, or refused in one line naming the folder, the file and the problem, with nothing stored (exit 2)."""

import json
import math

import pytest

from harness.store.db import Store
from tests.conftest import run_cli
from tests.harness.cli.crafted import RUN_ID, edit_json, edit_lines, valid_folder


def stored_rows(db) -> dict:
    store = Store(str(db))
    return {t: store.query(f"SELECT count(*) AS n FROM {t}")[0]["n"]
            for t in ("runs", "metrics", "predictions", "train_log", "artifacts")}


def drop_strategy(config):
    del config["strategy"]


def duplicate_prediction(rows):
    return [*rows, rows[0]]


CRAFTED = [
    ("metrics.json", lambda f: edit_json(f, "metrics.json", lambda m: m.append(["dev", "loss", math.nan])),
     "finite number"),
    ("metrics.json", lambda f: edit_json(f, "metrics.json", lambda m: m.append(["dev", "loss", "high"])),
     "valid number"),
    ("metrics.json", lambda f: edit_json(f, "metrics.json", lambda m: m.append(["dev", "loss"])), "field '[4][2]'"),
    ("metrics.json", lambda f: edit_json(f, "metrics.json", lambda m: m.append(["dev", "em", 1.0])), "twice"),
    ("meta.json", lambda f: edit_json(f, "meta.json", lambda m: m.update(run_id="../../x' OR 1=1 --")), "run id"),
    ("predictions.jsonl", lambda f: edit_lines(f, "predictions.jsonl", duplicate_prediction), "duplicate"),
    ("config.json", lambda f: edit_json(f, "config.json", drop_strategy), "field 'strategy' is missing"),
    ("status.json", lambda f: (f / "status.json").write_text(json.dumps(
        {**json.loads((f / "status.json").read_text()), "finished_at": "yesterday"})), "not an ISO time"),
    ("config.json", lambda f: edit_json(f, "config.json", lambda c: c.update(strategy="secret_sauce")),
     "not provided by any installed plugin"),
    ("artifacts.json", lambda f: edit_json(f, "artifacts.json", lambda a: {"../../x": a["adapter"]}),
     "artifact kind must be a name"),
    ("predictions.jsonl", lambda f: edit_lines(f, "predictions.jsonl", lambda rows: rows[0].update(em="1")),
     "valid number"),
    ("steps.jsonl", lambda f: edit_lines(f, "steps.jsonl", lambda rows: rows[0].update(step=2**40)), "step"),
]


@pytest.mark.parametrize("file, craft, needle", CRAFTED, ids=[f"{c[0]}:{c[2]}" for c in CRAFTED])
def test_a_crafted_folder_is_one_line_naming_folder_and_file_and_nothing_is_stored(tmp_path, capsys, file, craft,
                                                                                    needle):
    folder = valid_folder(tmp_path / "runs")
    craft(folder)
    db = tmp_path / "mine.duckdb"
    assert run_cli(["--db", str(db), "import", str(folder)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert str(folder) in err and file in err and needle in err, err
    assert not db.exists() or set(stored_rows(db).values()) == {0}


def test_a_valid_crafted_folder_is_stored_exactly(tmp_path, capsys):
    folder = valid_folder(tmp_path / "runs")
    db = tmp_path / "mine.duckdb"
    assert run_cli(["--db", str(db), "import", str(folder)]) == 0
    assert stored_rows(db) == {"runs": 1, "metrics": 4, "predictions": 3, "train_log": 2, "artifacts": 1}
    assert Store(str(db)).run_metrics(RUN_ID) == {"dev": {"em": 50.0, "f1": 62.5}, "test": {"em": 25.0},
                                                  "cost": {"fit_seconds": 0.0}}


def test_a_non_finite_metric_is_left_out_when_written(tmp_path):
    """An empty split's interval is NaN: the writer leaves it out, so the harness's own folders import."""
    from harness.store.folder import RunFolder

    folder = RunFolder.create(tmp_path / RUN_ID, {"strategy": "no_ft"}, {"run_id": RUN_ID, "run_key": "k"})
    folder.finalise("finished", metrics=[("dev", "em", 1.0), ("dev", "em_low", math.nan)], predictions=[])
    assert json.loads((folder.path / "metrics.json").read_text()) == [["dev", "em", 1.0]]


def test_import_refuses_a_folder_beyond_its_size_limits(tmp_path, capsys, monkeypatch):
    import harness.store.schema as schema

    folder = valid_folder(tmp_path / "runs")
    monkeypatch.setattr(schema, "MAX_LINES_BYTES", 100)
    db = tmp_path / "mine.duckdb"
    assert run_cli(["--db", str(db), "import", str(folder)]) == 2
    err = capsys.readouterr().err
    assert ".jsonl is larger than the import limit" in err and len(err.strip().splitlines()) == 1
    assert not db.exists()  # refused before the store was opened


def test_a_folder_whose_path_looks_like_a_pattern_imports_only_its_own_file(tmp_path, capsys):
    """DuckDB reads a path as a glob: a folder named with `*` or `[` must import exactly its own predictions."""
    valid_folder(tmp_path / "runs-a")  # another folder the pattern would match
    folder = valid_folder(tmp_path / "runs-[a]*", run_id="0c1b2c3d4e5f")
    db = tmp_path / "mine.duckdb"
    assert run_cli(["--db", str(db), "import", str(folder)]) == 0
    assert stored_rows(db)["predictions"] == 3


def test_a_prediction_line_that_names_a_key_twice_is_refused(tmp_path, capsys):
    """`{"em": 1, ..., "em": 0}` says two things: refused in one line, not stored as either."""
    from tests.harness.cli.crafted import redigest

    folder = valid_folder(tmp_path / "runs")
    lines = (folder / "predictions.jsonl").read_text().splitlines()
    lines[0] = lines[0][:-1] + ', "em": 0.0}'
    (folder / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    redigest(folder)
    db = tmp_path / "mine.duckdb"
    assert run_cli(["--db", str(db), "import", str(folder)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "predictions.jsonl" in err and "duplicate key" in err, err
    assert set(stored_rows(db).values()) == {0}
