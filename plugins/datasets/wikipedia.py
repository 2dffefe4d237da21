"""`wikipedia`: your own questions over a Wikipedia-scale corpus read memory-mapped, never into a list.

    DIR/corpus.jsonl      {"id": "wiki_1", "title": "Paris", "text": "Paris is ..."}   (or "content", as MedRAG)
    DIR/train.jsonl ...   the `local` question format (id, question, answers, optional gold_passage_ids)

The corpus may also be corpus.parquet, corpus.tsv (DPR's psgs_w100.tsv has id/text/title) or a corpus/
folder of such files: a link to a clone of the MedRAG Wikipedia chunks (hub MedRAG/wikipedia, 29,913,202
snippets of at most 1,000 characters, `chunk/*.jsonl` with id, title, content, contents) is the corpus
000_* retrieves from. The same corpus backs `popqa`, `nq_open`, `triviaqa` and `hotpotqa_wiki`; without
--data-dir those take it from the hub. It is converted once into an Arrow file under the cache
(harness/data/corpus.py), so a 29.9M corpus needs about as much free disk as its jsonl.
"""

from __future__ import annotations

from pathlib import Path

from harness import DatasetOptions, DatasetSpec, RagDataset, UserError, hookimpl
from harness.data import apply_limit, validate_dataset

SPLITS = ("train", "dev", "test")


def load(options: DatasetOptions) -> RagDataset:
    from harness.builtins.datasets.local import read_examples
    from harness.data import WIKIPEDIA_HUB_ID, load_wikipedia_corpus

    if not options.data_dir:
        raise UserError(
            "dataset 'wikipedia' is your questions over a large corpus: --data-dir DIR with train.jsonl, "
            "dev.jsonl, test.jsonl (the `local` format) and corpus.jsonl/.parquet/.tsv or a corpus/ folder (e.g. a "
            f"clone of {WIKIPEDIA_HUB_ID}); for benchmark questions over that corpus use popqa, nq_open, triviaqa "
            "or hotpotqa_wiki"
        )
    root = Path(options.data_dir)
    if not root.is_dir():
        raise UserError(f"--data-dir {root} is not a directory")
    splits = {s: apply_limit(read_examples(root / f"{s}.jsonl"), options.limit) for s in SPLITS}
    corpus = load_wikipedia_corpus("wikipedia", options.data_dir)
    validate_dataset(f"wikipedia:{root}", splits, corpus)
    return RagDataset(f"wikipedia:{root.name}", splits["train"], splits["dev"], splits["test"], corpus)


@hookimpl
def register_datasets(register):
    register(
        DatasetSpec(
            name="wikipedia",
            load=load,
            description="Your questions (local format) over a Wikipedia chunk corpus, memory-mapped (--data-dir)",
            has_context_labels=True,
            license="CC BY-SA (Wikipedia text); questions yours",
            source="--data-dir: train/dev/test.jsonl + corpus (e.g. a clone of hub MedRAG/wikipedia)",
            size="MedRAG/wikipedia: 29,913,202 passages (≤1,000 characters each)",
        )
    )
