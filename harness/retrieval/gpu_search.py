"""Exact inner-product search on GPUs with torch: `--index-device cuda` for the flat index.

The corpus vectors are split by rows into one shard per device (float32, so the scores are the CPU's to
rounding). A search multiplies each shard by the queries, `(Q, D) @ (D, n_i) -> (Q, n_i)`, keeps each
shard's top k with `torch.topk`, and merges the shards' candidates into the global top k on the first
device. The queries go in chunks so one score block stays within a fixed budget, whatever the corpus.
Faiss is not needed here: on one device this is what faiss-gpu's flat index does (a GEMM and a k-select);
IVF-PQ on GPUs goes through faiss-gpu (`to_faiss_gpu`).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from harness.runtime.gpu import query_chunk_rows


class TorchFlatSearch:
    """Passage vectors sharded over `devices`; `search(queries, k)` -> (rows (Q, k), scores (Q, k)), best first."""

    def __init__(self, vectors: np.ndarray, devices: list[str], score_budget_bytes: int = 1 << 30):
        bounds = np.linspace(0, len(vectors), len(devices) + 1).astype(int)
        self.offsets = [int(b) for b in bounds[:-1]]
        self.shards = [torch.from_numpy(np.ascontiguousarray(vectors[lo:hi], dtype=np.float32)).to(dev)
                       for dev, lo, hi in zip(devices, bounds[:-1], bounds[1:])]
        self.devices = list(devices)
        self.budget = score_budget_bytes

    def __len__(self) -> int:
        return sum(len(s) for s in self.shards)

    @torch.no_grad()
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
        chunk = query_chunk_rows(max(len(s) for s in self.shards), self.budget)
        rows, scores = [], []
        for start in range(0, len(q), chunk):
            r, s = self._search_chunk(q[start : start + chunk], k)
            rows.append(r)
            scores.append(s)
        if not rows:
            return np.empty((0, k), dtype=np.int64), np.empty((0, k), dtype=np.float32)
        return torch.cat(rows).numpy(), torch.cat(scores).numpy()

    def _search_chunk(self, q: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One chunk of queries against every shard: each shard's top k, then the merged top k."""
        home = self.devices[0]
        cand_scores, cand_rows = [], []
        for shard, offset in zip(self.shards, self.offsets):
            if len(shard) == 0:
                continue
            block = q.to(shard.device, non_blocking=True) @ shard.T  # (Q, n_i) inner products
            top = torch.topk(block, min(k, len(shard)), dim=1)  # (Q, k_i), sorted
            cand_scores.append(top.values.to(home))
            cand_rows.append((top.indices + offset).to(home))
        scores = torch.cat(cand_scores, dim=1)  # (Q, Σ k_i)
        rows = torch.cat(cand_rows, dim=1)
        best = torch.topk(scores, min(k, scores.shape[1]), dim=1)  # (Q, k) over all shards
        merged_rows = rows.gather(1, best.indices)
        return _pad(merged_rows.cpu(), best.values.cpu(), k)


def _pad(rows: torch.Tensor, scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to k columns the way faiss does when the corpus is smaller than k: row -1, the lowest float32."""
    missing = k - rows.shape[1]
    if missing <= 0:
        return rows, scores
    rows = torch.cat([rows, torch.full((rows.shape[0], missing), -1, dtype=rows.dtype)], dim=1)
    scores = torch.cat([scores, torch.full((scores.shape[0], missing), torch.finfo(scores.dtype).min, dtype=scores.dtype)], dim=1)
    return rows, scores


def cuda_devices() -> list[str]:
    """The GPUs this process shards the flat index over: every visible one; in a run launched on several
    processes (accelerate sets WORLD_SIZE > 1 and LOCAL_RANK), only its own, which then holds the whole index
    (N processes sharding over all N GPUs would put N shards on each GPU and search them all N times)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ:
        return [f"cuda:{int(os.environ['LOCAL_RANK'])}"]
    return [f"cuda:{i}" for i in range(torch.cuda.device_count())]


class FaissGpuSearch:
    """A faiss CPU index (IVF-PQ) copied onto every visible GPU, sharded when there are several; needs faiss-gpu."""

    def __init__(self, index):
        import faiss

        options = faiss.GpuMultipleClonerOptions()
        options.shard = True
        options.useFloat16LookupTables = True  # IVF-PQ with many sub-quantizers needs it on the GPU
        self.index = faiss.index_cpu_to_all_gpus(index, co=options)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, rows = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return rows, scores
