"""Base retriever recall@k on `synthbio` at each difficulty: retrieval only, no generation (cheap).

    flock /tmp/rag-heavy.lock python bench/synthbio_headroom.py [--embedder minilm] [--split test] [-k 5]

Prints recall@k (gold biography in the top k) and answer_recall@k for questions that name the person and
for those that describe them, per difficulty. Uses the harness's own encoding, index cache and metrics.
"""

from __future__ import annotations

import argparse

import numpy as np

from harness import plugins
from harness.metrics import answer_hit, passage_hit
from harness.retrieval.index import build_or_load_index, encode_texts
from harness.types import DatasetOptions, ModelOptions


def recall_by_kind(dataset, embedder, index, split: str, k: int) -> dict[str, tuple[float, float, int]]:
    examples = dataset.split(split)
    _, rows = None, index.search(encode_texts(embedder, [ex.question for ex in examples]), k)[0]
    out: dict[str, list[tuple[float, float]]] = {}
    for ex, r in zip(examples, rows):
        passages = [dataset.corpus[int(i)] for i in r if int(i) >= 0]
        kind = "described" if " graduate of " in ex.question or "the person born on" in ex.question else "named"
        scores = (passage_hit([p.id for p in passages], ex.gold_passage_ids, k), answer_hit([p.text for p in passages], ex.answers, k))  # noqa: E501
        for key in (kind, "all"):
            out.setdefault(key, []).append(scores)
    return {kind: (100 * float(np.mean([s[0] for s in v])), 100 * float(np.mean([s[1] for s in v])), len(v))
            for kind, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedder", default="minilm")
    parser.add_argument("--split", default="test")
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--datasets", default="synthbio:difficulty=easy,synthbio,synthbio:difficulty=hard",
                        help="comma-separated dataset names (options inside a name use ',' too: separate with ';')")
    args = parser.parse_args()
    plugins.load_plugins(None)
    embedder = plugins.models()["embedder"].get(args.embedder).load(ModelOptions())
    names = args.datasets.split(";") if ";" in args.datasets else args.datasets.split(",")
    for name in names:
        dataset = plugins.datasets().get(name).load(DatasetOptions())
        index = build_or_load_index(embedder, dataset.corpus)
        for kind, (recall, answer_recall, n) in sorted(recall_by_kind(dataset, embedder, index, args.split, args.k).items()):
            print(f"{name:32s} {kind:10s} n={n:5d}  recall@{args.k} {recall:5.1f}  answer_recall@{args.k} {answer_recall:5.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
