"""Quality vs cost, Run, Compare, Learning rates and Published pages on a real store."""

import io
import json

import pandas as pd
from streamlit.proto.WidgetStates_pb2 import WidgetStates

from tests.dashboard.conftest import app_test, page_text


def frames(at) -> list[pd.DataFrame]:
    return [d.value for d in at.dataframe]


# -- quality vs cost ---------------------------------------------------------------------------------
def test_quality_vs_cost_draws_the_pareto_front(filled_db):
    at = app_test("quality_vs_cost")
    assert not at.exception
    at.selectbox(key="cost_dataset").set_value("tiny").run()
    assert len(at.get("vega_lite_chart")) == 1
    front = frames(at)[0]
    # tiny: no_ft costs nothing, ft_gen is the best EM; rag_token and two_phase cost more for less.
    assert list(front["strategy"]) == ["no_ft", "ft_gen"]
    assert "Pareto front (2 of 4)" in page_text(at)


def test_quality_vs_cost_every_run_and_axes(filled_db):
    at = app_test("quality_vs_cost")
    at.selectbox(key="cost_dataset").set_value("tiny").run()
    at.toggle(key="cost_every_run").set_value(True).run()
    at.radio(key="cost_y").set_value("f1").run()
    at.radio(key="cost_x").set_value("gpu_hours").run()
    assert not at.exception
    assert "of 14)" in page_text(at)  # every latest run of each cell and seed on tiny
    assert "GPU-hours are 0 for CPU runs" in page_text(at)


def test_selecting_a_point_opens_its_run(filled_db, run_ids):
    at = app_test("quality_vs_cost")
    chart = at.get("vega_lite_chart")[0]
    # What the browser sends when a point is clicked (AppTest has no chart clicks of its own).
    states = WidgetStates()
    state = states.widgets.add()
    state.id = chart.proto.id
    target = run_ids["rag_token/popqa"][0]
    state.string_value = json.dumps({"selection": {"pick": [{"run_id": target}]}})
    at._run(states)
    assert not at.exception
    assert at.title[0].value == "Run" and at.query_params["run"] == target


def test_quality_vs_cost_links_to_the_chosen_run(filled_db, run_ids):
    at = app_test("quality_vs_cost")
    assert at.selectbox(key="cost_dataset").value == "tiny"  # the dataset with the most runs first
    target = run_ids["no_ft/tiny"][0]
    at.selectbox(key="cost_open").set_value(target).run()
    link = at.get("page_link")[0].proto
    assert link.page == "run" and link.query_string == f"run={target}"


# -- run -----------------------------------------------------------------------------------------------
def test_run_page_shows_config_environment_curves_artifacts(filled_db, run_ids):
    target = run_ids["ft_gen/tiny"][0]
    at = app_test("run", {"run": target})
    assert not at.exception
    text = page_text(at)
    assert "**ft_gen** on **tiny**" in text and "status `finished`" in text
    assert at.json[0].value and json.loads(at.json[0].value)["gen_lr"] == 1e-5
    quality, cost, environment = frames(at)[:3]
    artifacts = next(f for f in frames(at) if "sha256" in f)
    em = quality.set_index("metric").loc["em"]
    assert em["direction"] == "higher is better" and em["test 95% CI"].startswith("[") and em["dev"] >= 0
    assert cost.set_index("metric").loc["fit_seconds", "direction"] == "lower is better"
    from harness.store.db import Store

    stored = Store(str(filled_db)).run_metrics(target)["cost"]["trained_tokens"]
    shown = cost.set_index("metric").loc["trained_tokens", "value"]
    assert int(shown.replace(",", "")) == stored  # exact, as the store has it (not rounded to 4 digits)
    env = dict(zip(environment["what"], environment["value"]))
    assert env["git sha"] == "abc123def456" and env["package torch"] == "2.13.0" and env["device"].startswith("cpu")
    assert list(artifacts["sha256"]) == ["9f" * 32] and list(artifacts["kind"]) == ["adapter"]
    assert len(at.get("vega_lite_chart")) == 1  # the training curves
    assert at.multiselect(key="run_curves").value == ["loss", "lr"]


def test_run_page_says_where_the_score_comes_from(filled_db, run_ids):
    """EM split by whether the gold passage was retrieved, grounding, and the gain over no_ft on the same
    questions as retrieval + reading: the numbers `harness show` prints, from the same code."""
    from harness.evaluation import decompose
    from harness.store.db import Store

    target, base = run_ids["ft_gen/tiny"][2], run_ids["no_ft/tiny"][0]
    at = app_test("run", {"run": target})
    assert not at.exception
    sources = next(f for f in frames(at) if "questions" in f)
    metrics = Store(str(filled_db)).run_metrics(target)["test"]
    shown = sources[sources["split"] == "test"].set_index("questions")
    assert shown.loc["… gold passage in the top-k", "EM"] == metrics["em_gold_retrieved"]
    assert shown.loc["… gold passage missed", "n"] == metrics["n_gold_missed"]
    parts = decompose(metrics, Store(str(filled_db)).run_metrics(base)["test"])
    assert f"retrieval **{parts['retrieval']:+.1f}** + reading **{parts['reading']:+.1f}**" in page_text(at)


