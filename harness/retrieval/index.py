"""Retrieval: sentence-transformer towers, the FAISS passage index, and its on-disk cache.

Vectors are L2-normalized, so inner product = cosine. The default index is exact (`flat`); `hnsw` and
`ivfpq` trade recall for speed on large corpora. Index files are cached under
`cache_dir()/indexes/<key>` where key = hash(embedder weights, corpus fingerprint, index params).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import torch
import torch.nn.functional as F

from harness import env
from harness.config import cache_dir
from harness.errors import UserError
from harness.runtime import cache as cache_entries
from harness.runtime.distributed import broadcast_from_main, shard_bounds
from harness.runtime.progress import progress
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
    """Normalized embeddings (N, D) with the autograd graph kept: what trains a tower.

    No texts (a process's empty shard of a last batch): an empty (0, D) leaf that takes part in the loss's
    graph, so a loss over every process's rows still back-propagates here, giving this process no gradient."""
    if not texts:
        device = next(model.parameters()).device
        return torch.zeros((0, embedding_dimension(model)), device=device, requires_grad=True)
    features = (model.preprocess if hasattr(model, "preprocess") else model.tokenize)(texts)
    device = next(model.parameters()).device
    # sentence-transformers >= 6 adds non-tensor entries (e.g. modality="text"): move only the tensors
    features = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
    return F.normalize(model(features)["sentence_embedding"], dim=-1)


def embedding_dimension(model) -> int:
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


class EncodingCancelled(Exception):
    """`encode_corpus` was told to stop (its `cancelled()` returned True between two batches)."""


def encode_corpus(model, corpus: Corpus, batch_size: int = 64, desc: str = "encoding corpus", start: int = 0,
                  stop: int | None = None, out: np.ndarray | None = None, cancelled=None) -> np.ndarray:
    """Encode rows [start, stop) in batches, reporting progress (a bar, or log lines), into `out` (default a
    new (n, D) float32 array). The one corpus encoding: indexing, `ctx.refresh_index` and the background
    re-indexer all use it; `cancelled()` (if given) is checked between batches (EncodingCancelled)."""
    stop = len(corpus) if stop is None else stop
    if out is None:
        out = np.empty((stop - start, embedding_dimension(model)), dtype=np.float32)
    row = 0
    with progress(desc=desc, total=stop - start, unit="passages") as bar:
        for texts in corpus.iter_texts(batch_size, start, stop):
            if cancelled is not None and cancelled():
                raise EncodingCancelled
            out[row : row + len(texts)] = encode_texts(model, texts, batch_size)
            row += len(texts)
            bar.update(len(texts))
    return out


def encode_corpus_to_file(path: Path, model, corpus: Corpus, batch_size: int = 64, accelerator=None,
                          desc: str = "encoding corpus") -> np.ndarray:
    """Encode the corpus into the .npy file `path`, sharded over the processes of a launched run.

    Each process encodes a contiguous run of whole batches (the same batches one process would encode, so
    the vectors are bit-identical to a one-process encode) and writes them into its rows of the memory-mapped
    file. Returns the file memory-mapped read-only, once every process has written its part. One process
    (no accelerator) encodes everything the same way.
    """
    n, dim = len(corpus), embedding_dimension(model)
    processes, index = (1, 0) if accelerator is None else (accelerator.num_processes, accelerator.process_index)
    if index == 0:
        np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim)).flush()
    _wait(accelerator)
    first, last = shard_bounds(-(-n // batch_size), processes, index)
    start, stop = first * batch_size, min(last * batch_size, n)
    vectors = np.load(path, mmap_mode="r+")
    if processes > 1:
        desc = f"{desc} (process {index + 1}/{processes})"
    encode_corpus(model, corpus, batch_size, desc, start, stop, out=vectors[start:stop])
    vectors.flush()
    del vectors
    _wait(accelerator)
    return np.load(path, mmap_mode="r")


def encode_corpus_sharded(model, corpus: Corpus, accelerator, batch_size: int = 64,
                          desc: str = "encoding corpus") -> np.ndarray:
    """The whole corpus's vectors in memory on every process, each process having encoded its shard."""
    folder = broadcast_from_main(accelerator, _scratch_folder() if accelerator.is_main_process else None)
    vectors = np.array(encode_corpus_to_file(Path(folder) / "vectors.npy", model, corpus, batch_size, accelerator, desc))
    _wait(accelerator)
    if accelerator.is_main_process:
        shutil.rmtree(folder, ignore_errors=True)
    return vectors


def _scratch_folder() -> str:
    (cache_dir() / "tmp").mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(dir=cache_dir() / "tmp", prefix="encode-")


def _wait(accelerator) -> None:
    if accelerator is not None:
        accelerator.wait_for_everyone()


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
    device: str = "cpu"  # where searches run: cpu (faiss) | cuda (torch for flat, faiss-gpu for ivfpq)

    def __post_init__(self):
        if self.kind not in ("flat", "hnsw", "ivfpq"):
            raise UserError(f"unknown index kind '{self.kind}'; known: flat, hnsw, ivfpq")

    def on_cpu(self) -> "IndexParams":
        return dataclasses.replace(self, device="cpu")

    def cache_fields(self) -> dict:
        """What decides the index's contents (its cache key): everything but where it is searched."""
        return {k: v for k, v in self.__dict__.items() if k != "device"}


def index_params(cfg) -> IndexParams:
    """The index a run asked for: `--index` kind, searched on `--index-device`."""
    return IndexParams(kind=cfg.index, device=getattr(cfg, "index_device", "cpu"))


TRAIN_ROWS_PER_LIST = 256  # IVF k-means trains on at most 256 vectors per list (FAISS warns above)
ADD_ROWS = 1 << 20


def training_sample(vectors: np.ndarray, rows: int) -> np.ndarray:
    """All vectors, or `rows` of them evenly spaced (deterministic) when there are more."""
    if len(vectors) <= rows:
        return np.ascontiguousarray(vectors, dtype=np.float32)
    return np.ascontiguousarray(vectors[np.linspace(0, len(vectors) - 1, rows).astype(np.int64)], dtype=np.float32)


def exact_scores(queries: np.ndarray, vectors: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """q·v for each query's candidate rows (Q, C); −inf where a candidate is −1 (no result).

    FAISS's own gather-and-dot (`fvec_inner_products_by_idx`, what IndexRefineFlat does) straight on the
    (memory-mapped) float32 vectors: no copy, one thread. Fancy-indexing the memmap and numpy's einsum cost
    about 0.3 ms of CPU per 64 queries x 50 candidates more (bench/scaling.py)."""
    base = np.asarray(vectors)
    ids = np.ascontiguousarray(candidates, dtype=np.int64)
    if base.dtype != np.float32 or not base.flags.c_contiguous:
        picked = base[np.where(ids >= 0, ids, 0).reshape(-1)].astype(np.float32).reshape(*ids.shape, -1)
        out = np.einsum("qd,qcd->qc", queries, picked)
    else:
        out = np.empty(ids.shape, dtype=np.float32)
        faiss.fvec_inner_products_by_idx(faiss.swig_ptr(out), faiss.swig_ptr(queries), faiss.swig_ptr(base),
                                         faiss.swig_ptr(ids), base.shape[1], ids.shape[0], ids.shape[1])
    out[ids < 0] = -np.inf
    return out


class PassageIndex:
    """FAISS inner-product index over normalized passage vectors; FAISS ids are corpus rows."""

    def __init__(self, index: faiss.Index, vectors: np.ndarray | None = None, rerank_factor: int = 1):
        self.index = index
        self.vectors = vectors  # kept for exact re-scoring and for strategies that need passage vectors
        self.rerank_factor = rerank_factor  # > 1 for compressed indexes: approximate candidates, exact scores
        self.searcher = None  # a GPU searcher (`place`), else faiss on the CPU

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
            index.train(training_sample(vectors, TRAIN_ROWS_PER_LIST * nlist))
            index.nprobe = params.nprobe
        for start in range(0, len(vectors), ADD_ROWS):  # a memory-mapped corpus is read a slice at a time
            index.add(np.ascontiguousarray(vectors[start : start + ADD_ROWS], dtype=np.float32))
        return cls(index, vectors, params.rerank_factor if params.kind == "ivfpq" else 1).place(params.device)

    def place(self, device: str) -> "PassageIndex":
        """Search on `device`: "cuda" puts a flat index's vectors on every GPU (torch matmul + top-k) and an
        IVF-PQ index on them through faiss-gpu; "cpu" keeps faiss on the CPU. Returns self."""
        if not device.startswith("cuda"):
            self.searcher = None
        elif isinstance(self.index, faiss.IndexFlat) and self.vectors is not None:
            from harness.retrieval.gpu_search import TorchFlatSearch, cuda_devices

            self.searcher = TorchFlatSearch(np.asarray(self.vectors), cuda_devices())
        else:
            from harness.retrieval.gpu_search import FaissGpuSearch

            self.searcher = FaissGpuSearch(self.index)
        return self

    def _search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.searcher is not None:
            return self.searcher.search(queries, k)
        scores, rows = self.index.search(queries, k)
        return rows, scores

    def __len__(self) -> int:
        return self.index.ntotal

    def search(self, query_vecs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Batched search: (Q, D) -> (rows (Q, k), scores (Q, k))."""
        queries = np.ascontiguousarray(query_vecs, dtype=np.float32)
        if self.rerank_factor <= 1 or self.vectors is None:
            return self._search(queries, k)
        candidates, _ = self._search(queries, k * self.rerank_factor)  # (Q, k*f) approximate
        exact = exact_scores(queries, self.vectors, candidates)  # (Q, k*f)
        order = np.argsort(-exact, axis=1)[:, :k]  # (Q, k) best exact scores first
        return np.take_along_axis(candidates, order, 1), np.take_along_axis(exact, order, 1)

    def save(self, folder: Path) -> None:
        faiss.write_index(self.index, str(folder / "index.faiss"))
        (folder / "search.json").write_text(json.dumps({"rerank_factor": self.rerank_factor}))
        if self.vectors is not None and not _is_file(self.vectors, folder / "vectors.npy"):
            np.save(folder / "vectors.npy", self.vectors)

    @classmethod
    def load(cls, folder: Path) -> "PassageIndex":
        vectors_path = folder / "vectors.npy"
        vectors = np.load(vectors_path, mmap_mode="r") if vectors_path.exists() else None
        settings = json.loads((folder / "search.json").read_text()) if (folder / "search.json").exists() else {}
        return cls(faiss.read_index(str(folder / "index.faiss")), vectors, settings.get("rerank_factor", 1))


def _is_file(array: np.ndarray, path: Path) -> bool:
    """Whether `array` is the memory map of `path` (then saving it again would copy it onto itself)."""
    filename = getattr(array, "filename", None)
    return filename is not None and path.exists() and Path(filename).resolve() == path.resolve()


def build_or_load_index(model, corpus: Corpus, params: IndexParams = IndexParams(), batch_size: int = 64,
                        accelerator=None) -> PassageIndex:
    """The index of `corpus` under `model`, from the cache when the weights, corpus and params match; else
    from vectors shipped with the corpus for these exact weights, once checked (`verified_shipped_vectors`).

    Otherwise the corpus is encoded into a memory-mapped vectors file (sharded over the processes of a
    launched run, see `encode_corpus_to_file`), the main process builds the index once and renames the
    folder into the cache, and every process loads it from there.
    """
    weights, corpus_fp = weights_fingerprint(model), corpus.fingerprint()
    folder = _index_folder(weights, corpus_fp, params)
    main = accelerator is None or accelerator.is_main_process
    if (cached := _load_cached(folder, params, accelerator)) is not None:
        return cached
    shipped = shipped_vectors_file(corpus, weights, corpus_fp)
    if shipped is not None:
        shipped_folder = _index_folder(weights, corpus_fp, params, vectors="shipped-float16")
        if (cached := _load_cached(shipped_folder, params, accelerator)) is not None:
            return cached
        if main:
            vectors = verified_shipped_vectors(shipped, model, corpus, batch_size)
            if vectors is not None:
                cache_entries.publish(shipped_folder, PassageIndex.build(vectors, params.on_cpu()).save)
        if broadcast_from_main(accelerator, (shipped_folder / "index.faiss").is_file()):
            return PassageIndex.load(shipped_folder).place(params.device)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=folder.parent, prefix=".index-") if main else None
    tmp = Path(broadcast_from_main(accelerator, tmp))
    vectors = encode_corpus_to_file(tmp / "vectors.npy", model, corpus, batch_size, accelerator)
    if main:
        PassageIndex.build(vectors, params.on_cpu()).save(tmp)  # placed on its device once loaded
    _wait(accelerator)
    index = PassageIndex.load(tmp).place(params.device)
    _wait(accelerator)  # every process holds its maps before the folder moves
    if main:
        cache_entries.write_manifest(tmp)
        try:
            os.rename(tmp, folder)  # atomic: a crash never leaves a half-written cache entry
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    return index


def _load_cached(folder: Path, params: IndexParams, accelerator=None) -> PassageIndex | None:
    """The cached index in `folder`, placed on its device, if it is there and sound (the main process
    verifies it, and sets a broken one aside with a line saying so: the caller rebuilds it), else None."""
    main = accelerator is None or accelerator.is_main_process
    index = cache_entries.load_verified(folder, PassageIndex.load, "cached index") if main else None
    if not broadcast_from_main(accelerator, index is not None):
        return None
    return (index if main else PassageIndex.load(folder)).place(params.device)


def _index_folder(weights: str, corpus_fp: str, params: IndexParams, **source: str) -> Path:
    """cache_dir()/indexes/<hash(weights, corpus, params[, where the vectors came from])>."""
    key_src = json.dumps([weights, corpus_fp, params.cache_fields(), *([source] if source else [])], sort_keys=True)
    return cache_dir() / "indexes" / hashlib.sha256(key_src.encode()).hexdigest()[:20]


# -- vectors shipped with a packaged corpus ----------------------------------------------------------
# A packaged corpus (fanoutqa_wiki) may set `corpus.vectors_dir` to a folder of float16 vectors named
# <embedder weights fingerprint>-<corpus fingerprint>.f16.npy: the corpus encoded once by those exact
# weights, so a first run skips minutes of encoding. They are used only after a fresh encode of a sample
# agrees; HARNESS_SHIPPED_VECTORS=0 turns them off.
SHIPPED_SAMPLE = 32  # passages re-encoded to check shipped vectors
SHIPPED_TOLERANCE = 2e-3  # float16 rounding moves a unit vector's entries by < 2.5e-4; other weights by > 1e-2


def shipped_vectors_name(weights: str, corpus_fp: str) -> str:
    return f"{weights}-{corpus_fp}.f16.npy"


def shipped_vectors_file(corpus: Corpus, weights: str, corpus_fp: str) -> Path | None:
    folder = getattr(corpus, "vectors_dir", None)
    if folder is None or not env.shipped_vectors():
        return None
    path = Path(folder) / shipped_vectors_name(weights, corpus_fp)
    return path if path.is_file() else None


def save_shipped_vectors(vectors: np.ndarray, folder: Path, weights: str, corpus_fp: str) -> Path:
    """Write `vectors` (the corpus encoded by the weights `weights`) as float16 for shipping."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / shipped_vectors_name(weights, corpus_fp)
    np.save(path, vectors.astype(np.float16))
    return path


def verified_shipped_vectors(path: Path, model, corpus: Corpus, batch_size: int = 64) -> np.ndarray | None:
    """The shipped vectors as normalized float32, or None (with a line saying why) when they do not have the
    corpus's shape, are not unit vectors, or differ from a fresh encode of `SHIPPED_SAMPLE` passages."""
    vectors = np.load(path, allow_pickle=False).astype(np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True) if vectors.ndim == 2 else None
    rows = np.unique(np.linspace(0, len(corpus) - 1, min(SHIPPED_SAMPLE, len(corpus))).astype(int))
    problem = None
    if vectors.shape != (len(corpus), embedding_dimension(model)):
        problem = f"shape {vectors.shape} is not ({len(corpus)}, {embedding_dimension(model)})"
    elif np.abs(norms - 1).max() > SHIPPED_TOLERANCE:
        problem = "they are not unit vectors"
    else:
        vectors /= norms
        diff = float(np.abs(encode_texts(model, [corpus[int(r)].as_text() for r in rows], batch_size) - vectors[rows]).max())
        if diff > SHIPPED_TOLERANCE:
            problem = f"a fresh encode of {len(rows)} passages differs by up to {diff:.2g}"
    if problem:
        print(f"[progress] not using the shipped vectors {path.name}: {problem}; encoding the corpus", file=sys.stderr, flush=True)  # noqa: E501
        return None
    print(f"[progress] using the shipped vectors {path.name} ({len(rows)} passages re-encoded to check them)",
          file=sys.stderr, flush=True)
    return vectors
