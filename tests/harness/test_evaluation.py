"""Issue 22 §2-3: where a score comes from (gold in / not in the top-k, grounding, closed-book, oracle), the
retrieval/reading split of a gain, and the generator's retention, through the real evaluation on tiny models."""

import math
import os

import pytest

from harness.evaluation import decompose, grounding, summarize
from harness.hookspecs import hookimpl
from harness.results.leaderboard import store_ranking
from harness.store.db import Store
from tests.conftest import TINY_CORPUS, run_cli, tiny_run_args
from tests.harness.results.test_evaluation_sets import write_dataset


def prediction(em: float, hit: float | None, answer_hit: float = 0.0, i: int = 0) -> dict:
    return {"example_id": f"q{i}", "em": em, "f1": em, "hit": hit, "answer_hit": answer_hit}


def test_em_is_split_by_whether_the_gold_passage_was_retrieved():
    preds = [prediction(1, 1, 1, 0), prediction(1, 1, 0, 1), prediction(0, 1, 0, 2), prediction(1, 0, 0, 3),
             prediction(0, 0, 0, 4)]
    m = summarize(preds, k=5)
    assert (m["n_gold_retrieved"], m["n_gold_missed"]) == (3, 2)
    assert m["em_gold_retrieved"] == pytest.approx(200 / 3) and m["em_gold_missed"] == 50.0
    assert m["em_gold_retrieved_low"] <= m["em_gold_retrieved"] <= m["em_gold_retrieved_high"]
    assert m["grounded"] == pytest.approx(100 / 3) and m["n_correct"] == 3  # 1 of 3 correct answers supported
    assert "n_gold_retrieved" not in summarize([prediction(1, None)], k=5)  # no context labels: no split
    assert grounding([prediction(0, 1)]) == {}


def test_a_gain_splits_exactly_into_retrieval_and_reading():
    base = summarize([prediction(1, 1, i=0), prediction(0, 1, i=1), prediction(0, 0, i=2), prediction(0, 0, i=3)], 5)
    run = summarize([prediction(1, 1, i=0), prediction(1, 1, i=1), prediction(1, 1, i=2), prediction(0, 0, i=3)], 5)
    parts = decompose(run, base)
    # h: 1/2 -> 3/4; EM|hit: 50 -> 100; EM|miss: 0 -> 0. retrieval = (3/4 - 1/2)·((100 + 50)/2 - 0) = 18.75,
    # reading = h̄·Δa + (1 - h̄)·Δm = 5/8·50 + 3/8·0 = 31.25
    assert parts["retrieval"] == pytest.approx(18.75)
    assert parts["reading"] == pytest.approx(31.25)
    swapped = decompose(base, run)  # symmetric: the other way round is the same split, negated
    assert swapped["retrieval"] == pytest.approx(-18.75) and swapped["reading"] == pytest.approx(-31.25)
    assert parts["retrieval"] + parts["reading"] == pytest.approx(run["em"] - base["em"])
    assert decompose(summarize([prediction(1, None)], 5), base) is None


class PerfectReader:
    """A reader that answers right exactly when its gold passage is in the prompt, and knows Paris by heart:
    the modes must then read closed-book 1 of N, oracle N of N, and gold-missed 0 (or Paris)."""

    name = "perfect_reader"
    citation = "test double"
    description = "test double"
    needs_context_labels = False
    learning_rates: dict = {}

    def fit(self, ctx):
        facts = {ex.question: (ex.answers[0], TINY_CORPUS[int(ex.gold_passage_ids[0][1:])][1])
                 for split in ("dev", "test") for ex in ctx.dataset.split(split)}

        def answer(prompt: str) -> str:
            for question, (gold, text) in facts.items():
                if question in prompt:
                    return gold if text in prompt or gold == "Paris" else "no idea"
            return "no idea"

        ctx.pipeline.generator.generate = lambda prompts, *a, **k: [answer(p) for p in prompts]


class ReaderPlugin:
    @hookimpl
    def register_strategies(self, register):
        register(PerfectReader)


@pytest.fixture
def reader(clean_plugins):
    clean_plugins.pm.register(ReaderPlugin(), name="test-perfect-reader")
    yield


