"""Fixtures for the benchmark dataset plugins: upstream-format files written by the tests, and the hub
switched off (HF_HUB_OFFLINE=1) so a loader that reached for it would fail loudly."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from harness import plugins
from harness.types import DatasetOptions, RagDataset

# MedRAG/wikipedia rows: id, title, content, contents (= title + ". " + content). "Paris" has two chunks.
WIKI_CHUNKS = [
    ("wiki20220301en000_0", "Paris", "Paris is the capital and most populous city of France."),
    ("wiki20220301en000_1", "Paris", "The city is a major centre of finance, diplomacy, commerce and culture."),
    ("wiki20220301en001_0", "France", "France is a country in Western Europe whose capital is Paris."),
    ("wiki20220301en002_0", "George Rankin", "George James Rankin was an Australian soldier and politician."),
    ("wiki20220301en003_0", "Ian Rankin", "Ian Rankin is a Scottish crime writer, best known for his Inspector Rebus novels."),
    ("wiki20220301en004_0", "Edinburgh", "Edinburgh is the capital city of Scotland."),
    ("wiki20220301en005_0", "Arthur's Magazine", "Arthur's Magazine was an American literary periodical first published in 1844."),  # noqa: E501
    ("wiki20220301en006_0", "First for Women", "First for Women is a woman's magazine published by Bauer Media Group, started in 1989."),  # noqa: E501
    ("wiki20220301en007_0", "Nile", "The Nile is a major north-flowing river in northeastern Africa."),
]


@pytest.fixture(autouse=True)
def hub_disabled(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_json(path: Path, doc) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict], schema=None) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def write_tsv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return path


def medrag_rows(chunks=WIKI_CHUNKS) -> list[dict]:
    return [{"id": i, "title": t, "content": c, "contents": f"{t}. {c}"} for i, t, c in chunks]


def write_wiki_corpus(root: Path, name: str = "corpus.jsonl") -> Path:
    """The MedRAG Wikipedia chunk format, as `corpus.jsonl` (or the given name) in `root`."""
    path = root / name
    if path.suffix == ".parquet":
        return write_parquet(path, medrag_rows())
    return write_jsonl(path, medrag_rows())


def load(name: str, data_dir: Path | None, limit: int | None = None) -> RagDataset:
    """Through the real plugin registry, as `harness run --dataset NAME` does."""
    plugins.load_plugins()
    spec = plugins.datasets().get(name)
    return spec.load(DatasetOptions(data_dir=str(data_dir) if data_dir else None, limit=limit))


def all_examples(dataset: RagDataset):
    return [*dataset.train, *dataset.dev, *dataset.test]
