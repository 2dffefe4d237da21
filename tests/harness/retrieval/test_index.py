"""The passage index: exact search, approximate kinds close to exact, the cache keyed by weights + corpus."""

import numpy as np
import pytest

from harness.retrieval.index import IndexParams, PassageIndex, build_or_load_index, weights_fingerprint
from harness.types import Corpus, Passage


def clustered_vectors(n=4000, dim=32, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((40, dim))
    vecs = centers[rng.integers(0, 40, n)] + 0.3 * rng.standard_normal((n, dim))
    return (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)


def test_flat_search_is_exact_inner_product():
    vecs = clustered_vectors(500)
    rows, scores = PassageIndex.build(vecs).search(vecs[:10], 3)
    assert (rows[:, 0] == np.arange(10)).all()
    expected = np.sort(vecs[:10] @ vecs.T, axis=1)[:, ::-1][:, :3]
    assert np.allclose(scores, expected, atol=1e-5)


@pytest.mark.parametrize("kind, min_recall", [("hnsw", 0.9), ("ivfpq", 0.8)])
def test_approximate_indexes_recall_against_exact(kind, min_recall):
    vecs = clustered_vectors()
    queries = clustered_vectors(200, seed=1)
    exact, _ = PassageIndex.build(vecs).search(queries, 5)
    params = IndexParams(kind="ivfpq", nlist=64, m=8) if kind == "ivfpq" else IndexParams(kind="hnsw")
    approx_index = PassageIndex.build(vecs, params)
    approx, scores = approx_index.search(queries, 5)
    recall = np.mean([len(set(a) & set(e)) / 5 for a, e in zip(approx, exact)])
    assert recall >= min_recall, recall
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first


def test_index_cache_hits_for_same_weights_and_corpus(monkeypatch, tmp_path):
    from harness.builtins.models.tiny import tiny_embedder_dir
    from harness.models.loading import load_sentence_transformer

    model = load_sentence_transformer(str(tiny_embedder_dir()), "cpu")
    corpus = Corpus([Passage(f"p{i}", "t", f"text number {i}") for i in range(20)])
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    first = build_or_load_index(model, corpus)
    assert len(list((tmp_path / "indexes").iterdir())) == 1
    second = build_or_load_index(model, corpus)
    assert np.array_equal(np.asarray(first.vectors), np.asarray(second.vectors))
    assert len(list((tmp_path / "indexes").iterdir())) == 1  # a hit, not a rebuild
    before = weights_fingerprint(model)
    with __import__("torch").no_grad():
        next(model.parameters()).add_(0.01)
    assert weights_fingerprint(model) != before
    build_or_load_index(model, corpus)
    assert len(list((tmp_path / "indexes").iterdir())) == 2  # new weights, new entry


def shipped_setup(tmp_path, monkeypatch):
    """The tiny embedder, a 40-passage corpus with a vectors_dir, and an empty cache."""
    from harness.builtins.models.tiny import tiny_embedder_dir
    from harness.models.loading import load_sentence_transformer

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    model = load_sentence_transformer(str(tiny_embedder_dir()), "cpu")
    corpus = Corpus([Passage(f"p{i}", f"title {i % 7}", f"passage text number {i} about {i * 13 % 11}") for i in range(40)])
    corpus.vectors_dir = tmp_path / "shipped"
    return model, corpus


def test_shipped_vectors_are_used_after_a_sample_check(tmp_path, monkeypatch, capsys):
    from harness.retrieval.index import encode_corpus, save_shipped_vectors

    model, corpus = shipped_setup(tmp_path, monkeypatch)
    fresh = encode_corpus(model, corpus)
    save_shipped_vectors(fresh, corpus.vectors_dir, weights_fingerprint(model), corpus.fingerprint())
    capsys.readouterr()
    index = build_or_load_index(model, corpus)
    err = capsys.readouterr().err
    assert "using the shipped vectors" in err and "encoding corpus" not in err
    assert np.abs(np.asarray(index.vectors) - fresh).max() < 1e-3  # float16 rounding only
    queries = encode_corpus(model, corpus)[::3]
    assert np.array_equal(index.search(queries, 5)[0], PassageIndex.build(fresh).search(queries, 5)[0])
    capsys.readouterr()
    assert np.array_equal(np.asarray(build_or_load_index(model, corpus).vectors), np.asarray(index.vectors))
    assert capsys.readouterr().err == ""  # from the cache now: no check, no encoding


def test_shipped_vectors_that_disagree_with_a_fresh_encode_are_not_used(tmp_path, monkeypatch, capsys):
    from harness.retrieval.index import encode_corpus, save_shipped_vectors

    model, corpus = shipped_setup(tmp_path, monkeypatch)
    fresh = encode_corpus(model, corpus)
    wrong = np.random.default_rng(0).standard_normal(fresh.shape)  # e.g. another model's vectors
    wrong /= np.linalg.norm(wrong, axis=1, keepdims=True)
    save_shipped_vectors(wrong, corpus.vectors_dir, weights_fingerprint(model), corpus.fingerprint())
    capsys.readouterr()
    index = build_or_load_index(model, corpus)
    err = capsys.readouterr().err
    assert "not using the shipped vectors" in err and "a fresh encode of 32 passages differs" in err
    assert np.array_equal(np.asarray(index.vectors), fresh)  # encoded here instead


def test_shipped_vectors_follow_the_weights_and_can_be_turned_off(tmp_path, monkeypatch, capsys):
    import torch

    from harness.retrieval.index import encode_corpus, save_shipped_vectors

    model, corpus = shipped_setup(tmp_path, monkeypatch)
    save_shipped_vectors(encode_corpus(model, corpus), corpus.vectors_dir, weights_fingerprint(model), corpus.fingerprint())
    monkeypatch.setenv("HARNESS_SHIPPED_VECTORS", "0")
    capsys.readouterr()
    build_or_load_index(model, corpus)
    assert "shipped" not in capsys.readouterr().err
    monkeypatch.delenv("HARNESS_SHIPPED_VECTORS")
    with torch.no_grad():
        next(model.parameters()).add_(0.01)  # other weights: the shipped file's name no longer matches
    build_or_load_index(model, corpus)
    err = capsys.readouterr().err
    assert "shipped" not in err and "encoding corpus" in err
