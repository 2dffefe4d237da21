"""The equal-compute page on a real store: one line per strategy over its FLOP budgets, seeds averaged."""

import numpy as np
import pytest

from harness.evaluation import summarize
from harness.store.db import Store
from tests.dashboard.conftest import _config, _predictions, app_test, page_text

# strategy -> EM accuracy at budgets 1e12, 1e13 and unbounded (spent FLOPs: the budget, 5e13 unbounded)
CURVES = {"ft_gen": [0.2, 0.4, 0.5], "indp": [0.3, 0.6, 0.7]}
BUDGETS = [1e12, 1e13, None]


def fill(path: str) -> None:
    store, rng, n = Store(path), np.random.default_rng(3), 0
    for strategy, accuracies in CURVES.items():
        for budget, accuracy in zip(BUDGETS, accuracies):
            for seed in (0, 1):
                n += 1
                config = {**_config(strategy, "synthbio", "minilm", None, 1e-4, seed), "max_train_flops": budget}
                store.start_run(f"run{n:03d}", f"key{n}", config, {})
                metrics, preds = [], []
                for split in ("dev", "test"):
                    split_preds = _predictions(rng, split, accuracy)
                    metrics += [(split, k, v) for k, v in summarize(split_preds, 5).items()]
                    preds += split_preds
                spent = (budget or 5e13) * (1.0 + 0.01 * seed)
                metrics += [("cost", "train_flops", spent), ("cost", "fit_seconds", 1.0)]
                store.finish_run(f"run{n:03d}", metrics, preds)


@pytest.fixture
def compute_db(tmp_path, monkeypatch):
    path = tmp_path / "compute.duckdb"
    fill(str(path))
    monkeypatch.setenv("HARNESS_DB", str(path))
    return path


def test_equal_compute_draws_one_line_per_strategy_over_budgets(compute_db):
    at = app_test("equal_compute")
    assert not at.exception
    assert len(at.get("vega_lite_chart")) == 1
    table = at.dataframe[0].value
    assert list(table["strategy"]) == ["ft_gen"] * 3 + ["indp"] * 3
    assert list(table["budget"]) == ["1e+12", "1e+13", "full"] * 2
    assert (table["seeds"] == 2).all()
    # x: mean FLOPs spent over the two seeds; y rises with compute for both strategies
    assert table["train_flops"].iloc[0] == pytest.approx(1e12 * 1.005)
    for strategy in CURVES:
        em = table[table["strategy"] == strategy]["em"].tolist()
        assert em == sorted(em)
    at.radio(key="compute_y").set_value("f1").run()
    assert not at.exception and "f1" in at.dataframe[0].value.columns


def test_equal_compute_explains_how_to_make_budget_runs(tmp_path, monkeypatch):
    path = tmp_path / "no_flops.duckdb"
    store = Store(str(path))
    store.start_run("old", "key-old", _config("no_ft", "tiny", "minilm", None, None, 0), {})
    store.finish_run("old", [("test", "em", 10.0), ("cost", "fit_seconds", 1.0)], [])  # stored before FLOPs
    monkeypatch.setenv("HARNESS_DB", str(path))
    at = app_test("equal_compute")
    assert not at.exception
    assert "harness grid --plugin S --budgets" in page_text(at)


def test_a_strategy_that_trained_nothing_is_a_dashed_line_not_a_point_at_zero(compute_db):
    """no_ft spends 0 training FLOPs, which a log axis cannot place (it collapsed the whole axis)."""
    store, rng = Store(str(compute_db)), np.random.default_rng(5)
    store.start_run("base", "key-base", {**_config("no_ft", "synthbio", "minilm", None, None, 0),
                                         "max_train_flops": None}, {})
    preds = _predictions(rng, "dev", 0.1) + _predictions(rng, "test", 0.1)
    store.finish_run("base", [(s, k, v) for s in ("dev", "test") for k, v in summarize(
        [p for p in preds if p["split"] == s], 5).items()] + [("cost", "train_flops", 0.0)], preds)
    at = app_test("equal_compute")
    assert not at.exception
    spec = at.get("vega_lite_chart")[0].proto.spec
    assert '"rule"' in spec and '"strokeDash"' in spec  # the dashed reference line
    assert "Dashed: no_ft, which trained nothing" in page_text(at)
    assert "no_ft" in list(at.dataframe[0].value["strategy"])  # still in the table, with its 0 FLOPs
