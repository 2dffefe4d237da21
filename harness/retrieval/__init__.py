"""Retrieval: the towers that encode, the FAISS index they fill, and refreshing it while a tower trains.

    index.py       encoding (batched, sharded over processes, with grad), PassageIndex (flat, hnsw, ivfpq),
                   the index cache keyed by embedder weights + corpus + index parameters, shipped vectors
    gpu_search.py  exact search on CUDA (torch matmul, or faiss-gpu when installed)
    refresh.py     re-encoding the corpus with a training passage tower, in the background or in step

Public (plugins import these from `harness.retrieval`): the names in `__all__`.
"""

from harness._exports import exports

__all__, __getattr__ = exports(__name__, {
    "index": ("IndexParams", "PassageIndex", "build_or_load_index", "encode_corpus", "encode_texts", "encode_with_grad",
              "index_params", "save_shipped_vectors", "weights_fingerprint"),
    "refresh": ("REFRESH_MODES", "REFRESH_POLICIES", "IndexRefresher", "check_refresh_policy",
                                   "refresh_schedule", "separate_passage_tower"),
    "harness.config": ("INDEX_KINDS",),
})
