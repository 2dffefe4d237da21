"""`harness run --index ivfpq` over a 1M-passage corpus, end to end: peak memory against the vectors' size.

    python bench/run_1m.py [--passages 1000000] [--dataset local|wikipedia] [--workdir /tmp/run1m]

Encoding 1M passages with MiniLM on this CPU would take hours (bench/scaling.py measures its rate), so the
run uses a stand-in embedder with MiniLM's output size: a BERT with 384-d embeddings and no transformer
layer (token + position embeddings, mean-pooled, normalized), saved as a sentence-transformers folder and
passed as `--embedder hf:FOLDER`. Its vectors are exactly as large as MiniLM's (1M x 384 float32 =
1.43 GiB) and go through the same code (encode into a memory-mapped file, build, save, load, search); only
their quality differs, which this measurement does not need. The generator is `tiny-llama`, the strategy
`no_ft`, `--limit 5`: the run is the corpus, the index and a few answers.

The corpus is synthetic (short passages, ids p0..pN-1); questions name passages as gold. The run is a child
process (its own cache, store and runs folder under the workdir); its memory is sampled every 0.2 s from
/proc: VmHWM (peak resident), RssAnon (memory the process holds) and RssFile (pages of mapped files, the
vectors' among them, which the OS can drop). Run twice: a cold cache (the corpus encoded and the index
built) and a warm one (the cached index loaded).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from _machine import header

DIM = 384
WORDS = "river city born studied university engineer north valley company history museum team winter".split()


def write_dataset(root: Path, passages: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    corpus = root / "corpus.jsonl"
    if not corpus.exists() or sum(1 for _ in open(corpus)) != passages:
        with open(corpus, "w") as fh:
            for i in range(passages):
                text = f"{WORDS[i % 13]} {WORDS[(i // 13) % 13]} {WORDS[(i // 169) % 13]} number {i}"
                fh.write(json.dumps({"id": f"p{i}", "title": f"t{i % 1000}", "text": text}) + "\n")
    for split in ("train", "dev", "test"):
        with open(root / f"{split}.jsonl", "w") as fh:
            for i in range(10):
                row = i * 997 % passages
                fh.write(json.dumps({"id": f"{split}{i}", "question": f"which passage has number {row}?",
                                     "answers": [str(row)], "gold_passage_ids": [f"p{row}"]}) + "\n")
    return root


def write_embedder(folder: Path) -> Path:
    """A 384-d, zero-layer BERT sentence-transformer (character vocabulary, mean pooling, normalized)."""
    if (folder / "modules.json").exists():
        return folder
    import string

    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    chars = string.ascii_lowercase + string.digits + string.punctuation
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    raw = folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(raw / "vocab.txt"), do_lower_case=True).save_pretrained(raw)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=DIM, num_hidden_layers=0, num_attention_heads=4,
                        intermediate_size=4 * DIM, max_position_embeddings=512)
    BertModel(config, add_pooling_layer=False).save_pretrained(raw, safe_serialization=True)
    word = models.Transformer(str(raw), max_seq_length=48)
    SentenceTransformer(modules=[word, models.Pooling(DIM, "mean"), models.Normalize()], device="cpu").save(str(folder))
    return folder


def status(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key = line.split(":")[0]
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                out[key] = int(line.split()[1]) // 1024  # MB
    return out


def run_measured(args: list[str], env: dict, log: Path) -> dict:
    peaks = {"VmHWM": 0, "RssAnon": 0, "RssFile": 0}
    start = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(args, env=env, stdout=fh, stderr=subprocess.STDOUT)

        def sample():
            while proc.poll() is None:
                try:
                    for key, value in status(proc.pid).items():
                        if key in peaks:
                            peaks[key] = max(peaks[key], value)
                except OSError:
                    break
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        sampler.join()
    return {"exit": code, "seconds": time.perf_counter() - start, **peaks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=1_000_000)
    parser.add_argument("--dataset", default="local", choices=("local", "wikipedia"))
    parser.add_argument("--workdir", default="/tmp/run1m")
    parser.add_argument("--limit", type=int, default=5)
    args = parser.parse_args()
    header(f"harness run --index ivfpq over {args.passages:,} passages: peak memory vs the vectors")
    work = Path(args.workdir)
    data = write_dataset(work / f"data-{args.passages}", args.passages)
    embedder = write_embedder(work / "embedder-384-0layer")
    env = {**os.environ, "HARNESS_CACHE": str(work / "cache"), "HARNESS_DB": str(work / "h.duckdb"),
           "HARNESS_RUNS": str(work / "runs")}
    command = [sys.executable, "-m", "harness", "run", "--plugin", "no_ft", "--dataset", args.dataset,
               "--data-dir", str(data), "--embedder", f"hf:{embedder}", "--generator", "tiny-llama",
               "--index", "ivfpq", "--limit", str(args.limit), "--eval-splits", "test", "--max-new-tokens", "4"]
    vectors_mb = args.passages * DIM * 4 / 2**20
    print(f"command: {' '.join(command)}")
    print(f"vectors: {args.passages:,} x {DIM} float32 = {vectors_mb:,.0f} MB")
    print("| cache | exit | wall s | peak RSS (VmHWM) MB | peak RssAnon MB | peak RssFile MB | peak RSS / vectors |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for cache in ("cold", "warm"):
        result = run_measured(command, env, work / f"run-{cache}.log")
        print(f"| {cache} | {result['exit']} | {result['seconds']:.0f} | {result['VmHWM']:,} | {result['RssAnon']:,} | "
              f"{result['RssFile']:,} | {result['VmHWM'] / vectors_mb:.2f} |", flush=True)


if __name__ == "__main__":
    main()
