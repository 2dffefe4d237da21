"""Exact search by torch matmul + top-k, sharded: the same rows and scores as faiss's flat index.

The sharding and merging run here over CPU "devices" (the code path `--index-device cuda` takes, with
device strings); the CUDA tests run wherever a GPU exists.
"""

import importlib.util

import numpy as np
import pytest
import torch

from harness.retrieval.gpu_search import TorchFlatSearch
from harness.retrieval.index import IndexParams, PassageIndex
from tests.harness.retrieval.test_index import clustered_vectors

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def faiss_flat(vectors, queries, k):
    return PassageIndex.build(vectors).search(queries, k)


@pytest.mark.parametrize("shards", [1, 2, 3])
def test_sharded_torch_search_matches_faiss_flat(shards):
    vectors, queries = clustered_vectors(3001), clustered_vectors(120, seed=1)
    expected_rows, expected_scores = faiss_flat(vectors, queries, 10)
    rows, scores = TorchFlatSearch(vectors, ["cpu"] * shards).search(queries, 10)
    assert rows.shape == (120, 10) and rows.dtype == np.int64
    assert (rows == expected_rows).mean() > 0.995  # equal up to the order of exact ties
    assert np.allclose(scores, expected_scores, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first


def test_query_chunks_do_not_change_the_answer():
    vectors, queries = clustered_vectors(500), clustered_vectors(50, seed=2)
    whole = TorchFlatSearch(vectors, ["cpu", "cpu"]).search(queries, 5)
    chunked = TorchFlatSearch(vectors, ["cpu", "cpu"], score_budget_bytes=4 * 250 * 3).search(queries, 5)  # 3 per matmul
    assert np.array_equal(whole[0], chunked[0]) and np.allclose(whole[1], chunked[1])


def test_k_larger_than_a_shard_or_the_corpus_pads_like_faiss():
    vectors, queries = clustered_vectors(7), clustered_vectors(4, seed=3)
    rows, scores = TorchFlatSearch(vectors, ["cpu"] * 3).search(queries, 9)  # shards of 2-3 rows, k = 9 > 7
    expected_rows, expected_scores = faiss_flat(vectors, queries, 9)
    assert np.array_equal(rows, expected_rows) and (rows[:, 7:] == -1).all()
    assert np.allclose(scores, expected_scores)


def test_a_launched_process_searches_on_its_own_gpu(monkeypatch):
    from harness.retrieval.gpu_search import cuda_devices

    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert cuda_devices() == ["cuda:2"]
    monkeypatch.setenv("WORLD_SIZE", "1")  # one process: every visible GPU
    assert cuda_devices() == [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def test_cache_key_ignores_where_the_index_is_searched():
    assert IndexParams("flat", device="cuda").cache_fields() == IndexParams("flat").cache_fields()
    assert "device" not in IndexParams().cache_fields()


def test_placing_an_index_on_the_cpu_keeps_faiss():
    vectors = clustered_vectors(200)
    index = PassageIndex.build(vectors, IndexParams("flat", device="cpu"))
    assert index.searcher is None
    rows, _ = index.search(vectors[:3], 1)
    assert rows[:, 0].tolist() == [0, 1, 2]


@cuda
def test_flat_index_on_cuda_returns_the_cpu_rows():
    vectors, queries = clustered_vectors(20_000, dim=64), clustered_vectors(300, dim=64, seed=4)
    cpu_rows, cpu_scores = PassageIndex.build(vectors).search(queries, 10)
    gpu = PassageIndex.build(vectors, IndexParams("flat", device="cuda"))
    assert isinstance(gpu.searcher, TorchFlatSearch) and gpu.searcher.shards[0].device.type == "cuda"
    rows, scores = gpu.search(queries, 10)
    assert (rows == cpu_rows).mean() > 0.995 and np.allclose(scores, cpu_scores, atol=1e-4)


@cuda
@pytest.mark.skipif(importlib.util.find_spec("faiss") is None or not hasattr(__import__("faiss"), "StandardGpuResources"),
                    reason="needs faiss-gpu")
def test_ivfpq_on_cuda_through_faiss_gpu_recalls_like_the_cpu():
    vectors, queries = clustered_vectors(), clustered_vectors(200, seed=1)
    exact, _ = PassageIndex.build(vectors).search(queries, 5)
    approx, _ = PassageIndex.build(vectors, IndexParams("ivfpq", nlist=64, m=8, device="cuda")).search(queries, 5)
    assert np.mean([len(set(a) & set(e)) / 5 for a, e in zip(approx, exact)]) >= 0.8
