"""Helpers every dataset plugin uses: chunking, deterministic splits, limits, row validation, and reading
the public benchmarks from a local copy (jsonl, json, parquet, tsv) or the Hugging Face hub."""

from __future__ import annotations

import csv
import hashlib
import importlib
import itertools
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.types import Passage, RagExample


def chunk_words(text: str, max_words: int = 100) -> list[str]:
    """Split text into chunks of at most `max_words` words (the papers' ~100-word Wikipedia passages)."""
    words = text.split()
    return [" ".join(words[i : i + max_words]) for i in range(0, len(words), max_words)] or [""]


def chunk_document(doc_id: str, title: str, text: str, max_words: int = 100) -> list[Passage]:
    return [Passage(f"{doc_id}#{i}", title, chunk) for i, chunk in enumerate(chunk_words(text, max_words)) if chunk]


def stable_split(
    examples: list[RagExample], fractions: tuple[float, float] = (0.5, 0.2)
) -> tuple[list[RagExample], list[RagExample], list[RagExample]]:
    """Deterministic train/dev/test split by a hash of each example id (independent of order and seed)."""
    ordered = sorted(examples, key=lambda ex: hashlib.sha256(ex.id.encode()).hexdigest())
    n_train = round(len(ordered) * fractions[0])
    n_dev = round(len(ordered) * fractions[1])
    return ordered[:n_train], ordered[n_train : n_train + n_dev], ordered[n_train + n_dev :]


