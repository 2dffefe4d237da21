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
