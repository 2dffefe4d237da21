"""Rows of dataset files, each with where it came from, and the checks every field gets.

A dataset plugin reads its rows from a local copy (.jsonl, .json, .parquet, .tsv, .csv, or a
`save_to_disk` folder given with --data-dir) or from the Hugging Face hub (`upstream_rows`), and checks
each field with the `require_*` helpers, which name the file and line of a bad row in one UserError.
"""

from __future__ import annotations

import csv
import itertools
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.optional import import_optional

Rows = Iterator[tuple[str, dict]]  # (where: "file:line", "file row N" or "hub-id split row N", the row)


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-empty line; a malformed line is a UserError naming it."""
    if not path.is_file():
        raise UserError(f"missing file {path}")
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = decode_line(raw, path, lineno)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise UserError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            yield lineno, row


def decode_line(raw: bytes, path: Path, lineno: int) -> str:
    """One line of a UTF-8 text file; bytes that are not UTF-8 are a UserError naming file, line, column."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _utf8_error(path, lineno, raw, exc) from None


def utf8_error(path: Path) -> UserError:
    """The error for the first line of `path` that is not UTF-8 (for readers that decode whole files)."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return _utf8_error(path, lineno, raw, exc)
    return UserError(f"{path}: not valid UTF-8; save the file as UTF-8")


def _utf8_error(path: Path, lineno: int, raw: bytes, exc: UnicodeDecodeError) -> UserError:
    return UserError(f"{path}:{lineno}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                     "save the file as UTF-8")


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


def require_dict(row: dict, field: str, where: str) -> dict:
    value = row.get(field)
    if not isinstance(value, dict):
        raise UserError(f"{where}: field '{field}' must be an object")
    return value


def require_id(row: dict, field: str, where: str) -> str:
    """An id as upstream ships it (string or integer), as a non-empty string."""
    value = row.get(field)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{where}: field '{field}' must be a non-empty string or an integer, got {type(value).__name__}")
    return value


def require_answers(values: Any, field: str, where: str) -> list[str]:
    """Gold answers: a non-empty list of non-empty strings, duplicates dropped in order."""
    if not (isinstance(values, list) and all(isinstance(v, str) for v in values) and any(v.strip() for v in values)):
        raise UserError(f"{where}: field '{field}' must be a non-empty list of non-empty strings (the answers)")
    return list(dict.fromkeys(v for v in values if v.strip()))


# -- reading files ---------------------------------------------------------------------------------
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
    except UnicodeDecodeError:
        raise utf8_error(path) from None
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
        try:
            for row in reader:
                if None in row:
                    raise UserError(f"{path}:{reader.line_num}: more cells than the header has columns")
                yield f"{path}:{reader.line_num}", row
        except UnicodeDecodeError:
            raise utf8_error(path) from None


# -- the public benchmarks: a local copy or the hub -------------------------------------------------
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