def apply_limit(examples: list[RagExample], limit: int | None) -> list[RagExample]:
    return examples if limit is None else examples[:limit]


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-empty line; a malformed line is a UserError naming it."""
    if not path.is_file():
        raise UserError(f"missing file {path}")
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, row


def require_str(row: dict, field: str, where: str, allow_empty: bool = False) -> str:
    value = row.get(field)
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise UserError(f"{where}: field '{field}' must be a non-empty string")
    return value


def require_str_list(row: dict, field: str, where: str, allow_empty: bool = False, default: list | None = None) -> list[str]:
    if field not in row and default is not None:
        return default
    value = row.get(field)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or (not allow_empty and not value):
        need = "a list of strings" if allow_empty else "a non-empty list of strings"
        raise UserError(f"{where}: field '{field}' must be {need}")
    return value


def validate_dataset(name: str, splits: dict[str, list[RagExample]], corpus) -> None:
    """Checks every dataset gets before model work: non-empty splits, unique ids, labels in the corpus."""
    if len(corpus) == 0:
        raise UserError(f"dataset '{name}': the corpus is empty")
    for split, examples in splits.items():
        seen: set[str] = set()
        for ex in examples:
            if ex.id in seen:
                raise UserError(f"dataset '{name}' {split}: duplicate example id '{ex.id}'")
            seen.add(ex.id)
        missing = [(ex.id, pid) for ex in examples for pid in ex.gold_passage_ids if corpus.row_of(pid) is None]
        if missing:
            first = ", ".join(f"{eid}→{pid}" for eid, pid in missing[:3])
            raise UserError(
                f"dataset '{name}' {split}: {len(missing)} context label(s) point at passage ids not in the corpus "
                f"(first: {first})"
            )


def limit_corpus(dataset, max_passages: int):
    """The dataset over a smaller corpus: the first `max_passages` passages plus every gold passage of
    every kept example, in corpus order. For quick runs; the task gets easier, so such runs say so."""
    from harness.types import Corpus, RagDataset

    corpus = dataset.corpus
    gold_rows = {corpus.row_of(pid) for split in (dataset.train, dataset.dev, dataset.test) for ex in split
                 for pid in ex.gold_passage_ids}
    keep = sorted(set(range(min(max_passages, len(corpus)))) | {r for r in gold_rows if r is not None})
    return RagDataset(dataset.name, dataset.train, dataset.dev, dataset.test, Corpus([corpus[r] for r in keep]))


# -- benchmark datasets: upstream files and the hub -------------------------------------------------
DEV_FRACTION = 0.1  # share of an upstream train split held out as the harness dev split
Rows = Iterator[tuple[str, dict]]  # (where: "file:line", "file row N" or "hub-id split row N", the row)


def require_dict(row: dict, field: str, where: str) -> dict:
    value = row.get(field)
    if not isinstance(value, dict):
        raise UserError(f"{where}: field '{field}' must be an object")
    return value


def require_list(row: dict, field: str, where: str) -> list:
    value = row.get(field)
    if not isinstance(value, list):
        raise UserError(f"{where}: field '{field}' must be a list")
    return value


def require_id(row: dict, field: str, where: str) -> str:
    """An id as upstream ships it (string or integer), as a non-empty string."""
    value = row.get(field)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return require_str(row, field, where)


def require_answers(values: Any, field: str, where: str) -> list[str]:
    """Gold answers: a non-empty list of non-empty strings, duplicates dropped in order."""
    if not (isinstance(values, list) and all(isinstance(v, str) for v in values) and any(v.strip() for v in values)):
        raise UserError(f"{where}: field '{field}' must be a non-empty list of non-empty strings (the answers)")
    return list(dict.fromkeys(v for v in values if v.strip()))


def read_rows(path: Path, flatten_json: Callable[[Any, Path], Rows] | None = None,
              columns: list[str] | None = None, batch_rows: int = 1024) -> Rows:
    """Rows of a .jsonl, .json, .parquet, .tsv or .csv file, each with where it came from.

    A .json file is a list of objects, JSON lines (what `Dataset.to_json` writes), or a document that
    `flatten_json` turns into rows (SQuAD's `data[].paragraphs[].qas[]`, TriviaQA's `Data[]`).
    Parquet is read `batch_rows` at a time, only `columns` if given.
    """
    if not path.is_file():
        raise UserError(f"missing file {path}")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return ((f"{path}:{lineno}", row) for lineno, row in read_jsonl(path))
    if suffix == ".json":
        return _json_rows(path, flatten_json)
    if suffix == ".parquet":
        return _parquet_rows(path, columns, batch_rows)
    if suffix in (".tsv", ".csv"):
        return _delimited_rows(path, "\t" if suffix == ".tsv" else ",")
    raise UserError(f"{path}: unsupported file type '{suffix}' (use .jsonl, .json, .parquet, .tsv or .csv)")


def _json_rows(path: Path, flatten_json) -> Rows:
    try:
        with path.open(encoding="utf-8") as fh:
            doc = json.load(fh)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # JSON lines under a .json name
            yield from ((f"{path}:{lineno}", row) for lineno, row in read_jsonl(path))
            return
        raise UserError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if isinstance(doc, dict) and flatten_json is not None:
        yield from flatten_json(doc, path)
    elif isinstance(doc, list):
        for i, row in enumerate(doc):
            if not isinstance(row, dict):
                raise UserError(f"{path}[{i}]: expected a JSON object, got {type(row).__name__}")
            yield f"{path}[{i}]", row
    else:
        raise UserError(f"{path}: expected a list of JSON objects (or JSON lines), got {type(doc).__name__}")


def _parquet_rows(path: Path, columns: list[str] | None, batch_rows: int) -> Rows:
    pq = import_optional("pyarrow.parquet", "reading parquet files")
    try:
        parquet = pq.ParquetFile(path)
        batches = parquet.iter_batches(batch_size=batch_rows, columns=columns)
        n = 0
        for batch in batches:
            for row in batch.to_pylist():
                n += 1
                yield f"{path} row {n}", row
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise UserError(f"{path}: not a readable parquet file ({exc})") from None


def _delimited_rows(path: Path, delimiter: str) -> Rows:
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        for row in reader:
            if None in row:
                raise UserError(f"{path}:{reader.line_num}: more cells than the header has columns")
            yield f"{path}:{reader.line_num}", row


def import_optional(module: str, purpose: str):
    """Import a heavy optional dependency when it is needed, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{purpose} needs the package '{module.split('.')[0]}': "
                        "pip install 'rag-harness[datasets]'") from None


@dataclass(frozen=True)
class UpstreamSplit:
    """One labelled split of a public dataset: its hub id, config and split, and the file names a local
    copy may have (globs relative to --data-dir, tried in order; the first that matches wins)."""

    hub_id: str
    config: str | None
    split: str
    files: tuple[str, ...]


