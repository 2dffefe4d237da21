"""Every page on a store written by real `harness run`s (tiny models and data), not only by the fixture."""

from tests.conftest import run_cli, tiny_run_args
from tests.dashboard.conftest import app_test

PAGES = [None, "quality_vs_cost", "run", "compare", "learning_rates", "published"]


def test_pages_on_a_store_written_by_harness_run(tiny_data):
    assert run_cli(tiny_run_args(tiny_data)) == 0
    assert run_cli(tiny_run_args(tiny_data, "no_ft", "--seed", "1", "-k", "3")) == 0
    for page in PAGES:
        at = app_test(page)
        assert not at.exception, (page, at.exception)
    board = app_test().dataframe[0].value
    assert list(board["strategy"]) == ["no_ft"] and list(board["dataset"]) == ["local"]
    assert list(board["cells"]) == [2]  # k=5 and k=3: two cells of one strategy × dataset × pipeline
    run = app_test("run")
    quality = run.dataframe[0].value.set_index("metric")
    assert "eval_seconds" in quality.index and quality.loc["em", "direction"] == "higher is better"


def test_run_page_shows_the_cost_per_step_with_mfu(tiny_data):
    assert run_cli(tiny_run_args(tiny_data, "ft_gen", "--peak-tflops", "0.001")) == 0
    run = app_test("run")
    assert not run.exception
    assert "Cost per step" in [s.value for s in run.subheader]
    [cost] = [d.value for d in run.dataframe if "measure" in d.value.columns]
    cost = cost.set_index("measure")
    assert cost.loc["tokens/s", "steps"] == 2 and cost.loc["tokens/s", "median"] > 0  # 6 questions, batch 4
    assert 0 < cost.loc["MFU (model FLOP utilisation)", "median"]  # ft_gen's FLOPs over 1e9 FLOP/s
    assert cost.loc["peak memory (MB)", "max"] > 0
