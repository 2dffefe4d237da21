"""`synthbio`: a controlled benchmark of fictional biographies, offline, with known retrieval headroom.

The design of the bioS data (Allen-Zhu & Li, "Physics of Language Models: Part 3.1, Knowledge Storage and
Extraction", 2023): fictional people, so no generator can answer from memory and every correct answer must
come through retrieval. Made here with Faker from a seed:

- People with a birth date, birth city, university, major and employer. First names, last names, cities,
  universities and employers are drawn from small pools, so many people share each of them: a name or a
  city alone does not pick a person out (distractors). Full names, and the attribute pairs that questions
  describe people by, are unique.
- Each person's biography is one passage in the corpus, written from several sentence templates (order
  and wording vary per person). Title: the person's name. Extra "distractor" people have a biography but
  no questions.
- Questions come from *other* paraphrase templates, one per attribute and person. Some name the person
  ("Which company does Maria Lopez work for?"); the others describe the person only by other
  attributes ("Which company does the person born on 3 May 1961 in Tulsa work for?"), with dates written
  in a different format than the biographies use, so lexical overlap is not enough and retrieval has to
  be learned. Context label: the biography stating the fact.
- Splits are by person: each person's questions all go to one of train (50%), dev (20%) or test (30%),
  so the three are disjoint in questions *and* in people. A model cannot answer a test question from
  facts it saw in training; it has to learn to retrieve and to read. Every person's biography stays in
  the one shared corpus, as Wikipedia does for the real benchmarks.

Options, in the dataset name: `synthbio` (defaults) or `synthbio:people=2000,difficulty=hard,seed=1`.
`people` (default 1000, so 300 test people and 1,500 test questions), `difficulty` easy | medium | hard
(default medium, where the base MiniLM finds the gold biography in its top 5 for about half the
test questions: pool sizes, the share of described questions, date formats, distractors), `seed`.
Deterministic from the options and the Faker version; generated in about a second; cached as JSON in the
harness cache.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import random
from dataclasses import asdict, dataclass
from functools import cache

from harness import Corpus, DatasetOptions, DatasetSpec, Passage, RagDataset, RagExample, UserError, cache_dir, hookimpl
from harness.data import apply_limit, validate_dataset

GENERATOR_VERSION = 2  # bump when the generated text changes: it is part of the cache key
ATTRIBUTES = ("birth_date", "birth_city", "university", "major", "employer")
SPLIT_FRACTIONS = (0.5, 0.2)  # train, dev; test gets the rest


@dataclass(frozen=True)
class Difficulty:
    first_names: int  # pool sizes: the smaller, the more people share a name, a city...
    last_names: int
    cities: int
    universities: int
    employers: int
    described_share: float  # questions that describe the person instead of naming them
    question_date_format: str  # strftime format of dates inside questions (biographies use "%B %-d, %Y")
    distractor_share: float  # extra people in the corpus only, as a share of `people`


DIFFICULTIES = {
    "easy": Difficulty(400, 400, 200, 100, 300, 0.0, "%B %-d, %Y", 0.0),
    "medium": Difficulty(60, 60, 40, 30, 60, 0.6, "%-d %B %Y", 0.5),
    "hard": Difficulty(50, 50, 15, 12, 25, 0.8, "%Y-%m-%d", 1.0),
}

MAJORS = (
    "Biology", "Chemistry", "Physics", "Mathematics", "Economics", "History", "Philosophy", "Linguistics",
    "Computer Science", "Electrical Engineering", "Mechanical Engineering", "Civil Engineering", "Architecture",
    "Psychology", "Sociology", "Political Science", "Geology", "Astronomy", "Statistics", "Nursing",
    "Journalism", "Music", "Fine Arts", "Anthropology", "Marine Biology", "Accounting", "Law", "Medicine",
    "Agriculture", "Education",
)

BIO_BIRTH = (
    "{name} was born on {date} in {city}.",
    "{name} came into the world in {city} on {date}.",
    "Born in {city} on {date}, {name} grew up there.",
    "{name}'s life began on {date} in the city of {city}.",
)
BIO_EDUCATION = (
    "{He} studied {major} at {university}.",
    "{He} graduated from {university} with a degree in {major}.",
    "At {university}, {he} majored in {major}.",
    "{He} earned a {major} degree from {university}.",
)
BIO_CAREER = (
    "{He} works for {employer}.",
    "{He} is employed by {employer}.",
    "These days {he} has a job at {employer}.",
    "{He} joined {employer}, where {he} still works.",
)
QUESTIONS = {  # {who}: the person's name, or a description by two other attributes
    "birth_date": ("When was {who} born?", "What is the birth date of {who}?", "On which day was {who} born?"),
    "birth_city": ("Where was {who} born?", "In which city was {who} born?", "What is the birthplace of {who}?"),
    "university": ("Which university did {who} attend?", "Where did {who} go to college?",
                   "At which university did {who} study?"),
    "major": ("What did {who} study?", "What was the field of study of {who}?", "Which subject did {who} major in?"),
    "employer": ("Which company does {who} work for?", "Who employs {who}?", "Where does {who} work?"),
}
# how a described question picks its person out: attributes other than the one asked
DESCRIPTIONS = {
    "by_birth": ("the person born on {date} in {city}", ("birth_date", "birth_city")),
    "by_work": ("the {major} graduate of {university} who works at {employer}", ("major", "university", "employer")),
}
DESCRIPTION_FOR = {"birth_date": "by_work", "birth_city": "by_work", "university": "by_birth",
                   "major": "by_birth", "employer": "by_birth"}


@dataclass(frozen=True)
class SynthBioOptions:
    people: int = 1000
    difficulty: str = "medium"
    seed: int = 0

    @classmethod
    def parse(cls, text: str) -> SynthBioOptions:
        """`people=2000,difficulty=hard,seed=1` (any subset, any order)."""
        values: dict = {}
        for item in filter(None, (s.strip() for s in text.split(","))):
            key, sep, raw = item.partition("=")
            if not sep or key not in ("people", "difficulty", "seed"):
                raise UserError(f"dataset synthbio: unknown option '{item}'; options: people=N, "
                                "difficulty=easy|medium|hard, seed=N (e.g. synthbio:people=2000,difficulty=hard)")
            values[key] = raw
        try:
            options = cls(int(values.get("people", 1000)), values.get("difficulty", "medium"), int(values.get("seed", 0)))
        except ValueError:
            raise UserError(f"dataset synthbio: people and seed must be integers, got '{text}'") from None
        if options.difficulty not in DIFFICULTIES:
            raise UserError(f"dataset synthbio: difficulty must be one of {', '.join(DIFFICULTIES)}, "
                            f"got '{options.difficulty}'")
        if not 10 <= options.people <= 1_000_000:
            raise UserError(f"dataset synthbio: people must be between 10 and 1000000, got {options.people}")
        return options


# -- generation --------------------------------------------------------------------------------------
def _pool(make, size: int, rng: random.Random) -> list[str]:
    """`size` distinct values from `make()` (Faker repeats itself; give up on uniqueness after many tries)."""
    values: dict[str, None] = {}
    for _ in range(size * 50):
        values[make()] = None
        if len(values) == size:
            break
    return sorted(values, key=lambda v: rng.random())


def _pools(fake, level: Difficulty, rng: random.Random) -> dict[str, list[str]]:
    cities = _pool(fake.city, level.cities + level.universities, rng)
    uni_forms = ("University of {c}", "{c} State University", "{c} Institute of Technology", "{c} College")
    return {
        "female": _pool(fake.first_name_female, level.first_names // 2, rng),
        "male": _pool(fake.first_name_male, level.first_names - level.first_names // 2, rng),
        "last": _pool(fake.last_name, level.last_names, rng),
        "city": cities[: level.cities],
        "university": [rng.choice(uni_forms).format(c=c) for c in cities[level.cities :]],
        "employer": _pool(fake.company, level.employers, rng),
    }


def _people(count: int, pools: dict[str, list[str]], rng: random.Random) -> list[dict]:
    """`count` people with unique full names, and unique (birth date, city) and (major, university,
    employer): every description in a question picks out one person."""
    people: list[dict] = []
    taken: set = set()
    first_day, span = datetime.date(1940, 1, 1), (datetime.date(2000, 12, 31) - datetime.date(1940, 1, 1)).days
    for _ in range(count * 200):
        if len(people) == count:
            break
        gender = rng.choice(("female", "male"))
        person = {"gender": gender, "first": rng.choice(pools[gender]), "last": rng.choice(pools["last"]),
                  "birth_date": (first_day + datetime.timedelta(days=rng.randrange(span))).isoformat(),
                  "birth_city": rng.choice(pools["city"]), "university": rng.choice(pools["university"]),
                  "major": rng.choice(MAJORS), "employer": rng.choice(pools["employer"])}
        keys = {("name", person["first"], person["last"]), ("by_birth", person["birth_date"], person["birth_city"]),
                ("by_work", person["major"], person["university"], person["employer"])}
        if not keys & taken:
            taken |= keys
            people.append(person)
    if len(people) < count:
        raise UserError(f"dataset synthbio: cannot make {count} distinct people at this difficulty; use fewer people")
    return people


def _long_date(iso: str, fmt: str = "%B %-d, %Y") -> str:
    return datetime.date.fromisoformat(iso).strftime(fmt)


def _biography(person: dict, rng: random.Random) -> str:
    he, him = ("she", "her") if person["gender"] == "female" else ("he", "him")
    values = {"name": f"{person['first']} {person['last']}", "date": _long_date(person["birth_date"]),
              "city": person["birth_city"], "major": person["major"], "university": person["university"],
              "employer": person["employer"], "he": he, "He": he.capitalize(), "him": him}
    later = [rng.choice(BIO_EDUCATION), rng.choice(BIO_CAREER)]
    rng.shuffle(later)
    return " ".join(t.format(**values) for t in [rng.choice(BIO_BIRTH), *later])


def _answers(person: dict, attribute: str) -> list[str]:
    if attribute == "birth_date":
        return [_long_date(person["birth_date"]), _long_date(person["birth_date"], "%-d %B %Y")]
    return [person[attribute]]


def _questions(pid: int, person: dict, level: Difficulty, rng: random.Random) -> list[dict]:
    out = []
    for attribute in ATTRIBUTES:
        if rng.random() < level.described_share:
            template, _ = DESCRIPTIONS[DESCRIPTION_FOR[attribute]]
            who = template.format(date=_long_date(person["birth_date"], level.question_date_format),
                                  city=person["birth_city"], major=person["major"], university=person["university"],
                                  employer=person["employer"])
        else:
            who = f"{person['first']} {person['last']}"
        out.append({"id": f"sb{pid}-{attribute}", "question": rng.choice(QUESTIONS[attribute]).format(who=who),
                    "answers": _answers(person, attribute), "gold": f"bio{pid}"})
    return out


def generate(options: SynthBioOptions) -> dict:
    """The whole dataset as plain JSON-able data: passages and the three splits of questions."""
    from faker import Faker

    level = DIFFICULTIES[options.difficulty]
    fake = Faker("en_US")
    fake.seed_instance(options.seed)
    rng = random.Random(options.seed)
    asked = options.people
    people = _people(asked + round(asked * level.distractor_share), _pools(fake, level, rng), rng)
    passages = [{"id": f"bio{i}", "title": f"{p['first']} {p['last']}", "text": _biography(p, rng)}
                for i, p in enumerate(people)]
    order = list(range(asked))  # people asked about; the rest are distractors
    rng.shuffle(order)
    n_train, n_dev = round(asked * SPLIT_FRACTIONS[0]), round(asked * SPLIT_FRACTIONS[1])
    groups = {"train": order[:n_train], "dev": order[n_train : n_train + n_dev], "test": order[n_train + n_dev :]}
    splits = {}
    for split, ids in groups.items():
        questions = [q for i in ids for q in _questions(i, people[i], level, rng)]
        rng.shuffle(questions)  # so --limit keeps a mix of people and attributes
        splits[split] = questions
    return {"passages": passages, **splits}


@cache
def _cached(options: SynthBioOptions) -> dict:
    key = json.dumps({**asdict(options), "v": GENERATOR_VERSION,
                      "faker": importlib.metadata.version("faker")}, sort_keys=True)
    path = cache_dir() / "synthbio" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    data = generate(options)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    tmp.replace(path)
    return data


def load_synthbio(options: SynthBioOptions, name: str, dataset_options: DatasetOptions) -> RagDataset:
    if dataset_options.data_dir:
        raise UserError(f"dataset '{name}' is generated and takes no --data-dir")
    try:
        data = _cached(options)
    except ImportError:
        raise UserError("dataset synthbio needs Faker: pip install faker") from None
    corpus = Corpus([Passage(p["id"], p["title"], p["text"]) for p in data["passages"]])
    splits = {split: apply_limit([RagExample(q["id"], q["question"], q["answers"], [q["gold"]]) for q in data[split]],
                                 dataset_options.limit) for split in ("train", "dev", "test")}
    validate_dataset(name, splits, corpus)
    return RagDataset(name, splits["train"], splits["dev"], splits["test"], corpus)


def spec(options: SynthBioOptions, name: str) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        load=lambda dataset_options: load_synthbio(options, name, dataset_options),
        description="fictional biographies (bioS-style, Faker): retrieval has real headroom; "
                    "options synthbio:people=N,difficulty=easy|medium|hard,seed=N",
        has_context_labels=True,
        license="generated (Faker, MIT)",
        source="generated from a seed by plugins/datasets/synthbio.py",
        size=f"{options.people} people, {options.people * len(ATTRIBUTES)} questions (defaults)",
        resolve=lambda rest: spec(SynthBioOptions.parse(rest), f"synthbio:{rest}"),
    )


@hookimpl
def register_datasets(register):
    register(spec(SynthBioOptions(), "synthbio"))
