"""Corpora too large for Python objects: passages in a memory-mapped Arrow file, found by row, id or title.

    corpus = open_corpus_files([Path("corpus.jsonl")])  # converted once into cache_dir()/corpora/<key>/
    corpus[12]                      # Passage, read from the memory map
    corpus.row_of("wiki_12")        # 12 (a binary search over sorted 64-bit id hashes)
    corpus.ids_with_title("Paris")  # the ids of every passage of that article

A source (`corpus.jsonl`, `corpus.parquet`, `corpus.tsv`, a `corpus/` folder of such files, or the
MedRAG Wikipedia chunks on the hub) is read once, `batch_rows` passages at a time, validated, and written
as record batches of an uncompressed Arrow IPC file that later runs memory-map: the operating system keeps
the pages it needs, Python never holds the passages. During that one conversion the process holds one batch
plus 16 bytes per passage for the id and title hashes, ~40 while they are sorted at the end (about 1.2 GB for
the 29.9M MedRAG chunks).

A corpus folder holds
    passages.arrow                   columns id, title, text
    id_hash.npy, id_rows.npy         blake2b-64 of each id, sorted, and the row each came from
    title_hash.npy, title_rows.npy   the same for normalized titles (case, spaces and underscores folded)
    meta.json                        passage count, fingerprint, sources
"""

from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from harness.config import cache_dir
from harness.data.rows import load_hub_split, read_rows, require_id
from harness.errors import UserError
from harness.optional import import_optional
from harness.runtime import cache as cache_entries
from harness.runtime.progress import progress
from harness.types import Corpus, Passage

FORMAT_VERSION = 1
BATCH_ROWS = 65_536
TEXT_FIELDS = ("text", "content", "contents")  # MedRAG has `content` (and `contents` = title + content)
CORPUS_SUFFIXES = (".jsonl", ".parquet", ".tsv", ".csv")
WIKIPEDIA_HUB_ID = "MedRAG/wikipedia"
RowSource = Callable[[], Iterator[tuple[str, dict]]]  # a fresh iterator of (where, row) on each call


def _pyarrow():
    return import_optional("pyarrow", "a streamed corpus")


def hash64(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "little")


def normalize_title(title: str) -> str:
    """What makes two spellings of a Wikipedia title the same: `Barack_Obama` = `barack obama`."""
    return " ".join(title.replace("_", " ").split()).casefold()


def passage_fields(row: dict, where: str) -> tuple[str, str, str]:
    """(id, title, text) of one corpus row; the text is `text`, else `content`, else `contents`."""
    pid = require_id(row, "id", where)
    title = row.get("title") or ""
    if not isinstance(title, str):
        raise UserError(f"{where}: field 'title' must be a string")
    field = next((f for f in TEXT_FIELDS if f in row), None)
    if field is None:
        raise UserError(f"{where}: no passage text (expected a field {', '.join(repr(f) for f in TEXT_FIELDS)})")
    text = row[field]
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"{where}: field '{field}' must be a non-empty string (empty passage)")
    return pid, title, text


# -- writing a corpus folder ---------------------------------------------------------------------
class _ArrowCorpusWriter:
    """Appends validated passages to the Arrow file one batch at a time; hashes ids and titles as it goes."""

    def __init__(self, folder: Path, batch_rows: int):
        pa = _pyarrow()
        self.pa, self.batch_rows = pa, batch_rows
        self.schema = pa.schema([("id", pa.string()), ("title", pa.string()), ("text", pa.string())])
        self.sink = pa.OSFile(str(folder / "passages.arrow"), "wb")
        self.writer = pa.ipc.new_file(self.sink, self.schema)
        self.columns: tuple[list[str], list[str], list[str]] = ([], [], [])
        self.id_hash: list[np.ndarray] = []
        self.title_hash: list[np.ndarray] = []
        self.fingerprint = hashlib.sha256()
        self.count = 0

    def add(self, pid: str, title: str, text: str) -> None:
        for column, value in zip(self.columns, (pid, title, text)):
            column.append(value)
        # the same bytes Corpus.fingerprint hashes, so both give one key for the same passages
        self.fingerprint.update(f"{pid}\x1f{title}\x1f{text}\x1e".encode())
        if len(self.columns[0]) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        ids, titles, texts = self.columns
        if not ids:
            return
        self.writer.write_batch(self.pa.record_batch([ids, titles, texts], schema=self.schema))
        self.id_hash.append(np.fromiter((hash64(i) for i in ids), np.uint64, len(ids)))
        self.title_hash.append(np.fromiter((hash64(normalize_title(t)) for t in titles), np.uint64, len(titles)))
        self.count += len(ids)
        self.columns = ([], [], [])

    def close(self) -> None:
        self.flush()
        self.writer.close()
        self.sink.close()