def test_run_page_examples_are_searchable_with_gold_marked(filled_db, run_ids, downloads):
    target = run_ids["ft_gen/tiny"][0]
    at = app_test("run", {"run": target})
    examples = frames(at)[-1]
    assert len(examples) == 40
    assert {"question", "prediction", "golds", "em", "f1", "retrieved", "gold_passages"} <= set(examples.columns)
    assert examples["retrieved"].str.contains("✓").any()
    at.text_input(key="run_search").input("TOPIC 3").run()
    found = frames(at)[-1]
    assert 0 < len(found) < 40 and found["question"].str.contains("topic 3").all()
    at.toggle(key="run_wrong").set_value(True).run()
    assert (frames(at)[-1]["em"] < 1).all()
    at.text_input(key="run_search").input("").run()
    at.toggle(key="run_wrong").set_value(False).run()
    at.selectbox(key="run_split").set_value("dev").run()
    assert len(frames(at)[-1]) == 20
    csv = pd.read_csv(io.BytesIO(downloads[f"predictions-{target}-dev.csv"]))
    assert len(csv) == 20


def test_run_page_search_is_a_value_not_sql(filled_db, run_ids):
    at = app_test("run", {"run": run_ids["ft_gen/tiny"][0]})
    at.text_input(key="run_search").input("') OR 1=1 --").run()
    assert not at.exception and len(frames(at)[-1]) == 0


def test_run_page_defaults_and_unknown_and_failed_runs(filled_db):
    at = app_test("run")
    assert "status `finished`" in page_text(at)  # the newest finished run, not the running one
    at = app_test("run", {"run": "nosuchrun"})
    assert "No run `nosuchrun`" in page_text(at)
    at = app_test("run", {"run": "failedrun001"})
    assert not at.exception
    assert "raised RuntimeError: boom" in page_text(at) and "No metrics stored" in page_text(at)


# -- compare ---------------------------------------------------------------------------------------------
def test_compare_two_runs_on_the_same_test_set(filled_db, run_ids, downloads):
    a, b = run_ids["ft_gen/tiny"][2], run_ids["no_ft/tiny"][0]
    at = app_test("compare", {"a": a, "b": b})
    assert not at.exception
    text = page_text(at)
    assert "40 shared examples" in text and "p = " in text
    assert "(significant at 0.05)" in text  # 60% vs 10% EM on 40 examples
    only_a = [m for m in at.metric if m.label == "only A right"][0]
    table = next(f for f in frames(at) if "outcome" in f)
    assert set(table["outcome"]) <= {"only A right", "only B right"}
    assert (table["outcome"] == "only A right").sum() == int(only_a.value)
    at.multiselect(key="compare_outcomes").set_value(["both wrong"]).run()
    assert set(next(f for f in frames(at) if "outcome" in f)["outcome"]) == {"both wrong"}
    csv = pd.read_csv(io.BytesIO(downloads[f"compare-{a}-{b}-test.csv"]))
    assert set(csv["outcome"]) == {"both wrong"}
    assert "Where A − B comes from" in text and "= retrieval" in text  # one evaluation set: the gain splits
    sources = next(f for f in frames(at) if "EM on" in f).set_index("EM on")
    assert list(sources.index[:3]) == ["all questions", "gold passage retrieved", "gold passage missed"]


def test_compare_same_run_and_different_datasets(filled_db, run_ids):
    a = run_ids["ft_gen/tiny"][0]
    at = app_test("compare", {"a": a, "b": a})
    assert "Pick two different runs." in page_text(at)
    at = app_test("compare", {"a": a, "b": run_ids["no_ft/popqa"][0]})
    assert not at.exception and "Different datasets" in page_text(at)


# -- learning rates ---------------------------------------------------------------------------------------
def test_learning_rates_line_and_heatmap(filled_db):
    at = app_test("learning_rates")
    assert not at.exception
    assert at.selectbox(key="lr_dataset").value == "tiny"
    assert len(at.get("vega_lite_chart")) == 2  # ft_gen's line (gen LR), rag_token's heatmap (both LRs)
    assert [s.value for s in at.subheader] == ["rag_token · minilm + smollm2-135m"]  # two pipelines shown
    cells = frames(at)[0]
    assert len(cells) == 10 and set(cells["strategy"]) == {"no_ft", "ft_gen", "rag_token", "two_phase"}
    assert cells["earlier_stage"].sum() == 1  # two_phase's generator-only grid stage, kept apart
    ft_gen = cells[cells["strategy"] == "ft_gen"]
    assert sorted(ft_gen["gen_lr"]) == [1e-5, 3e-5, 1e-4] and set(ft_gen["seeds"]) == {2}


def test_learning_rates_grid_filter_and_metric(filled_db):
    at = app_test("learning_rates")
    at.multiselect(key="lr_grids").set_value(["grid-ragtok"]).run()
    at.selectbox(key="lr_metric").set_value("f1").run()
    assert not at.exception
    cells = frames(at)[0]
    assert set(cells["strategy"]) == {"rag_token"} and len(cells) == 4 and "f1" in cells.columns
    at.selectbox(key="lr_dataset").set_value("popqa").run()
    assert "No finished runs with dev metrics" in page_text(at) or "varies a learning rate" in page_text(at)


# -- published --------------------------------------------------------------------------------------------
def test_published_numbers_are_labelled_and_set_beside_runs(filled_db):
    at = app_test("published")
    assert not at.exception
    assert "Published numbers, not runs of this harness" in page_text(at)
    table3, per_pipeline = frames(at)
    assert len(table3) == 7 and set(table3["source"]) == {"published (Lawton et al. 2025)"}
    assert table3.set_index("method").loc["RAG-Tok.", "em"] == 29.5
    assert len(per_pipeline) == 28 and per_pipeline["source"].str.startswith("published").all()
    at.radio(key="published_dataset").set_value("popqa").run()
    table3 = frames(at)[0]
    mine = table3[table3["source"].str.startswith("this store")]
    assert set(mine["strategy"]) == {"no_ft", "rag_token"}  # the fixture's popqa runs, on dev
    assert table3.set_index("method").loc["2-Phase", "em"] == 41.0
