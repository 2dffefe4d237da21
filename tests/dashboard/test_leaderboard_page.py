"""The leaderboard page on a real store: rows, filters, sorting, the tie mark, CSV export, opening a run."""

import io
import json

import pandas as pd

from tests.dashboard.conftest import app_test, page_text


def leaderboard_frame(at) -> pd.DataFrame:
    return at.dataframe[0].value


def test_one_row_per_strategy_dataset_embedder_generator(filled_db):
    at = app_test()
    assert not at.exception
    frame = leaderboard_frame(at)
    assert len(frame) == 6
    assert set(zip(frame["strategy"], frame["dataset"])) == {
        ("no_ft", "tiny"), ("ft_gen", "tiny"), ("rag_token", "tiny"), ("two_phase", "tiny"),
        ("no_ft", "popqa"), ("rag_token", "popqa")}
    assert "vrag" not in set(frame["strategy"]) and "jsa_rag" not in set(frame["strategy"])  # failed, running


def test_best_cell_by_dev_is_reported_with_seeds(filled_db, run_ids):
    frame = leaderboard_frame(app_test()).set_index(["strategy", "dataset"])
    ft_gen = frame.loc[("ft_gen", "tiny")]
    assert ft_gen["gen_lr"] == 3e-5  # the cell with the best mean dev EM in the fixture's grid
    assert ft_gen["seeds"] == 2 and ft_gen["cells"] == 3 and ft_gen["em_std"] > 0
    two_phase = frame.loc[("two_phase", "tiny")]
    assert two_phase["seeds"] == 3 and two_phase["cells"] == 1  # its grid's generator-only stage is left out
    assert two_phase["run_id"] in run_ids["two_phase/tiny"][1:]  # [0] is the first-stage cell
    assert pd.isna(frame.loc[("no_ft", "tiny"), "em_std"])  # one seed: no std
    low, high = (float(v) for v in ft_gen["em_ci"].strip("[]").split(","))
    assert low <= ft_gen["em"] <= high


def test_best_row_is_starred_and_ties_marked(filled_db):
    frame = leaderboard_frame(app_test())
    for dataset, group in frame.groupby("dataset"):
        assert (group["vs_best"] == "★ best").sum() == 1
        best = group[group["vs_best"] == "★ best"].iloc[0]
        assert best["em"] == group["em"].max()
    marks = dict(zip(zip(frame["strategy"], frame["dataset"]), frame["vs_best"]))
    assert marks[("no_ft", "tiny")].startswith("below")
    assert any(m.startswith("≈ tied") for m in marks.values())


def test_filters_change_the_rows(filled_db):
    at = app_test()
    at.multiselect(key="leaderboard_dataset").set_value(["popqa"]).run()
    assert set(leaderboard_frame(at)["dataset"]) == {"popqa"}
    at.multiselect(key="leaderboard_strategy").set_value(["rag_token"]).run()
    frame = leaderboard_frame(at)
    assert list(frame["strategy"]) == ["rag_token"] and list(frame["vs_best"]) == ["★ best"]
    at.multiselect(key="leaderboard_embedder").set_value(["mpnet"]).run()
    assert "No finished run matches these filters." in page_text(at)


def test_sort_follows_the_metric_direction(filled_db):
    at = app_test()
    at.multiselect(key="leaderboard_dataset").set_value(["tiny"]).run()
    assert list(leaderboard_frame(at)["em"]) == sorted(leaderboard_frame(at)["em"], reverse=True)
    at.selectbox(key="leaderboard_sort").set_value("fit_seconds").run()
    assert list(leaderboard_frame(at)["fit_seconds"]) == sorted(leaderboard_frame(at)["fit_seconds"])


def test_every_column_has_a_description_and_metrics_their_direction(filled_db):
    from harness.metrics import METRICS

    config = json.loads(app_test().dataframe[0].proto.columns)
    shown = [c for c in config if c != "_index"]
    assert all(config[c].get("help") for c in shown), [c for c in shown if not config[c].get("help")]
    for name in ("em", "f1", "recall@5", "answer_recall@5", "fit_seconds", "gpu_hours", "peak_memory_mb"):
        info = METRICS[name]
        assert info.description in config[name]["help"]
        assert ("Higher is better" if info.higher_is_better else "Lower is better") in config[name]["help"]
        assert config[name]["label"].endswith("↑" if info.higher_is_better else "↓")


def test_csv_download_is_the_filtered_view(filled_db, downloads):
    at = app_test()
    at.multiselect(key="leaderboard_dataset").set_value(["tiny"]).run()
    assert not at.exception
    csv = pd.read_csv(io.BytesIO(downloads["leaderboard.csv"]))
    assert len(csv) == 4 and set(csv["dataset"]) == {"tiny"}
    assert {"em", "em_low", "em_high", "f1", "recall@5", "fit_seconds", "seeds", "vs_best", "run_ids"} <= set(csv.columns)
    shown = leaderboard_frame(at)
    assert list(csv["strategy"]) == list(shown["strategy"])
    assert csv["em"].round(6).tolist() == shown["em"].round(6).tolist()


def test_silver_labelled_runs_say_so(filled_db):
    """A run trained on DPR's silver labels (--silver-labels N) shows silver@N; the others their dataset's."""
    import numpy as np

    from harness.store.db import Store
    from tests.dashboard.conftest import _config, _store_run

    config = {**_config("ft_embed", "popqa", "minilm", 1e-5, None, 0), "silver_labels": 20}
    _store_run(Store(str(filled_db)), "silverrun001", config, None, 0.4, 12.0, np.random.default_rng(3))
    frame = leaderboard_frame(app_test()).set_index(["strategy", "dataset"])
    assert frame.loc[("ft_embed", "popqa"), "labels"] == "silver@20"
    assert set(frame.drop(index=[("ft_embed", "popqa")])["labels"]) == {"dataset"}