def write_corpus_folder(rows: RowSource, folder: Path, batch_rows: int = BATCH_ROWS, sources: list[str] | None = None) -> None:
    """Read `rows()` once into a corpus folder `folder` (see the module docstring); bad rows are UserErrors."""
    writer = _ArrowCorpusWriter(folder, batch_rows)
    try:
        for where, row in progress(rows(), "converting corpus", unit="passages"):
            writer.add(*passage_fields(row, where))
    finally:
        writer.close()
    if writer.count == 0:
        raise UserError(f"the corpus {', '.join(sources or [])} has no passages")
    for name, parts in (("id", writer.id_hash), ("title", writer.title_hash)):
        hashes = np.concatenate(parts)
        order = np.argsort(hashes, kind="stable")
        np.save(folder / f"{name}_hash.npy", hashes[order])
        np.save(folder / f"{name}_rows.npy", order.astype(np.int64))
        del hashes, order
    meta = {"format": FORMAT_VERSION, "count": writer.count, "fingerprint": writer.fingerprint.hexdigest()[:16],
            "sources": sources or []}
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))
    _check_unique_ids(ArrowCorpus(folder), rows)


def _check_unique_ids(corpus: "ArrowCorpus", rows: RowSource) -> None:
    """Equal ids have equal hashes, adjacent once sorted: compare the ids within each run of equal hashes,
    and name both rows of a duplicate."""
    hashes, order = corpus._id_hash, corpus._id_rows
    run_start, previous = 0, -2
    for i in np.flatnonzero(hashes[1:] == hashes[:-1]):
        run_start = run_start if i == previous + 1 else i
        previous = i
        pid = corpus.passage_id(int(order[i + 1]))
        for j in range(run_start, i + 1):
            if corpus.passage_id(int(order[j])) == pid:
                first, second = sorted((int(order[j]), int(order[i + 1])))
                raise UserError(f"{_where(rows, second)}: field 'id': duplicate passage id '{pid}' "
                                f"(first at {_where(rows, first)})")


def _where(rows: RowSource, row: int) -> str:
    """Where passage `row` came from (an error path: reads the source again up to that row)."""
    for n, (where, _) in enumerate(rows()):
        if n == row:
            return where
    return f"row {row + 1}"


def _cached_corpus_folder(key_parts: list, rows: RowSource, sources: list[str], batch_rows: int) -> "ArrowCorpus":
    key = hashlib.sha256(json.dumps([FORMAT_VERSION, key_parts], sort_keys=True).encode()).hexdigest()[:20]
    folder = cache_dir() / "corpora" / key
    cached = cache_entries.load_verified(folder, ArrowCorpus, "cached corpus")
    if cached is not None:
        return cached
    # atomic: a crash never leaves a half-written corpus folder; a damaged one is rebuilt (and said)
    return ArrowCorpus(cache_entries.publish(folder, lambda tmp: write_corpus_folder(rows, tmp, batch_rows, sources)))


# -- reading a corpus folder------------------------------------------------------------------------
class ArrowCorpus(Corpus):
    """A Corpus whose passages stay in a memory-mapped Arrow file; same four methods, plus title lookup."""

    def __init__(self, folder: Path):  # no super().__init__(): that would build a list of passages
        pa = _pyarrow()
        self.folder = Path(folder)
        self.meta = json.loads((self.folder / "meta.json").read_text())
        self._mmap = pa.memory_map(str(self.folder / "passages.arrow"), "r")
        self._table = pa.ipc.open_file(self._mmap).read_all()  # zero-copy views into the map
        self._columns = {name: self._table.column(name) for name in ("id", "title", "text")}
        lengths = [len(chunk) for chunk in self._columns["id"].chunks]
        self._starts = [0, *np.cumsum(lengths)[:-1].tolist()]
        self._id_hash, self._id_rows, self._title_hash, self._title_rows = (
            np.load(self.folder / f"{name}.npy", mmap_mode="r")
            for name in ("id_hash", "id_rows", "title_hash", "title_rows")
        )

    def __len__(self) -> int:
        return self._table.num_rows

    def _value(self, column: str, row: int) -> str:
        chunk = bisect.bisect_right(self._starts, row) - 1
        return self._columns[column].chunk(chunk)[row - self._starts[chunk]].as_py()

    def __getitem__(self, row: int) -> Passage:
        if not 0 <= row < len(self):
            raise IndexError(f"corpus row {row} out of range 0..{len(self) - 1}")
        return Passage(self._value("id", row), self._value("title", row), self._value("text", row))

    def passage_id(self, row: int) -> str:
        return self._value("id", row)

    def _rows_with_hash(self, hashes: np.ndarray, rows: np.ndarray, value: str) -> np.ndarray:
        h = np.uint64(hash64(value))
        lo, hi = np.searchsorted(hashes, h, "left"), np.searchsorted(hashes, h, "right")
        return np.sort(np.asarray(rows[lo:hi]))

    def row_of(self, passage_id: str) -> int | None:
        for row in self._rows_with_hash(self._id_hash, self._id_rows, passage_id):
            if self.passage_id(int(row)) == passage_id:
                return int(row)
        return None

    def ids_with_title(self, title: str) -> list[str]:
        """Ids of the passages whose title matches `title` (normalized), in corpus order."""
        wanted = normalize_title(title)
        if not wanted:
            return []
        rows = self._rows_with_hash(self._title_hash, self._title_rows, wanted)
        return [self.passage_id(int(r)) for r in rows if normalize_title(self._value("title", int(r))) == wanted]

    def iter_texts(self, batch_size: int, start: int = 0, stop: int | None = None) -> Iterator[list[str]]:
        stop = len(self) if stop is None else min(stop, len(self))
        for first in range(start, stop, batch_size):
            part = self._table.slice(first, min(batch_size, stop - first))
            titles, texts = part.column("title").to_pylist(), part.column("text").to_pylist()
            yield [Passage("", title, text).as_text() for title, text in zip(titles, texts)]

    def fingerprint(self) -> str:
        """Computed once at conversion over the same bytes as Corpus.fingerprint."""
        return self.meta["fingerprint"]


