"""From rows to datasets: what a dataset plugin uses to read, check and split its data.

    rows.py    reading JSONL / Parquet / CSV rows and hub splits; `require_*` field checks naming file and line
    splits.py  deterministic train/dev/test splits, `--limit`, chunking documents into passages, validation
    corpus.py  corpora too large for a list: Arrow files, the Wikipedia passages of DPR and the packaged ones

Public (plugins import these from `harness.data`): the names in `__all__`.
"""

from harness._exports import exports

__all__, __getattr__ = exports(__name__, {
    "rows": ("UpstreamSplit", "read_jsonl", "read_rows", "require_answers", "require_dict", "require_id", "require_str",
             "require_str_list", "split_files", "upstream_rows"),
    "splits": ("apply_limit", "chunk_document", "chunk_words", "limit_corpus", "stable_split", "train_dev_test",
               "validate_dataset"),
    "corpus": ("WIKIPEDIA_HUB_ID", "load_wikipedia_corpus", "write_corpus_folder"),
    "harness.metrics": ("normalize_answer",),
})