def test_closed_book_and_oracle_modes_score_the_same_questions_on_the_same_models(reader, tmp_path, capsys):
    data = write_dataset(tmp_path / "data")  # 10 test questions, each with its gold passage
    assert run_cli(tiny_run_args(data, "perfect_reader", "--eval-modes", "closed_book,oracle", "-k", "3")) == 0
    store = Store(os.environ["HARNESS_DB"])
    [run] = store.query("SELECT id FROM runs")
    test = store.run_metrics(run["id"])["test"]
    assert test["oracle_em"] == 100.0 and test["oracle_n"] == 10  # the reader's ceiling: every gold passage given
    assert test["closed_book_em"] == 10.0  # no passages: only Paris, known by heart
    hits, misses = test["n_gold_retrieved"], test["n_gold_missed"]
    assert hits + misses == 10 and 0 < hits < 10  # the tiny retriever finds some gold passages, not all
    assert test["em_gold_retrieved"] == 100.0  # gold passage in the prompt: answered
    [paris] = [p for p in store.run_predictions(run["id"]) if p["split"] == "test" and "Paris" in p["golds"]]
    assert test["em_gold_missed"] == (0.0 if paris["hit"] else 100.0 / misses)  # missed: wrong, bar Paris
    assert test["em"] == pytest.approx((hits * test["em_gold_retrieved"] + misses * test["em_gold_missed"]) / 10)
    assert test["grounded"] <= 100.0 and test["n_correct"] == round(test["em"] / 10)
    stored = store.run_predictions(run["id"])
    assert all("closed_book" not in p for p in stored)  # the stored prediction is the retrieved one
    capsys.readouterr()
    assert run_cli(["show", run["id"], "--predictions", "0"]) == 0
    shown = capsys.readouterr().out
    assert "where the score comes from" in shown and "100.0 [100.0, 100.0]" in shown


def test_show_splits_the_gain_over_a_baseline_only_on_the_same_questions(tiny_data, capsys):
    assert run_cli(tiny_run_args(tiny_data, "no_ft", "--eval-splits", "test")) == 0
    assert run_cli(tiny_run_args(tiny_data, "ft_gen", "--eval-splits", "test", "--gen-lr", "1e-2")) == 0
    assert run_cli(tiny_run_args(tiny_data, "no_ft", "--eval-splits", "test", "--limit", "1")) == 0
    store = Store(os.environ["HARNESS_DB"])
    full_base, tuned, quick = (r["id"] for r in store.query("SELECT id FROM runs ORDER BY started_at"))
    capsys.readouterr()
    assert run_cli(["show", tuned, "--predictions", "0"]) == 0  # its no_ft baseline is found on the same questions
    shown = " ".join(capsys.readouterr().out.split())
    assert f"vs no_ft run {full_base} on the same test questions: EM" in shown and "= retrieval" in shown
    assert run_cli(["show", tuned, "--predictions", "0", "--baseline", quick]) == 2
    err = capsys.readouterr().err
    assert f"run {quick} was not scored on the same test questions as {tuned}" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_bad_eval_mode_is_one_line(tiny_data, capsys):
    assert run_cli(tiny_run_args(tiny_data, "no_ft", "--eval-modes", "closed_book,psychic")) == 2
    err = capsys.readouterr().err
    assert "--eval-modes must name some of closed_book, oracle, retention" in err and "psychic" in err
    assert "Traceback" not in err


def test_retention_sees_fine_tuning_change_the_generator_and_no_ft_leave_it(tiny_data, capsys):
    args = ("--eval-modes", "retention", "--retention-probe", "local", "--eval-splits", "test")
    assert run_cli(tiny_run_args(tiny_data, "no_ft", *args)) == 0
    assert run_cli(tiny_run_args(tiny_data, "ft_gen", *args, "--gen-lr", "1e-2")) == 0
    store = Store(os.environ["HARNESS_DB"])
    kept, tuned = (store.run_metrics(r["id"])["retention"]
                   for r in store.query("SELECT id FROM runs ORDER BY started_at"))
    # the probe: the run's own dev and test questions and corpus passages that are no training gold passage
    assert kept["n_questions"] == 4 and kept["n_passages"] == 10 - 6
    assert kept["perplexity_change"] == 0.0 and kept["perplexity_before"] == kept["perplexity_after"]
    assert math.isfinite(tuned["perplexity_after"]) and tuned["perplexity_after"] != tuned["perplexity_before"]
    assert tuned["perplexity_before"] == pytest.approx(kept["perplexity_before"])  # one probe, one base model
    rows = {r["strategy"]: r for r in store_ranking(store)}
    assert rows["ft_gen"]["retention_perplexity_change"] == pytest.approx(tuned["perplexity_change"])
