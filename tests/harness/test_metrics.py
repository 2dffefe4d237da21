"""Metrics against the official SQuAD v1.1 normalization cases and hand-computed values."""

import pytest

from harness.metrics import (METRICS, answer_hit, bootstrap_interval, exact_match, f1_score, metric_info,
                             normalize_answer, passage_hit)


@pytest.mark.parametrize(
    "raw, normalized",
    [
        ("The Eiffel Tower", "eiffel tower"),
        ("  an   apple, a pear!  ", "apple pear"),
        ("Theatre", "theatre"),  # 'the' only as a whole word
        ("U.S.A.", "usa"),
        ("1,000", "1000"),
        ("A", ""),
        ("Paris\n\tFrance", "paris france"),
    ],
)
def test_normalize_answer_squad_cases(raw, normalized):
    assert normalize_answer(raw) == normalized


def test_exact_match_is_max_over_golds():
    assert exact_match("the Nile", ["Amazon", "Nile"]) == 1.0
    assert exact_match("Nile river", ["Nile"]) == 0.0
    assert exact_match("", ["Nile"]) == 0.0


def test_f1_token_overlap():
    # pred tokens {nile, river}, gold {nile}: precision 1/2, recall 1 -> 2/3
    assert f1_score("Nile river", ["Nile"]) == pytest.approx(2 / 3)
    assert f1_score("the Nile", ["Amazon", "a Nile"]) == 1.0
    assert f1_score("Amazon", ["Nile"]) == 0.0
    assert f1_score("", ["Nile"]) == 0.0


def test_recall_at_k_counts_only_the_top_k():
    assert passage_hit(["a", "b", "c"], ["c"], k=3) == 1.0
    assert passage_hit(["a", "b", "c"], ["c"], k=2) == 0.0
    assert passage_hit(["a"], [], k=5) == 0.0


def test_answer_recall_matches_on_token_boundaries():
    passages = ["The Nile flows north.", "Paris is in France."]
    assert answer_hit(passages, ["nile"], k=5) == 1.0
    assert answer_hit(passages, ["Nil"], k=5) == 0.0  # a substring of a word is not a hit
    assert answer_hit(passages, ["France"], k=1) == 0.0  # second passage is outside the top 1


def test_bootstrap_interval_brackets_the_mean():
    values = [0, 100] * 50
    low, high = bootstrap_interval(values, seed=1)
    assert low < 50 < high
    assert bootstrap_interval([100.0] * 10) == (100.0, 100.0)


def test_every_metric_declares_its_direction():
    assert all(isinstance(m.higher_is_better, bool) and m.description for m in METRICS.values())
    assert metric_info("recall@10").higher_is_better
    assert not metric_info("fit_seconds").higher_is_better
    assert metric_info("em_low").name == "em"
