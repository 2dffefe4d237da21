"""How each retrieval cost grows with the corpus, the harness side by side with bare FAISS on the same vectors.

    python bench/scaling.py [--sizes 10000,100000,1000000] [--hnsw-max 100000] [--plot docs/scaling-curves.png]

Per corpus size N (a synthetic corpus):
- encode rate: MiniLM (`minilm`) passages/s, measured once on a sample of synthetic ~100-word passages (DPR's
  passage length); a full corpus encode is N / rate (projected: encoding 1M passages on this CPU takes hours);
- the vectors: N x 384 normalized float32 drawn around 1,000 random centres (real embeddings cluster by topic;
  bench_index_recall.py), written to a memory-mapped .npy as `harness index` writes them;
- per index kind (flat, hnsw, ivfpq with the harness's parameters): build seconds and the build's peak
  *anonymous* memory (RssAnon above the baseline, sampled every 10 ms: what the process holds beyond the
  memory-mapped vectors file, whose pages the OS can drop), the same build with bare FAISS calls, search
  seconds for a batch of 64 queries (the fastest of 15), recall@5 against exact search;
  for ivfpq the harness fetches k x rerank_factor = 50 candidates and re-scores them exactly against the
  memory-mapped vectors: it is compared with FAISS's own way of doing that (IndexRefineFlat, k_factor 10,
  which needs the vectors in RAM), with bare IVF-PQ fetching the same 50 (the approximate part alone), and
  FAISS's plain top-5 is shown;
- the re-index cost of one refresh: N / encode rate + the build;
- a training step's seconds and peak memory as k and L grow (tiny models, a synthetic corpus; rag_token's
  step at (k, L) and rag_end2end's with refresh=rerank at R candidates).
The fitted slope of log(cost) against log(N) is printed per curve (1 = linear) and drawn on the plot.
Every time is CPU seconds of the process (time.process_time), not wall time: on this CPU, shared with other
jobs, wall timings of the same call moved by 2x. Builds alternate (harness first, then FAISS first, ...;
medians), searches take the fastest of 15; FAISS runs on `--faiss-threads` (default 1, so CPU time is the
work of one core; OpenMP threads spinning on a busy machine would add CPU time that is not work).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import faiss
import numpy as np
from _machine import header

from harness.retrieval.index import TRAIN_ROWS_PER_LIST, IndexParams, PassageIndex, training_sample

DIM, QUERIES, K, CHUNK = 384, 64, 5, 100_000
MEMORY_FLOOR_MB = 1.0  # peak memory readings below this are glibc reusing freed memory, not the build's need
WORDS = ("river city born studied university engineer north valley company history museum river team winter "
         "island station council album season film village county railway school church novel species war").split()


# -- memory ----------------------------------------------------------------------------------------
def status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))


class PeakAnon:
    """Peak RssAnon (MB) above the value at entry, sampled every 10 ms in a thread."""

    def __enter__(self):
        self.base = self.peak = status_kb("RssAnon")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, status_kb("RssAnon"))
            time.sleep(0.01)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, status_kb("RssAnon"))
        self.mb = (self.peak - self.base) / 1024


# -- data ------------------------------------------------------------------------------------------
def write_vectors(path: Path, n: int, centres: np.ndarray, rng) -> np.ndarray:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, DIM))
    for start in range(0, n, CHUNK):
        out[start : start + CHUNK] = mixture(rng, min(CHUNK, n - start), centres)
    out.flush()
    del out
    return np.load(path, mmap_mode="r")


def mixture(rng, n: int, centres: np.ndarray) -> np.ndarray:
    vecs = centres[rng.integers(0, len(centres), n)] + (0.6 / np.sqrt(DIM)) * rng.standard_normal((n, DIM)).astype(np.float32)
    return (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(vectors), CHUNK):
        scores = queries @ np.asarray(vectors[start : start + CHUNK]).T
        rows = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        scores, rows = np.hstack([best_scores, scores]), np.hstack([best_rows, rows])
        top = np.argsort(-scores, axis=1)[:, :k]
        best_scores, best_rows = np.take_along_axis(scores, top, 1), np.take_along_axis(rows, top, 1)
    return best_rows


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)]))


# -- the two builds ------------------------------------------------------------------------------
def faiss_build(vectors: np.ndarray, params: IndexParams) -> faiss.Index:
    """What a user of bare FAISS writes for the same index (same parameters, same training sample)."""
    if params.kind == "flat":
        index = faiss.IndexFlatIP(DIM)
    elif params.kind == "hnsw":
        index = faiss.IndexHNSWFlat(DIM, params.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = params.ef_search
    else:
        nlist = min(params.nlist, max(1, len(vectors) // 39))
        index = faiss.IndexIVFPQ(faiss.IndexFlatIP(DIM), DIM, nlist, params.m, 8, faiss.METRIC_INNER_PRODUCT)
        index.train(training_sample(vectors, TRAIN_ROWS_PER_LIST * nlist))
        index.nprobe = params.nprobe
    index.add(vectors)
    return index


def timed(fn):
    """(CPU seconds of this process, result): on a CPU shared with other jobs, wall time mostly measures the
    wait for a core; the CPU time is the work (FAISS on 1 thread, numpy's and torch's threads included)."""
    start = time.process_time()
    out = fn()
    return time.process_time() - start, out


def search_seconds(fn, reps: int = 15) -> float:
    """The fastest of `reps` searches (CPU seconds) after a warm-up."""
    fn()  # warm-up
    return min(timed(fn)[0] for _ in range(reps))


def measure_kind(vectors: np.ndarray, queries: np.ndarray, exact: np.ndarray, kind: str, reps: int) -> dict:
    """Build and search with the harness and with bare FAISS, alternating, `reps` times each."""
    params = IndexParams(kind)
    fetch = K * params.rerank_factor if kind == "ivfpq" else K
    row = {"harness_build": [], "faiss_build": [], "harness_mb": [], "faiss_mb": [], "harness_search": [],
           "faiss_search": [], "faiss_search_k": [], "faiss_refine_search": []}
    for rep in range(reps):
        for variant in (("harness", "faiss") if rep % 2 == 0 else ("faiss", "harness")):
            gc.collect()
            with PeakAnon() as mem:
                seconds, built = timed(lambda: PassageIndex.build(vectors, params) if variant == "harness"
                                       else faiss_build(vectors, params))
            row[f"{variant}_build"].append(seconds)
            row[f"{variant}_mb"].append(mem.mb)
            if variant == "harness":
                row["harness_search"].append(search_seconds(lambda: built.search(queries, K)))
                row["recall"] = recall(built.search(queries, K)[0], exact)
            else:
                row["faiss_search"].append(search_seconds(lambda: built.search(queries, fetch)))
                row["faiss_search_k"].append(search_seconds(lambda: built.search(queries, K)))
                row["faiss_recall"] = recall(built.search(queries, K)[1], exact)
                if kind == "ivfpq":  # FAISS's own exact re-ranking of the same candidates (vectors copied to RAM)
                    refine = faiss.IndexRefineFlat(built, faiss.swig_ptr(np.ascontiguousarray(vectors)))
                    refine.k_factor = params.rerank_factor
                    row["faiss_refine_search"].append(search_seconds(lambda: refine.search(queries, K)))
                    del refine
            built = None  # freed before the next build
    out = {key: statistics.median(values) for key, values in row.items() if isinstance(values, list) and values}
    out.update(recall=row["recall"], faiss_recall=row["faiss_recall"], fetch=fetch)
    return out


# -- encode rate and training steps ---------------------------------------------------------------
def synthetic_passages(n: int, words: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, words)) + f" {i}" for i in range(n)]


def encode_rate(sample: int) -> float:
    from harness import plugins
    from harness.retrieval.index import encode_texts
    from harness.types import ModelOptions

    plugins.load_plugins()
    model = plugins.models()["embedder"].get("minilm").load(ModelOptions(device="cpu"))
    texts = synthetic_passages(sample, 100)
    encode_texts(model, texts[:64])  # warm-up
    seconds, _ = timed(lambda: encode_texts(model, texts))
    return sample / seconds


def write_tiny_dataset(root: Path, passages: int) -> Path:
    import json

    root.mkdir(parents=True, exist_ok=True)
    texts = synthetic_passages(passages, 30, seed=1)
    with open(root / "corpus.jsonl", "w") as fh:
        for i, text in enumerate(texts):
            fh.write(json.dumps({"id": f"p{i}", "title": f"t{i}", "text": text}) + "\n")
    for split in ("train", "dev", "test"):
        with open(root / f"{split}.jsonl", "w") as fh:
            for i in range(4):
                fh.write(json.dumps({"id": f"{split}{i}", "question": f"what about {WORDS[i]} {i}?",
                                     "answers": [WORDS[i + 1]], "gold_passage_ids": [f"p{i}"]}) + "\n")
    return root


def step_costs(workdir: Path, passages: int) -> list[dict]:
    """Seconds (median of 3) and peak anonymous memory of one training step of 4 questions (micro_batch 1)."""
    import torch

    from harness import plugins
    from harness.builtins.strategies import rag_end2end, rag_token
    from harness.config import RunConfig
    from harness.models.lora import prepare_generator_for_lora
    from harness.retrieval.refresh import separate_passage_tower
    from harness.runner.assemble import build_pipeline, configure_torch, load_dataset, resolve
    from harness.store.layout import create_run_folder
    from harness.training.context import FitContext
    from harness.training.loop import backward_in_chunks, unfreeze

    plugins.load_plugins()
    data = write_tiny_dataset(workdir / "tiny", passages)
    os.environ.setdefault("HARNESS_RUNS", str(workdir / "runs"))
    cfg = RunConfig(strategy="rag_end2end", dataset="local", data_dir=str(data), embedder="tiny-embedder",
                    generator="tiny-llama")
    resolved = resolve(cfg)
    cfg = resolved.config
    dataset = load_dataset(cfg, resolved)
    configure_torch(0)
    pipeline = build_pipeline(cfg, resolved, dataset, "cpu")
    folder = create_run_folder(cfg, workdir / "runs")
    ctx = FitContext(pipeline, dataset, cfg, resolved.options, "cpu", folder.meta["run_id"], folder)
    prepare_generator_for_lora(ctx)
    unfreeze(pipeline.query_encoder)
    separate_passage_tower(pipeline)
    batch = ctx.train[:4]
    cases = [("rag_token", k, L, 0) for k, L in ((5, 5), (5, 20), (5, 50), (10, 10), (20, 20), (50, 50))]
    cases += [("rag_end2end", 5, 5, R) for R in (0, 20, 100)]
    rows = []
    for name, k, L, R in cases:
        def step():
            pipeline.query_encoder.zero_grad(set_to_none=True)
            pipeline.passage_encoder.zero_grad(set_to_none=True)
            pipeline.generator.model.zero_grad(set_to_none=True)
            if name == "rag_token":
                fn = lambda chunk: rag_token.rag_step(ctx, chunk, k, rag_token.rag_token_loss, True, True, L)  # noqa: E731
            else:
                fn = lambda chunk: rag_end2end.end2end_step(ctx, chunk, k, rag_token.rag_token_loss, L, R)  # noqa: E731
            return backward_in_chunks(ctx, batch, 1, fn)

        step()
        ctx.take_train_flops()
        gc.collect()
        with PeakAnon() as mem:
            seconds = statistics.median(timed(step)[0] for _ in range(3))
        flops = ctx.take_train_flops() / 3
        rows.append({"strategy": name, "k": k, "L": L, "R": R, "seconds": seconds, "mb": mem.mb, "flops": flops})
        torch.set_grad_enabled(True)
    return rows


# -- report -----------------------------------------------------------------------------------------
def slope(sizes: list[int], values: list[float], floor: float = 0.0) -> float:
    """The least-squares slope of log(value) on log(N), over the values above `floor`."""
    good = [(n, v) for n, v in zip(sizes, values) if v and v > floor]
    if len(good) < 2:
        return float("nan")
    x, y = np.log([n for n, _ in good]), np.log([v for _, v in good])
    return float(np.polyfit(x, y, 1)[0])


def plot(curves: dict[str, tuple[list[int], list[float]]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"(matplotlib not installed: no plot; pip install 'rag-harness[bench]' to draw {path})")
        return
    groups = {"seconds": [c for c in curves if c.endswith(" s")], "MB": [c for c in curves if c.endswith(" MB")]}
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for ax, (unit, names) in zip(axes, groups.items()):
        for name in names:
            sizes, values = curves[name]
            floor = MEMORY_FLOOR_MB if unit == "MB" else 0.0
            keep = [(n, v) for n, v in zip(sizes, values) if v and v > floor]
            ax.loglog([n for n, _ in keep], [v for _, v in keep], "o-", label=f"{name.rsplit(' ', 1)[0]} "
                      f"(slope {slope(sizes, values, floor):.2f})")
        ax.set_xlabel("corpus passages N")
        ax.set_ylabel(unit)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_title("time vs corpus size (log-log)")
    axes[1].set_title("peak memory of an index build (log-log)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


def results_from_tables(paths: list[str]) -> dict[tuple[int, str], dict]:
    """The index rows of earlier outputs of this script (a later file's row replaces an earlier one's)."""
    results = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) != 14 or not cells[0].replace(",", "").isdigit():
                continue
            results[(int(cells[0].replace(",", "")), cells[1])] = {
                "harness_build": float(cells[2]), "harness_search": float(cells[5]) / 1e3,
                "harness_mb": float(cells[10].split("/")[0])}
    return results


def draw(results: dict[tuple[int, str], dict], sizes: list[int], rate: float | None, path: Path) -> None:
    """Print the fitted slope of every curve and draw them (log-log)."""
    curves: dict[str, tuple[list[int], list[float]]] = {}
    for kind in ("flat", "hnsw", "ivfpq"):
        ns = [n for n in sizes if (n, kind) in results]
        curves[f"{kind} build s"] = (ns, [results[(n, kind)]["harness_build"] for n in ns])
        curves[f"{kind} search/64q s"] = (ns, [results[(n, kind)]["harness_search"] for n in ns])
        curves[f"{kind} build peak MB"] = (ns, [results[(n, kind)]["harness_mb"] for n in ns])
    if rate:
        curves["MiniLM encode of the corpus s"] = (sizes, [n / rate for n in sizes])
    print("\nfitted slopes d log(cost) / d log(N):")
    for name, (ns, values) in curves.items():
        print(f"  {name:<34} {slope(ns, values, MEMORY_FLOOR_MB if name.endswith(' MB') else 0.0):.2f}")
    plot(curves, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="corpus sizes, comma-separated")
    parser.add_argument("--hnsw-max", type=int, default=100_000, help="largest N to build hnsw at (slow to build)")
    parser.add_argument("--reps", type=int, default=3, help="alternating builds per variant at N <= --reps-max")
    parser.add_argument("--reps-max", type=int, default=10_000, help="above this N, one build per variant")
    parser.add_argument("--encode-sample", type=int, default=256, help="passages MiniLM encodes to measure its rate")
    parser.add_argument("--step-passages", type=int, default=2000, help="corpus of the training-step measurement")
    parser.add_argument("--plot", default="docs/scaling-curves.png")
    parser.add_argument("--workdir", default=None, help="where the vectors files go (default: a temp folder)")
    parser.add_argument("--faiss-threads", type=int, default=1, help="OpenMP threads of FAISS (both variants)")
    parser.add_argument("--kinds", default="flat,hnsw,ivfpq", help="index kinds to measure")
    parser.add_argument("--steps", default="yes", choices=("yes", "no", "only"),
                        help="measure training steps too / not / only them")
    parser.add_argument("--from-tables", nargs="+", default=None, metavar="OUTPUT",
                        help="no measuring: slopes and plot from the tables of earlier outputs (later rows win)")
    parser.add_argument("--rate", type=float, default=None, help="--from-tables: the MiniLM rate to draw")
    args = parser.parse_args()
    if args.from_tables:
        results = results_from_tables(args.from_tables)
        return draw(results, sorted({n for n, _ in results}), args.rate, Path(args.plot))
    faiss.omp_set_num_threads(args.faiss_threads)
    header("cost growth with the corpus: encode, index build/search/memory, recall, refresh, training step")
    sizes = [int(s) for s in args.sizes.split(",")]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="scaling-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads; queries per batch {QUERIES}; k={K}")

    if args.steps == "only":
        return print_steps(workdir, args.step_passages)
    rate = encode_rate(args.encode_sample)
    print(f"\nMiniLM encode rate: {rate:.1f} passages per CPU-second ({args.encode_sample} synthetic ~100-word "
          "passages)")

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((1000, DIM)).astype(np.float32) / np.sqrt(DIM)
    queries = mixture(rng, QUERIES, centres)
    results: dict[tuple[int, str], dict] = {}
    for n in sizes:
        path = workdir / f"vectors-{n}.npy"
        vectors = write_vectors(path, n, centres, np.random.default_rng(n))
        exact = exact_top_k(vectors, queries, K)
        for kind in args.kinds.split(","):
            if kind == "hnsw" and n > args.hnsw_max:
                continue
            result = measure_kind(vectors, queries, exact, kind, args.reps if n <= args.reps_max else 1)
            results[(n, kind)] = result
            same = result.get("faiss_refine_search", result["faiss_search"])
            print(f"N={n:>9,} {kind:<6} build harness {result['harness_build']:8.2f}s faiss {result['faiss_build']:8.2f}s"
                  f"  ratio {result['harness_build'] / result['faiss_build']:.3f} | search/64q harness "
                  f"{result['harness_search'] * 1e3:8.2f}ms faiss {same * 1e3:8.2f}ms ratio "
                  f"{result['harness_search'] / same:.3f} | peak MB {result['harness_mb']:.0f} / {result['faiss_mb']:.0f}"
                  f" | recall@5 {result['recall']:.3f}", flush=True)
        del vectors
        path.unlink()

    print(f"\n| N | index | build s (harness) | build s (FAISS) | ratio | search ms / {QUERIES} q (harness) "
          "| search ms (FAISS, same work) | ratio | FAISS IVF-PQ top-50 ms | FAISS top-5 ms "
          "| build peak MB (harness / FAISS) | vectors MB | recall@5 | refresh s (encode + build) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (n, kind), r in results.items():
        refresh = n / rate + r["harness_build"]
        same = r.get("faiss_refine_search", r["faiss_search"])  # ivfpq: IndexRefineFlat; else the same search
        print(f"| {n:,} | {kind} | {r['harness_build']:.2f} | {r['faiss_build']:.2f} | "
              f"{r['harness_build'] / r['faiss_build']:.3f} | {r['harness_search'] * 1e3:.2f} | "
              f"{same * 1e3:.2f} | {r['harness_search'] / same:.3f} | "
              f"{r['faiss_search'] * 1e3 if kind == 'ivfpq' else float('nan'):.2f} | "
              f"{r['faiss_search_k'] * 1e3:.2f} | {r['harness_mb']:.0f} / {r['faiss_mb']:.0f} | "
              f"{n * DIM * 4 / 2**20:.0f} | {r['recall']:.3f} | {refresh:,.0f} |")

    draw(results, sizes, rate, Path(args.plot))
    if args.steps == "yes":
        print_steps(workdir, args.step_passages)


def print_steps(workdir: Path, passages: int) -> None:
    print(f"\ntraining step (tiny models, 4 questions, micro_batch 1, corpus of {passages:,} passages): "
          "CPU seconds (median of 3), peak anonymous MB, FLOPs")
    print("| strategy | k | L | rerank R | step CPU s | step peak MB | step FLOPs |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in step_costs(workdir, passages):
        print(f"| {r['strategy']} | {r['k']} | {r['L']} | {r['R'] or '-'} | {r['seconds']:.2f} | {r['mb']:.0f} | "
              f"{r['flops']:.3g} |", flush=True)


if __name__ == "__main__":
    main()
