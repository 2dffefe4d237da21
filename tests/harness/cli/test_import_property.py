"""Property: whatever one change makes to a valid run folder (any file, any field, any kind of value; digests
made to match again), `harness import` either stores exactly what the folder says, or stores nothing and
prints one line (exit 2). Never a traceback, never something else than the folder holds."""

import datetime as dt
import json
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.store.db import Store
from tests.conftest import run_cli
from tests.harness.cli.crafted import redigest, valid_folder

FILES = ["config.json", "meta.json", "metrics.json", "artifacts.json", "status.json", "predictions.jsonl",
         "steps.jsonl"]

VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["", "../../x", "0a1b2c3d4e5f", "no_ft", "2026-01-02T03:04:05+00:00", "finished", "failed",
                     "running", "dev", "em", "a" * 64, "x' OR 1=1 --", "artifacts/adapter", "/etc"]),
    st.lists(st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=4),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def read(folder: Path, name: str):
    text = (folder / name).read_text()
    if name.endswith(".jsonl"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


def write(folder: Path, name: str, data) -> None:
    if name.endswith(".jsonl") and isinstance(data, list):
        text = "".join(json.dumps(r) + "\n" for r in data)
    else:
        text = json.dumps(data) + ("\n" if name.endswith(".jsonl") else "")
    (folder / name).write_text(text)


def places(data, path=()):
    """Every place in a JSON value: (path to it, the value there)."""
    yield path, data
    if isinstance(data, dict):
        for key, value in data.items():
            yield from places(value, (*path, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from places(value, (*path, i))


def mutate(data, path, op, value):
    """`data` with the place at `path` replaced (`set`), removed (`drop`), or given an extra key/item (`add`)."""
    if not path:
        return value if op == "set" else data
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if op == "set":
        parent[last] = value
    elif op == "drop":
        del parent[last]
    elif isinstance(parent, dict):
        parent[f"extra_{last}"] = value
    else:
        parent.append(parent[last])  # a duplicated row or item
    return data


@st.composite
def changes(draw):
    name = draw(st.sampled_from(FILES))
    return name, draw(st.integers(min_value=0, max_value=10**6)), draw(st.sampled_from(["set", "drop", "add"])), \
        draw(VALUES)


def local_time(iso):
    return dt.datetime.fromisoformat(iso).astimezone().replace(tzinfo=None) if iso else None


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def check_stored_exactly(db: Path, folder: Path) -> None:
    store = Store(str(db))
    config, meta, status = read(folder, "config.json"), read(folder, "meta.json"), read(folder, "status.json")
    [run] = store.query("SELECT * FROM runs")
    assert run["id"] == meta["run_id"] and run["run_key"] == meta["run_key"]
    assert run["grid_id"] == meta.get("grid_id") and json.loads(run["config"]) == config
    assert [run[k] for k in ("strategy", "dataset", "embedder", "generator", "seed")] == \
        [config[k] for k in ("strategy", "dataset", "embedder", "generator", "seed")]
    assert (run["status"], run["error"]) == (status["status"], status["error"])
    assert run["finished_at"] == local_time(status["finished_at"])
    if meta.get("started_at"):
        assert run["started_at"] == local_time(meta["started_at"])
    assert (run["host"], run["pid"], run["device"], run["device_count"]) == \
        (meta.get("host"), meta.get("pid"), meta.get("device"), meta.get("device_count", 0))
    assert json.loads(run["packages"]) == meta.get("packages", {})
    files = status["files"]
    metrics = read(folder, "metrics.json") if "metrics.json" in files else []
    assert sorted(store.query("SELECT split, name, value FROM metrics"), key=str) == \
        sorted(({"split": s, "name": n, "value": v} for s, n, v in metrics), key=str)
    predictions = read(folder, "predictions.jsonl") if "predictions.jsonl" in files else []
    stored = store.query("SELECT * EXCLUDE (run_id) FROM predictions ORDER BY split, example_id")
    for row in stored:
        for key in ("golds", "gold_passage_ids", "retrieved_ids"):
            row[key] = json.loads(row[key])
    assert stored == sorted(predictions, key=lambda p: (p["split"], p["example_id"]))
    steps = read(folder, "steps.jsonl") if "steps.jsonl" in files else []
    logged = sorted(((r["step"], r["name"], r["value"], r["elapsed"])
                     for r in store.query("SELECT step, name, value, elapsed FROM train_log")), key=repr)
    expected = sorted(((s["step"], s["name"], None if s["value"] is None else float(s["value"]), float(s["elapsed"]))
                       for s in steps), key=repr)
    assert len(logged) == len(expected)
    for row, step in zip(logged, expected):
        assert all(same(a, b) for a, b in zip(row, step)), (row, step)
    artifacts = read(folder, "artifacts.json") if "artifacts.json" in files else {}
    assert {(a["kind"], a["path"], a["sha256"]) for a in store.query("SELECT * FROM artifacts")} == \
        {(k, e["path"], e["sha256"]) for k, e in artifacts.items()}


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(change=changes())
def test_import_stores_a_changed_folder_exactly_or_nothing_with_one_line(change, capsys):
    name, pick, op, value = change
    with tempfile.TemporaryDirectory() as tmp:
        folder = valid_folder(Path(tmp) / "runs")
        data = read(folder, name)
        where = list(places(data))
        path, _ = where[pick % len(where)]
        write(folder, name, mutate(data, path, op, value))
        if name != "status.json":
            redigest(folder)
        db = Path(tmp) / "store.duckdb"
        capsys.readouterr()
        code = run_cli(["--db", str(db), "import", str(folder)])
        err = capsys.readouterr().err
        assert code in (0, 2), err
        if code == 2:
            assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and str(folder) in err, err
            assert not db.exists() or all(Store(str(db)).query(f"SELECT count(*) AS n FROM {t}")[0]["n"] == 0
                                          for t in ("runs", "metrics", "predictions", "train_log", "artifacts"))
        else:
            check_stored_exactly(db, folder)
