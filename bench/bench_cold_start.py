"""Cold start: the corpus vectors a first run needs, encoded here vs shipped in the package (side by side).

    python bench/bench_cold_start.py [--sample 1024] [--full]

Variant A encodes the default corpus with MiniLM (what every first run did: 12,324 passages); variant B takes
the float16 vectors shipped with the package (load, re-encode 32 passages to check them, build the index).
A is timed on `--sample` passages spread over the corpus and projected to the whole corpus, or on all of
it with `--full`. Then the quality check: the top-5 of every question of every split (the prior's queries)
and of jsa_rag's posterior queries `x [SEP] y` must be identical with the shipped float16
vectors and with float32 vectors encoded here (the cached index when there is one, else a full encode).
"""

import argparse
import os
import time

import numpy as np
import torch
from _machine import header

from harness.plugins import datasets, load_plugins, models
from harness.retrieval.index import (
    IndexParams,
    PassageIndex,
    build_or_load_index,
    encode_texts,
    shipped_vectors_file,
    verified_shipped_vectors,
    weights_fingerprint,
)
from harness.types import DatasetOptions, ModelOptions


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def float32_vectors(embedder, corpus) -> np.ndarray:
    """The vectors a first run without shipped vectors encodes (from the cache when it has them)."""
    os.environ["HARNESS_SHIPPED_VECTORS"] = "0"
    try:
        return np.asarray(build_or_load_index(embedder, corpus).vectors, dtype=np.float32)
    finally:
        del os.environ["HARNESS_SHIPPED_VECTORS"]


def same_top(reference: PassageIndex, candidate: PassageIndex, queries: np.ndarray, k: int) -> tuple[int, float]:
    """(questions whose top-k rows are identical in order, largest score difference)."""
    ref_rows, ref_scores = reference.search(queries, k)
    rows, scores = candidate.search(queries, k)
    return int((ref_rows == rows).all(axis=1).sum()), float(np.abs(ref_scores - scores).max())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sample", type=int, default=1024, help="passages encoded to time variant A")
    parser.add_argument("--full", action="store_true", help="time variant A on the whole corpus")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("HARNESS_THREADS", "2")))
    header("cold start: corpus vectors encoded vs shipped")
    load_plugins()
    dataset = datasets().get("fanoutqa_wiki").load(DatasetOptions())
    embedder = models()["embedder"].get("minilm").load(ModelOptions(device="cpu"))
    corpus = dataset.corpus
    path = shipped_vectors_file(corpus, weights_fingerprint(embedder), corpus.fingerprint())
    if path is None:
        raise SystemExit("no shipped vectors for these weights and this corpus: `make shipped-vectors` writes them")

    n = len(corpus) if args.full else min(args.sample, len(corpus))
    rows = np.unique(np.linspace(0, len(corpus) - 1, n).astype(int))
    texts = [corpus[int(r)].as_text() for r in rows]
    encode_s, _ = timed(lambda: [encode_texts(embedder, texts[i : i + 64]) for i in range(0, len(texts), 64)])
    shipped_s, shipped = timed(lambda: PassageIndex.build(verified_shipped_vectors(path, embedder, corpus), IndexParams()))
    projected = encode_s * len(corpus) / len(rows)
    print(f"A encode: {len(rows):,} passages in {encode_s:.1f} s ({len(rows) / encode_s:.1f}/s); "
          f"whole corpus {'measured' if args.full else 'projected'}: {projected:.0f} s")
    print(f"B shipped: load {path.name} ({path.stat().st_size / 1e6:.1f} MB), check 32 passages, build: {shipped_s:.1f} s")
    print(f"ratio A/B: {projected / shipped_s:.0f}x less time before training with the shipped vectors")

    reference = PassageIndex.build(float32_vectors(embedder, corpus), IndexParams())
    print(f"float16 vs float32 vectors: max entry difference "
          f"{np.abs(np.asarray(reference.vectors) - np.asarray(shipped.vectors)).max():.2e}")
    examples = [ex for split in ("train", "dev", "test") for ex in dataset.split(split)]
    sep = getattr(embedder.tokenizer, "sep_token", None) or "[SEP]"
    for name, queries, k in (("questions, top-5", [ex.question for ex in examples], 5),
                             ("jsa_rag posterior x [SEP] y, top-5", [f"{ex.question} {sep} {ex.answers[0]}" for ex in examples], 5),  # noqa: E501
                             ("questions, top-20", [ex.question for ex in examples], 20)):
        same, diff = same_top(reference, shipped, encode_texts(embedder, queries), k)
        print(f"{name}: identical for {same}/{len(queries)} queries; largest score difference {diff:.2e}")


if __name__ == "__main__":
    main()
