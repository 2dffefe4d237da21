"""Retrieval: sentence-transformer towers, the FAISS passage index, and its on-disk cache.

Vectors are L2-normalized, so inner product = cosine. The default index is exact (`flat`); `hnsw` and
`ivfpq` trade recall for speed on large corpora. Index files are cached under
`cache_dir()/indexes/<key>` where key = hash(embedder weights, corpus fingerprint, index params).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import torch
import torch.nn.functional as F

from harness.config import cache_dir
from harness.errors import UserError
from harness.progress import progress
from harness.types import Corpus


# -- encoding -----------------------------------------------------------------------------------
def encode_texts(model, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Normalized float32 embeddings (N, D), no grad, the model left in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        vecs = model.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
                            show_progress_bar=False)
    finally:
        model.train(was_training)
    return np.ascontiguousarray(vecs, dtype=np.float32)


def encode_with_grad(model, texts: list[str]) -> torch.Tensor:
    """Normalized embeddings (N, D) with the autograd graph kept: what trains a tower."""
    features = (model.preprocess if hasattr(model, "preprocess") else model.tokenize)(texts)
    device = next(model.parameters()).device
    # sentence-transformers >= 6 adds non-tensor entries (e.g. modality="text"): move only the tensors
    features = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
    return F.normalize(model(features)["sentence_embedding"], dim=-1)


def embedding_dimension(model) -> int:
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


def encode_corpus(model, corpus: Corpus, batch_size: int = 64, desc: str = "encoding corpus") -> np.ndarray:
    """Encode every passage in batches, reporting progress (a bar, or log lines); returns (len(corpus), D) float32."""
    dim = embedding_dimension(model)
    out = np.empty((len(corpus), dim), dtype=np.float32)
    row = 0
    with progress(desc=desc, total=len(corpus), unit="passages") as bar:
        for texts in corpus.iter_texts(batch_size):
            vecs = encode_texts(model, texts, batch_size)
            out[row : row + len(texts)] = vecs
            row += len(texts)
            bar.update(len(texts))
    return out


def weights_fingerprint(model: torch.nn.Module) -> str:
    """sha256 of every parameter's bytes: the embedder half of the index cache key."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# -- the index ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class IndexParams:
    kind: str = "flat"  # flat | hnsw | ivfpq
    nlist: int = 1024  # ivfpq: inverted lists
    m: int = 16  # ivfpq: sub-quantizers; hnsw: neighbours per node
    nprobe: int = 32  # ivfpq: lists visited per query
    ef_search: int = 128  # hnsw: candidates kept while searching (faiss default 16 loses recall: bench_index_recall)
    rerank_factor: int = 10  # ivfpq: fetch k x this many candidates, then re-score them exactly

    def __post_init__(self):
        if self.kind not in ("flat", "hnsw", "ivfpq"):
            raise UserError(f"unknown index kind '{self.kind}'; known: flat, hnsw, ivfpq")


class PassageIndex:
    """FAISS inner-product index over normalized passage vectors; FAISS ids are corpus rows."""

    def __init__(self, index: faiss.Index, vectors: np.ndarray | None = None, rerank_factor: int = 1):
        self.index = index
        self.vectors = vectors  # kept for exact re-scoring and for strategies that need passage vectors
        self.rerank_factor = rerank_factor  # > 1 for compressed indexes: approximate candidates, exact scores

    @classmethod
    def build(cls, vectors: np.ndarray, params: IndexParams = IndexParams()) -> "PassageIndex":
        dim = vectors.shape[1]
        if params.kind == "flat":
            index = faiss.IndexFlatIP(dim)
        elif params.kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, params.m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = params.ef_search
        else:
            nlist = min(params.nlist, max(1, len(vectors) // 39))
            index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, params.m, 8, faiss.METRIC_INNER_PRODUCT)
            index.train(vectors)
            index.nprobe = params.nprobe
        index.add(vectors)
        return cls(index, vectors, params.rerank_factor if params.kind == "ivfpq" else 1)

    def __len__(self) -> int:
        return self.index.ntotal

    def search(self, query_vecs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Batched search: (Q, D) -> (rows (Q, k), scores (Q, k))."""
        queries = np.ascontiguousarray(query_vecs, dtype=np.float32)
        if self.rerank_factor <= 1 or self.vectors is None:
            scores, rows = self.index.search(queries, k)
            return rows, scores
        _, candidates = self.index.search(queries, k * self.rerank_factor)  # (Q, k*f) approximate
        safe = np.where(candidates >= 0, candidates, 0)
        exact = np.einsum("qd,qcd->qc", queries, np.asarray(self.vectors[safe.reshape(-1)]).reshape(*safe.shape, -1))
        exact[candidates < 0] = -np.inf
        order = np.argsort(-exact, axis=1)[:, :k]  # (Q, k) best exact scores first
        return np.take_along_axis(candidates, order, 1), np.take_along_axis(exact, order, 1)

    def save(self, folder: Path) -> None:
        faiss.write_index(self.index, str(folder / "index.faiss"))
        (folder / "search.json").write_text(json.dumps({"rerank_factor": self.rerank_factor}))
        if self.vectors is not None:
            np.save(folder / "vectors.npy", self.vectors)

    @classmethod
    def load(cls, folder: Path) -> "PassageIndex":
        vectors_path = folder / "vectors.npy"
        vectors = np.load(vectors_path, mmap_mode="r") if vectors_path.exists() else None
        settings = json.loads((folder / "search.json").read_text()) if (folder / "search.json").exists() else {}
        return cls(faiss.read_index(str(folder / "index.faiss")), vectors, settings.get("rerank_factor", 1))


def build_or_load_index(model, corpus: Corpus, params: IndexParams = IndexParams(), batch_size: int = 64) -> PassageIndex:
    """The index of `corpus` under `model`, from the cache when the weights, corpus and params match."""
    key_src = json.dumps([weights_fingerprint(model), corpus.fingerprint(), params.__dict__], sort_keys=True)
    folder = cache_dir() / "indexes" / hashlib.sha256(key_src.encode()).hexdigest()[:20]
    if (folder / "index.faiss").is_file():
        return PassageIndex.load(folder)
    index = PassageIndex.build(encode_corpus(model, corpus, batch_size), params)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".index-"))
    index.save(tmp)
    try:
        os.rename(tmp, folder)  # atomic: a crash never leaves a half-written cache entry
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return index
