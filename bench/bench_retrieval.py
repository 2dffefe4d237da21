"""Retrieval: one batched FAISS search vs one query at a time, over the default corpus (side by side).

    python bench/bench_retrieval.py [--queries 1000] [--repeats 3]

Also times the user-facing step, encoding + search of the default dataset's questions, batched vs per question.
"""

import argparse
import time

import numpy as np
import torch
from _machine import header

from harness.plugins import datasets, load_plugins, models
from harness.retrieval.index import build_or_load_index, encode_texts
from harness.types import DatasetOptions, ModelOptions


def best_of(repeats, fn):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    header("retrieval: batched vs one query at a time")
    load_plugins()
    dataset = datasets().get("fanoutqa_wiki").load(DatasetOptions())
    embedder = models()["embedder"].get("minilm").load(ModelOptions())
    index = build_or_load_index(embedder, dataset.corpus)
    rng = np.random.default_rng(0)
    # queries: noisy copies of random passage vectors, normalized (search cost does not depend on their origin)
    queries = np.asarray(index.vectors[rng.integers(0, len(index), args.queries)]) + 0.1 * rng.standard_normal((args.queries, 384))  # noqa: E501
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    t_batch, (rows_b, _) = best_of(args.repeats, lambda: index.search(queries, 5))
    t_single, rows_s = best_of(args.repeats, lambda: np.vstack([index.search(q[None], 5)[0] for q in queries]))
    assert (rows_b == rows_s).all(), "batched and single searches disagree"
    print(f"corpus: {len(index)} passages x 384 dims, exact inner-product (flat) index; {args.queries} queries, k=5")
    print(f"search  batched: {args.queries / t_batch:10.0f} QPS   one-by-one: {args.queries / t_single:10.0f} QPS   "
          f"ratio {t_single / t_batch:.1f}x")
    questions = [ex.question for split in (dataset.train, dataset.dev, dataset.test) for ex in split]
    def per_question():
        return np.vstack([index.search(encode_texts(embedder, [q]), 5)[0] for q in questions])
    t_eb, rows_eb = best_of(args.repeats, lambda: index.search(encode_texts(embedder, questions), 5)[0])
    t_es, rows_es = best_of(args.repeats, per_question)
    agree = float((rows_eb == rows_es).all(axis=1).mean())
    print(f"encode+search of {len(questions)} questions  batched: {t_eb:.2f}s   one-by-one: {t_es:.2f}s   "
          f"ratio {t_es / t_eb:.1f}x   (same top-5 for {100 * agree:.0f}% of questions)")


if __name__ == "__main__":
    main()
