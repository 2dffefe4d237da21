"""Approximate indexes (`--index hnsw|ivfpq`) against exact search (`flat`): recall, speed and size side by side.

    python bench/bench_index_recall.py [--n 100000] [--dim 384] [--queries 1000] [-k 5]

Synthetic corpus: `n` normalized vectors drawn around `clusters` random centres (real passage embeddings are
clustered by topic; uniform random vectors would make every approximate index look worse than it is).
Queries are fresh draws from the same mixture. recall@k = the share of the exact top-k that the index
returns in its top-k, averaged over queries. Each index is built as the harness builds it
(`PassageIndex.build` with `IndexParams(kind)`); the sweep rows change only its search-time knob.
"""

import argparse
import time

import faiss
import numpy as np
from _machine import header

from harness.retrieval.index import IndexParams, PassageIndex


def mixture(rng, n: int, dim: int, centres: np.ndarray, spread: float) -> np.ndarray:
    vecs = centres[rng.integers(0, len(centres), n)] + spread * rng.standard_normal((n, dim)).astype(np.float32)
    return (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)]))


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def index_bytes(index: PassageIndex) -> int:
    return len(faiss.serialize_index(index.index))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000, help="corpus vectors")
    parser.add_argument("--dim", type=int, default=384, help="dimensions (MiniLM: 384, MPNet: 768)")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--spread", type=float, default=0.6, help="noise norm around a centre (centres have norm ~1)")
    args = parser.parse_args()
    header("approximate passage indexes vs exact search")
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((args.clusters, args.dim)).astype(np.float32) / np.sqrt(args.dim)
    noise = args.spread / np.sqrt(args.dim)  # per dimension
    corpus = mixture(rng, args.n, args.dim, centres, noise)
    queries = mixture(rng, args.queries, args.dim, centres, noise)
    print(f"corpus: {args.n} x {args.dim} normalized vectors in {args.clusters} clusters; "
          f"{args.queries} queries; k={args.k}; faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads")

    flat_build, flat = timed(lambda: PassageIndex.build(corpus, IndexParams("flat")))
    flat_search, (exact, _) = timed(lambda: flat.search(queries, args.k))
    rows = [("flat (exact)", flat_build, flat_search, 1.0, index_bytes(flat))]
    for kind in ("hnsw", "ivfpq"):
        build, index = timed(lambda: PassageIndex.build(corpus, IndexParams(kind)))
        search, (found, _) = timed(lambda: index.search(queries, args.k))
        rows.append((f"{kind} (harness default)", build, search, recall_at_k(found, exact), index_bytes(index)))
        for knob, values in (("efSearch", (64, 256)) if kind == "hnsw" else ("nprobe", (128,)),):
            for value in values:
                if kind == "hnsw":
                    index.index.hnsw.efSearch = value
                else:
                    index.index.nprobe = value
                search, (found, _) = timed(lambda: index.search(queries, args.k))
                rows.append((f"{kind} {knob}={value}", build, search, recall_at_k(found, exact), index_bytes(index)))

    # not what --index builds: IVF-PQ candidates re-scored exactly (faiss IndexRefineFlat), to show the cost of PQ
    def refined() -> PassageIndex:
        params = IndexParams("ivfpq")
        nlist = min(params.nlist, max(1, args.n // 39))
        base = faiss.IndexIVFPQ(faiss.IndexFlatIP(args.dim), args.dim, nlist, params.m, 8, faiss.METRIC_INNER_PRODUCT)
        base.nprobe = params.nprobe
        index = faiss.IndexRefineFlat(base)
        index.k_factor = 10
        index.train(corpus)
        index.add(corpus)
        return PassageIndex(index)

    build, index = timed(refined)
    search, (found, _) = timed(lambda: index.search(queries, args.k))
    rows.append(("ivfpq + exact re-rank x10*", build, search, recall_at_k(found, exact), index_bytes(index)))

    print(f"{'index':<26}{'build s':>9}{'QPS':>10}{'QPS / flat':>12}{'recall@' + str(args.k):>11}"
          f"{'MB':>9}{'MB / flat':>11}")
    for name, build, search, recall, size in rows:
        print(f"{name:<26}{build:>9.1f}{args.queries / search:>10.0f}{flat_search / search:>12.1f}"
              f"{recall:>11.3f}{size / 2**20:>9.1f}{size / rows[0][4]:>11.2f}")
    print("* not built by --index: IVF-PQ's top-50 re-scored against the full vectors (faiss IndexRefineFlat)")


if __name__ == "__main__":
    main()