# -- sources ------------------------------------------------------------------------------------
def corpus_rows(files: list[Path], batch_rows: int = BATCH_ROWS) -> Iterator[tuple[str, dict]]:
    """Rows of every file in turn; parquet files are read only for the id, title and text columns."""
    for path in files:
        columns = None
        if path.suffix.lower() == ".parquet":
            names = _parquet_names(path)
            text = next((f for f in TEXT_FIELDS if f in names), None)
            columns = [c for c in ("id", "title", text) if c in names] if text else None
        yield from read_rows(path, columns=columns, batch_rows=batch_rows)


def _parquet_names(path: Path) -> list[str]:
    pq = import_optional("pyarrow.parquet", "reading parquet files")
    try:
        return pq.read_schema(path).names
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable parquet file ({exc})") from None


def open_corpus_files(files: list[Path], batch_rows: int = BATCH_ROWS) -> ArrowCorpus:
    """The corpus folder of these files, converted on first use; a changed file (size or mtime) is converted again."""
    stats = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    return _cached_corpus_folder(stats, lambda: corpus_rows(files, batch_rows), [str(p) for p in files], batch_rows)


def open_hub_corpus(dataset: str, hub_id: str = WIKIPEDIA_HUB_ID, batch_rows: int = BATCH_ROWS) -> ArrowCorpus:
    """A corpus dataset from the Hugging Face hub (train split), converted into a corpus folder on first use."""
    ds = load_hub_split(dataset, hub_id, None, "train", "corpus.jsonl, corpus.parquet or a corpus/ folder")
    key = [hub_id, getattr(ds, "_fingerprint", None), [f.get("filename") for f in ds.cache_files]]

    def rows() -> Iterator[tuple[str, dict]]:
        n = 0
        for batch in ds.iter(batch_size=batch_rows):
            for values in zip(*batch.values()):
                n += 1
                yield f"{hub_id} row {n}", dict(zip(batch.keys(), values))

    return _cached_corpus_folder(key, rows, [hub_id], batch_rows)


def find_corpus_files(root: Path) -> list[Path]:
    """`corpus.jsonl|parquet|tsv|csv` in `root`, else every such file under `root/corpus/` (sorted,
    hidden folders such as .git skipped), else []."""
    for suffix in CORPUS_SUFFIXES:
        if (root / f"corpus{suffix}").is_file():
            return [root / f"corpus{suffix}"]
    folder = root / "corpus"
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in CORPUS_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def load_wikipedia_corpus(dataset: str, data_dir: str | None) -> ArrowCorpus:
    """The corpus in --data-dir (see find_corpus_files), or the MedRAG Wikipedia chunks from the hub."""
    if data_dir is None:
        return open_hub_corpus(dataset)
    files = find_corpus_files(Path(data_dir))
    if not files:
        raise UserError(
            f"dataset '{dataset}': no corpus in {data_dir}: add corpus.jsonl, corpus.parquet or corpus.tsv "
            "(fields id, title, text or content), or a corpus/ folder of such files (e.g. a link to a clone "
            "of MedRAG/wikipedia); see docs/datasets.md"
        )
    return open_corpus_files(files)
