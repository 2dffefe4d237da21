"""Metrics against the official SQuAD normalization cases, DPR has_answer cases and hand-computed values."""

import pytest

from harness.metrics import (
    METRICS,
    answer_hit,
    bootstrap_interval,
    exact_match,
    f1_score,
    has_answer,
    metric_info,
    normalize_answer,
    passage_hit,
    simple_tokens,
)


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


def test_f1_when_both_normalize_to_empty_is_one_as_squad_v2():
    # SQuAD v2.0's convention (v1.1's script gives 0.0): F1 agrees with EM, which is 1 here
    assert f1_score("The", ["a"]) == 1.0 and exact_match("The", ["a"]) == 1.0
    assert f1_score("", ["the"]) == 1.0
    assert f1_score("the", ["Nile"]) == 0.0 and f1_score("Nile", ["an"]) == 0.0


def test_recall_at_k_counts_only_the_top_k():
    assert passage_hit(["a", "b", "c"], ["c"], k=3) == 1.0
    assert passage_hit(["a", "b", "c"], ["c"], k=2) == 0.0
    assert passage_hit(["a"], [], k=5) == 0.0


@pytest.mark.parametrize(
    "passage, gold, found",
    [
        ("Obama's policy on trade", "Obama", True),  # possessive: obama ' s
        ("the Franco-Prussian war", "Prussian", True),  # hyphen is a token of its own
        ("the Franco-Prussian war", "Franco-Prussian War", True),
        ("who is there?", "The Who", False),  # articles are kept: the answer needs "the who"
        ("They saw The Who live", "the who", True),
        ("about 1,000 people", "1000", False),  # 1 , 000 is three tokens
        ("about 1,000 people", "1,000", True),
        ("born in the U.S. in 1961", "US", False),  # u . s . is not "us"
        ("born in the U.S. in 1961", "U.S.", True),
        ("She moved to Zürich", "Zu\u0308rich", True),  # NFD: composed and decomposed ü match
        ("She moved to Zürich", "Zurich", False),  # accents are kept, as in DPR
        ("the Nile flows", "NILE", True),  # case-insensitive
        ("Nilesh flows", "Nile", False),  # not a substring of a token
        ("3 May 1961", "3 May 1961", True),
        ("anything", "", False),  # an empty answer is never found
        ("anything", "!!", False),
    ],
)
def test_has_answer_is_dprs_token_sequence_match(passage, gold, found):
    assert has_answer(passage, [gold]) is found


def test_simple_tokens_split_letters_digits_and_symbols():
    assert simple_tokens("Obama's U.S.") == ["obama", "'", "s", "u", ".", "s", "."]
    assert simple_tokens("1,000\tdollars") == ["1", ",", "000", "dollars"]


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