def split_files(split: str, config_dirs: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The names a local copy of `split` may have: what `to_json`/`to_parquet` write, hub parquet shards
    (also inside a config folder of a hub clone), and the upstream release's own file names."""
    names = [f"{split}.jsonl", f"{split}.json", f"{split}.parquet", f"{split}.tsv", f"{split}-*.parquet"]
    for folder in (*config_dirs, "data"):
        names.append(f"{folder}/{split}-*.parquet")
    return (*names, *extra)


def upstream_rows(dataset: str, source: UpstreamSplit, data_dir: str | None,
                  flatten_json: Callable[[Any, Path], Rows] | None = None) -> Rows:
    """The rows of one upstream split: from --data-dir when given (files or a `save_to_disk` folder),
    else from the Hugging Face hub."""
    if data_dir is None:
        ds = load_hub_split(dataset, source.hub_id, source.config, source.split,
                            f"{source.files[0]} or {source.files[2]}")
        return ((f"{source.hub_id} {source.split} row {i}", row) for i, row in enumerate(ds, start=1))
    root = Path(data_dir)
    if not root.is_dir():
        raise UserError(f"--data-dir {root} is not a directory")
    if (root / "dataset_dict.json").is_file():  # DatasetDict.save_to_disk(DIR)
        datasets = import_optional("datasets", f"dataset '{dataset}' from a save_to_disk folder")
        saved = datasets.load_from_disk(str(root))
        if source.split not in saved:
            raise UserError(f"dataset '{dataset}': {root} has no split '{source.split}' (has {', '.join(saved)})")
        return ((f"{root} {source.split} row {i}", row) for i, row in enumerate(saved[source.split], start=1))
    for pattern in source.files:
        files = sorted(p for p in root.glob(pattern) if p.is_file())
        if files:
            return itertools.chain.from_iterable(read_rows(p, flatten_json) for p in files)
    raise UserError(f"dataset '{dataset}': no '{source.split}' split in {root} "
                    f"(looked for {', '.join(source.files)}); see docs/datasets.md")


def load_hub_split(dataset: str, hub_id: str, config: str | None, split: str, local_files: str):
    """`datasets.load_dataset(hub_id, config, split=split)`, or one clear line saying how to go without the hub."""
    datasets = import_optional("datasets", f"dataset '{dataset}' from the Hugging Face hub ({hub_id})")
    name = f"{hub_id}" + (f" ({config})" if config else "")
    try:
        return datasets.load_dataset(hub_id, config, split=split)
    except Exception as exc:  # offline, unknown id, no access: the library raises many types
        reason = (str(exc).strip().splitlines() or [""])[0][:300]
        raise UserError(
            f"dataset '{dataset}': could not load {name} split '{split}' from the Hugging Face hub "
            f"({type(exc).__name__}: {reason}). Without network access (or with HF_HUB_OFFLINE=1) pass "
            f"--data-dir DIR with a local copy, e.g. {local_files}; see docs/datasets.md"
        ) from None


def split_off(examples: list[RagExample], fraction: float = DEV_FRACTION) -> tuple[list[RagExample], list[RagExample]]:
    """Move `fraction` of the examples, chosen by a hash of each id, into a second list (e.g. dev out of an
    upstream train split). Deterministic, independent of order and seed; both lists keep the input order."""
    n_held = max(1, round(len(examples) * fraction)) if len(examples) > 1 else 0
    by_hash = sorted(examples, key=lambda ex: hashlib.sha256(ex.id.encode()).hexdigest())
    held = {ex.id for ex in by_hash[:n_held]}
    return [ex for ex in examples if ex.id not in held], [ex for ex in examples if ex.id in held]


def train_dev_test(train: list[RagExample], validation: list[RagExample], limit: int | None):
    """Upstream train + validation → harness train, dev (a hashed slice of upstream train) and test
    (the upstream validation split: the set papers report), each capped at `limit`."""
    rest, dev = split_off(train)
    return apply_limit(rest, limit), apply_limit(dev, limit), apply_limit(validation, limit)
