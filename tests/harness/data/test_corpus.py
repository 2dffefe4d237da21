"""The memory-mapped corpus: same answers as the in-memory Corpus, bounded memory, cached conversion, bad rows."""

import json
import os
import tracemalloc

import pyarrow as pa
import pytest

from harness.data.corpus import ArrowCorpus, find_corpus_files, open_corpus_files
from harness.errors import UserError
from harness.types import Corpus, Passage


def passages(n: int, words: int = 6) -> list[Passage]:
    return [Passage(f"wiki_{i}", f"Article {i // 3}", " ".join(f"w{i}x{j}" for j in range(words))) for i in range(n)]


def write_corpus(path, items: list[Passage], text_field: str = "text"):
    with path.open("w") as fh:
        for p in items:
            fh.write(json.dumps({"id": p.id, "title": p.title, text_field: p.text}) + "\n")
    return path


def test_answers_like_the_in_memory_corpus(tmp_path):
    items = passages(50)
    arrow = open_corpus_files([write_corpus(tmp_path / "corpus.jsonl", items)], batch_rows=7)
    memory = Corpus(items)
    assert len(arrow) == len(memory) == 50
    assert [arrow[i] for i in range(50)] == items
    assert all(arrow.row_of(p.id) == memory.row_of(p.id) for p in items)
    assert arrow.row_of("wiki_50") is None and memory.row_of("wiki_50") is None
    assert list(arrow.iter_texts(8)) == list(memory.iter_texts(8))  # batches cross the 7-row record batches
    assert arrow.fingerprint() == memory.fingerprint()  # one index cache key for the same passages
    with pytest.raises(IndexError):
        arrow[50]


def test_reads_a_corpus_larger_than_it_keeps_in_memory_in_bounded_batches(tmp_path):
    source = write_corpus(tmp_path / "corpus.jsonl", passages(20_000, words=100))
    size = source.stat().st_size  # ~19 MB
    open_corpus_files([write_corpus(tmp_path / "warm.jsonl", passages(2))])  # lazy imports happen here, not below
    tracemalloc.start()
    try:
        corpus = open_corpus_files([source], batch_rows=100)
        _, build_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        arrow_before = pa.total_allocated_bytes()
        seen = 0
        for texts in corpus.iter_texts(64):
            seen += len(texts)
        arrow_growth = pa.total_allocated_bytes() - arrow_before
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == len(corpus) == 20_000
    # converting holds one 100-row batch plus ~40 bytes per passage (id and title hashes, their sort): ~1 MB
    assert build_peak < size / 10, (build_peak, size)
    # reading all of it: one 64-passage batch at a time out of the memory map, nothing copied into Arrow buffers
    assert read_peak < size / 50 and arrow_growth < size / 50, (read_peak, arrow_growth, size)
    assert not any(isinstance(v, (list, tuple, dict)) and len(v) >= 1000 for v in vars(corpus).values())
    with pa.ipc.open_file(pa.memory_map(str(corpus.folder / "passages.arrow"))) as reader:
        sizes = [reader.get_batch(i).num_rows for i in range(reader.num_record_batches)]
    assert max(sizes) == 100 and sum(sizes) == 20_000


def test_the_conversion_is_cached_and_redone_when_the_source_changes(tmp_path):
    source = write_corpus(tmp_path / "corpus.jsonl", passages(10))
    first = open_corpus_files([source])
    stamp = (first.folder / "meta.json").stat().st_mtime_ns
    again = open_corpus_files([source])
    assert again.folder == first.folder and (again.folder / "meta.json").stat().st_mtime_ns == stamp
    write_corpus(source, passages(11))
    os.utime(source, ns=(stamp + 10**9, stamp + 10**9))
    changed = open_corpus_files([source])
    assert changed.folder != first.folder and len(changed) == 11


def test_parquet_and_tsv_with_medrag_and_dpr_columns(tmp_path):
    import pyarrow.parquet as pq

    items = passages(5)
    medrag = [{"id": p.id, "title": p.title, "content": p.text, "contents": f"{p.title}. {p.text}"} for p in items]
    pq.write_table(pa.Table.from_pylist(medrag), tmp_path / "corpus.parquet")
    from_parquet = open_corpus_files([tmp_path / "corpus.parquet"])
    assert [from_parquet[i] for i in range(5)] == items  # `content`, not `contents`
    (tmp_path / "psgs_w100.tsv").write_text("id\ttext\ttitle\n" + "".join(f"{i}\t{p.text}\t{p.title}\n" for i, p in
                                                                         enumerate(items, 1)))
    from_tsv = open_corpus_files([tmp_path / "psgs_w100.tsv"])
    assert from_tsv[0] == Passage("1", items[0].title, items[0].text) and from_tsv.row_of("5") == 4


def test_titles_match_whatever_their_case_spacing_or_underscores(tmp_path):
    items = [Passage("a", "Barack Obama", "x"), Passage("b", "Obama", "y"), Passage("c", "barack  obama", "z"),
             Passage("d", "", "no title")]
    corpus = open_corpus_files([write_corpus(tmp_path / "corpus.jsonl", items)])
    assert corpus.ids_with_title("Barack_Obama") == ["a", "c"]
    assert corpus.ids_with_title("OBAMA") == ["b"]
    assert corpus.ids_with_title("Michelle Obama") == [] and corpus.ids_with_title("") == []


@pytest.mark.parametrize("rows, message", [
    ([], "has no passages"),
    ([{"id": "a", "text": "x"}, {"id": 7, "title": "T", "text": ""}], r"corpus.jsonl:2: field 'text' must be a non-empty"),
    ([{"id": "a", "title": 3, "text": "x"}], r"corpus.jsonl:1: field 'title' must be a string"),
    ([{"id": "a", "text": "x"}, {"id": "b", "text": "y"}, {"id": "a", "text": "z"}],
     r"corpus.jsonl:3: field 'id': duplicate passage id 'a' \(first at .*corpus.jsonl:1\)"),
])
def test_bad_corpus_rows_name_file_line_and_field(tmp_path, rows, message):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UserError, match=message):
        open_corpus_files([path])
    assert not list((tmp_path.parent).glob("**/corpora/.corpus-*"))  # no half-written store left behind


def test_a_duplicate_in_a_later_parquet_shard_names_its_row(tmp_path):
    import pyarrow.parquet as pq

    folder = tmp_path / "corpus"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist([{"id": "a", "title": "", "text": "x"}]), folder / "part-0.parquet")
    pq.write_table(pa.Table.from_pylist([{"id": "b", "title": "", "text": "y"}, {"id": "a", "title": "", "text": "z"}]),
                   folder / "part-1.parquet")
    files = find_corpus_files(tmp_path)
    assert [f.name for f in files] == ["part-0.parquet", "part-1.parquet"]
    with pytest.raises(UserError, match=r"part-1.parquet row 2: field 'id': duplicate passage id 'a' "
                                        r"\(first at .*part-0.parquet row 1\)"):
        open_corpus_files(files)


def test_an_arrow_corpus_reopens_from_its_folder(tmp_path):
    corpus = open_corpus_files([write_corpus(tmp_path / "corpus.jsonl", passages(4))])
    reopened = ArrowCorpus(corpus.folder)
    assert reopened[3] == corpus[3] and reopened.fingerprint() == corpus.fingerprint()
