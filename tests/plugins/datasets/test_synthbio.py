"""synthbio: deterministic from its options, splits disjoint in people and questions, every question
answerable from its labelled passage, distractors that share names and cities, options validated."""

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from harness import plugins
from harness.builtins.datasets.synthbio import QUESTIONS, SynthBioOptions, generate
from harness.errors import UserError
from harness.metrics import has_answer
from harness.types import DatasetOptions
from tests.conftest import run_cli


def load(name="synthbio:people=60,seed=3", limit=None):
    plugins.load_plugins(None)
    return plugins.datasets().get(name).load(DatasetOptions(limit=limit))


def person(example_id):
    return example_id.split("-")[0]


def test_same_options_same_data_and_another_seed_other_people():
    a, b = generate(SynthBioOptions(60, "medium", 3)), generate(SynthBioOptions(60, "medium", 3))
    assert a == b
    assert generate(SynthBioOptions(60, "medium", 4))["passages"] != a["passages"]


def test_splits_are_disjoint_in_people_and_sized_by_person():
    ds = load()
    people = {split: {person(ex.id) for ex in ds.split(split)} for split in ("train", "dev", "test")}
    assert not (people["train"] & people["dev"]) and not (people["train"] & people["test"]) and not (people["dev"] & people["test"])  # noqa: E501
    assert [len(people[s]) for s in ("train", "dev", "test")] == [30, 12, 18]
    assert len(ds.test) == 18 * 5  # one question per attribute and person
    # medium: half as many distractor people again, in the corpus only
    assert len(ds.corpus) == 90


def test_every_question_is_answered_by_its_labelled_biography():
    ds = load()
    for ex in ds.train + ds.dev + ds.test:
        [gold] = ex.gold_passage_ids
        assert has_answer(ds.corpus[ds.corpus.row_of(gold)].text, ex.answers), ex


def test_questions_use_other_wording_than_biographies_and_some_only_describe_the_person():
    ds = load("synthbio:people=200")
    names = {ds.corpus[i].title for i in range(len(ds.corpus))}
    described = [ex for ex in ds.test if not any(name in ex.question for name in names)]
    assert 0.45 < len(described) / len(ds.test) < 0.75  # medium: 60%
    dates = [ex for ex in described if "the person born on" in ex.question]
    # the biography writes "May 3, 1961"; a medium question "3 May 1961"
    assert dates and all(ex.answers[0] not in ex.question for ex in dates)
    templates = {t.split("{who}")[0] for ts in QUESTIONS.values() for t in ts}
    assert all(any(ex.question.startswith(t) for t in templates) for ex in ds.test)
    assert not any(ds.corpus[i].text.endswith("?") for i in range(len(ds.corpus)))


def test_names_and_cities_are_shared_between_people():
    ds = load("synthbio:people=200")
    titles = [ds.corpus[i].title for i in range(len(ds.corpus))]
    assert len(set(titles)) == len(titles)  # full names are unique...
    firsts, lasts = Counter(t.split()[0] for t in titles), Counter(t.split()[-1] for t in titles)
    assert max(firsts.values()) >= 4 and max(lasts.values()) >= 4  # ...but first and last names are shared
    city_answers = Counter(ex.answers[0] for ex in ds.train + ds.dev + ds.test if ex.id.endswith("birth_city"))
    assert max(city_answers.values()) >= 4


def test_difficulty_changes_the_distractors_and_the_questions():
    easy, hard = load("synthbio:people=100,difficulty=easy"), load("synthbio:people=100,difficulty=hard")
    assert len(easy.corpus) == 100 and len(hard.corpus) == 200
    names = {easy.corpus[i].title for i in range(len(easy.corpus))}
    assert all(any(n in ex.question for n in names) for ex in easy.test)  # easy: every question names its person


def test_limit_keeps_a_mix_of_people_and_the_data_is_cached():
    ds = load("synthbio:people=100,seed=9", limit=20)
    assert len(ds.test) == 20 and len({person(ex.id) for ex in ds.test}) > 5
    cached = list(Path(os.environ["HARNESS_CACHE"]).glob("synthbio/*.json"))
    assert any(json.loads(p.read_text())["passages"][0]["text"] == ds.corpus[0].text for p in cached)


@pytest.mark.parametrize("name, message", [
    ("synthbio:people=abc", "people and seed must be integers"),
    ("synthbio:difficulty=extreme", "difficulty must be one of easy, medium, hard"),
    ("synthbio:size=3", "unknown option 'size=3'"),
    ("synthbio:people=5", "people must be between 10 and"),
])
def test_bad_options_are_one_clear_error(name, message):
    with pytest.raises(UserError, match=message):
        load(name)


def test_a_run_on_synthbio_end_to_end(capsys):
    code = run_cli(["run", "--plugin", "no_ft", "--dataset", "synthbio:people=20", "--embedder", "tiny-embedder",
                    "--generator", "tiny-llama", "--max-new-tokens", "2", "--limit", "3"])
    assert code == 0
    from harness.store.db import Store

    [run] = Store(os.environ["HARNESS_DB"]).query("SELECT dataset, config FROM runs")
    assert run["dataset"] == "synthbio:people=20" and json.loads(run["config"])["dataset"] == "synthbio:people=20"
    assert run_cli(["run", "--dataset", "synthbio:people=x"]) == 2
    assert "people and seed must be integers" in capsys.readouterr().err
