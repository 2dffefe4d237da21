"""answer_recall@k under the old matcher (normalized substring on spaces) and DPR's has_answer, side by side.

    flock /tmp/rag-heavy.lock python bench/answer_recall_matchers.py [--dataset fanoutqa_wiki] [-k 5]

Retrieval only (the base MiniLM over the dataset's corpus, every split); prints both answer_recall@k and
every question on which the two matchers disagree, with the answer and the passage text around it.
"""

from __future__ import annotations

import argparse

from harness import plugins
from harness.metrics import answer_hit, normalize_answer
from harness.retrieval.index import build_or_load_index, encode_texts
from harness.types import DatasetOptions, ModelOptions


def old_substring_hit(passage_texts, golds, k: int) -> float:
    """The definition before migration m002: a normalized gold inside a normalized passage, on spaces."""
    padded = [f" {normalize_answer(t)} " for t in passage_texts[:k]]
    needles = [f" {normalize_answer(g)} " for g in golds if normalize_answer(g)]
    return float(any(n in p for n in needles for p in padded))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fanoutqa_wiki")
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args()
    plugins.load_plugins(None)
    embedder = plugins.models()["embedder"].get("minilm").load(ModelOptions())
    dataset = plugins.datasets().get(args.dataset).load(DatasetOptions())
    index = build_or_load_index(embedder, dataset.corpus)
    for split in ("train", "dev", "test", "all"):
        examples = dataset.train + dataset.dev + dataset.test if split == "all" else dataset.split(split)
        rows, _ = index.search(encode_texts(embedder, [ex.question for ex in examples]), args.k)
        old = new = 0.0
        for ex, row in zip(examples, rows):
            texts = [dataset.corpus[int(r)].text for r in row if int(r) >= 0]
            o, n = old_substring_hit(texts, ex.answers, args.k), answer_hit(texts, ex.answers, args.k)
            old, new = old + o, new + n
            if o != n and split == "all":
                print(f"  differs: {ex.question!r} answers={ex.answers} old={o:.0f} new={n:.0f}")
        print(f"{args.dataset} {split:5s} n={len(examples):4d}  answer_recall@{args.k} old (substring) "
              f"{100 * old / len(examples):5.1f}  new (DPR has_answer) {100 * new / len(examples):5.1f}", flush=True)


if __name__ == "__main__":
    main()
