"""The GPU path, proven on a GPU: one prepared check for one H200, under 8 minutes (docs/gpu.md).

    python bench/gpu_check_prepare.py                          # here: wheels + model architectures into .gpucheck/
    python bench/gpu_check.py --out DIR                        # on the GPU machine (docs/gpu.md has the device call)
    python bench/gpu_check.py --smoke --out DIR                # anywhere, on the CPU: the same code on small sizes

Models: SmolLM2-135M-Instruct's and all-MiniLM-L6-v2's exact architectures and tokenizers with seeded random
weights (their real weights do not fit the 64 MiB a device call carries). Time, memory, FLOPs, MFU and the
GPU-vs-CPU agreements depend on shapes, not on the weights' values; answer quality (EM) is not measured here.
Data: the default dataset (fanoutqa_wiki), and a synthetic 1M-passage matrix for search speed.

Sections, each timed and kept apart (one failing does not lose the others):
  environment   device, capability, memory; a measured bf16 matmul rate beside the datasheet peak
  search        the default corpus encoded on the GPU; flat search on the GPU (torch) vs faiss on the CPU:
                same rows, and speed on 1M x 384
  training      ft_gen's objective, same init and batches: QLoRA nf4 (bf16 compute), LoRA on bf16 weights,
                LoRA on fp32 weights under bf16 autocast, LoRA bf16 + gradient checkpointing, LoRA bf16 with
                eager attention instead of SDPA, LoRA bf16 at batch 16, and LoRA fp32 on the CPU:
                losses per step, tokens/s, peak memory, MFU (harness/training/flops.py FLOPs / step seconds / peak)
  evaluation    batched left-padded greedy decoding at batch 8 vs the batch sized by free memory, and the CPU
  cli           `harness run` for ft_gen, rag_token and jsa_rag on CUDA with --index-device cuda, read back
                from the store: the stored per-step tokens/s, MFU, peak memory and the run's device
A table is printed last; everything is also written to DIR/gpu_check.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no internet there: never wait on the hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from harness.runtime.gpu import generator_dtype_name, mfu, peak_flops, probe  # noqa: E402

ARCH = Path(os.environ.get("GPU_CHECK_ARCH", ROOT / ".gpucheck" / "models"))  # bench/gpu_check_prepare.py writes it


class Check:
    """Sections with a shared time budget; results gathered into one dict, failures recorded, not raised."""

    def __init__(self, args):
        self.args, self.results, self.start = args, {}, time.perf_counter()

    def run(self, name: str, fn, *a):
        left = self.args.budget - (time.perf_counter() - self.start)
        if left < 20:
            self.results[name] = {"skipped": f"time budget spent ({self.args.budget} s)"}
            print(f"== {name}: skipped, time budget spent", flush=True)
            return None
        print(f"== {name} ({left:.0f} s left)", flush=True)
        began = time.perf_counter()
        try:
            out = fn(*a)
            self.results[name] = out if isinstance(out, dict) else {"value": out}
        except Exception as exc:  # keep going: the other sections still measure
            traceback.print_exc()
            self.results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            out = None
        self.results.setdefault(name, {})["section_seconds"] = round(time.perf_counter() - began, 1)
        self.save()  # after every section: a run killed at its time limit keeps what it measured
        return out

    def save(self) -> None:
        Path(self.args.out).mkdir(parents=True, exist_ok=True)
        (Path(self.args.out) / "gpu_check.json").write_text(json.dumps(self.results, indent=2, default=str))


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeat: int = 1, warm_up: bool = True):
    """(median seconds, last result) over `repeat` calls after one warm-up call, the device waited for."""
    out = fn() if warm_up else None
    seconds = []
    for _ in range(repeat):
        sync(device)
        t = time.perf_counter()
        out = fn()
        sync(device)
        seconds.append(time.perf_counter() - t)
    return float(np.median(seconds)), out


# -- environment ----------------------------------------------------------------------------------
def environment(device: str, smoke: bool) -> dict:
    import transformers

    caps = probe(device)
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__,
            "device": caps.name, "capability": list(caps.capability), "bf16": caps.bf16,
            "memory_gib": round(caps.total_memory / 2**30, 1), "cpu_threads": torch.get_num_threads(),
            "datasheet_peak_tflops": (peak_flops(caps.name, generator_dtype_name(caps)) or 0) / 1e12}
    for name in ("peft", "bitsandbytes", "faiss", "duckdb", "sentence_transformers"):
        try:
            info[name] = __import__(name).__version__
        except Exception as exc:
            info[name] = f"missing ({type(exc).__name__})"
    if device.startswith("cuda"):
        n = 1024 if smoke else 8192
        a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
        seconds, _ = timed(lambda: a @ b, device, repeat=10)
        info["measured_bf16_matmul_tflops"] = round(2 * n**3 / seconds / 1e12, 1)
    return info


# -- models (seeded random weights in the real architectures) ------------------------------------
def build_models(root: Path, smoke: bool) -> tuple[str, str]:
    from transformers import AutoConfig, AutoModelForCausalLM, BertConfig, BertModel

    gen, emb = root / "smollm2-135m-arch", root / "minilm-l6-arch"
    shutil.copytree(ARCH / "smollm2-135m-arch", gen, dirs_exist_ok=True)
    config = AutoConfig.from_pretrained(gen)
    if smoke:
        config.num_hidden_layers = 2
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(gen, safe_serialization=True)
    shutil.copytree(ARCH / "minilm-l6-arch", emb, dirs_exist_ok=True)
    torch.manual_seed(0)
    BertModel(BertConfig.from_pretrained(emb), add_pooling_layer=False).save_pretrained(emb, safe_serialization=True)
    return str(gen), str(emb)


def load_data(args):
    from harness import plugins
    from harness.types import DatasetOptions

    plugins.load_plugins()
    return plugins.datasets().get(args.dataset).load(DatasetOptions(data_dir=args.data_dir))


# -- search -----------------------------------------------------------------------------------------
def search(device: str, emb: str, dataset, smoke: bool) -> dict:
    from harness.models.loading import load_sentence_transformer
    from harness.retrieval.gpu_search import TorchFlatSearch, cuda_devices
    from harness.retrieval.index import IndexParams, PassageIndex, encode_corpus, encode_texts

    out: dict = {"passages": len(dataset.corpus)}
    encoder = load_sentence_transformer(emb, device)
    seconds, vectors = timed(lambda: encode_corpus(encoder, dataset.corpus, batch_size=256), device)
    out["encode_passages_per_s_device"] = round(len(vectors) / seconds, 1)
    cpu_encoder = load_sentence_transformer(emb, "cpu")
    sample = type(dataset.corpus)([dataset.corpus[i] for i in range(min(256, len(dataset.corpus)))])
    cpu_seconds, _ = timed(lambda: encode_corpus(cpu_encoder, sample, batch_size=64), "cpu", warm_up=False)
    out["encode_passages_per_s_cpu"] = round(len(sample) / cpu_seconds, 1)
    out["encode_device_over_cpu"] = round(out["encode_passages_per_s_device"] / out["encode_passages_per_s_cpu"], 1)
    questions = [ex.question for ex in dataset.train + dataset.dev + dataset.test]
    queries = encode_texts(encoder, questions)
    cpu_rows, cpu_scores = PassageIndex.build(vectors).search(queries, 5)
    gpu_rows, gpu_scores = PassageIndex.build(vectors, IndexParams("flat", device=device)).search(queries, 5)
    out["corpus_same_rows"] = float((cpu_rows == gpu_rows).mean())
    out["corpus_max_score_diff"] = float(np.abs(cpu_scores - gpu_scores).max())
    # speed on a corpus the size users search: 1M x 384 normalized, 4,096 queries, top 10
    n, q = (20_000, 256) if smoke else (1_000_000, 4096)
    rng = np.random.default_rng(0)
    big = rng.standard_normal((n, 384), dtype=np.float32)
    big /= np.linalg.norm(big, axis=1, keepdims=True)
    qs = big[rng.integers(0, n, q)] + 0.1 * rng.standard_normal((q, 384), dtype=np.float32)
    cpu_index = PassageIndex.build(big)
    cpu_s, (cpu_rows, _) = timed(lambda: cpu_index.search(qs, 10), "cpu")
    devices = cuda_devices() if device.startswith("cuda") else ["cpu"]
    load_start = time.perf_counter()
    gpu_index = TorchFlatSearch(big, devices)
    sync(device)
    out["synthetic_to_device_s"] = round(time.perf_counter() - load_start, 2)
    gpu_s, (gpu_rows, _) = timed(lambda: gpu_index.search(qs, 10), device, repeat=5)
    out.update({"synthetic_shape": [n, 384, q], "synthetic_cpu_faiss_qps": round(q / cpu_s),
                "synthetic_device_torch_qps": round(q / gpu_s), "synthetic_device_over_cpu": round(cpu_s / gpu_s, 1),
                "synthetic_same_rows": float((cpu_rows == gpu_rows).mean()), "devices": devices})
    try:
        import faiss

        out["faiss_gpu"] = hasattr(faiss, "StandardGpuResources")
    except ImportError:
        out["faiss_gpu"] = False
    return out


# -- training ----------------------------------------------------------------------------------------
def training_prompts(device: str, emb: str, dataset, n: int) -> tuple[list[str], list[str]]:
    """ft_gen's prompts: the question with the top-5 passages of the (frozen) retriever, and the gold answers."""
    from harness.models.generation import Generator
    from harness.models.loading import load_sentence_transformer
    from harness.pipeline import RagPipeline
    from harness.retrieval.index import IndexParams, PassageIndex, encode_corpus

    encoder = load_sentence_transformer(emb, device)
    index = PassageIndex.build(encode_corpus(encoder, dataset.corpus, batch_size=256), IndexParams(device=device))
    examples = (dataset.train * (1 + n // max(1, len(dataset.train))))[:n]
    gen_dir = Path(emb).parent / "smollm2-135m-arch"
    from transformers import AutoTokenizer

    pipeline = RagPipeline(encoder, encoder, index, dataset.corpus, Generator(None, AutoTokenizer.from_pretrained(gen_dir)), 5)
    questions = [ex.question for ex in examples]
    rows, _ = pipeline.retrieve(questions)
    return pipeline.prompts(questions, rows), [ex.answers[0] for ex in examples]


def load_variant(variant: str, gen: str, device: str):
    """(Generator, autocast dtype or None) for one training variant."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.models.generation import Generator
    from harness.models.loading import load_causal_lm

    if variant == "qlora_nf4_bf16":
        return Generator(*load_causal_lm(gen, device, "4bit")), None
    if variant == "lora_fp32_autocast_bf16":
        model, tokenizer = load_causal_lm(gen, "cpu")
        return Generator(model.to(device), tokenizer), torch.bfloat16 if device.startswith("cuda") else None
    if variant == "lora_bf16_eager_attention":
        model = AutoModelForCausalLM.from_pretrained(gen, dtype=torch.bfloat16 if device.startswith("cuda") else torch.float32,
                                                     attn_implementation="eager").to(device)
        return Generator(model, AutoTokenizer.from_pretrained(gen)), None
    return Generator(*load_causal_lm(gen, "cpu" if variant == "lora_fp32_cpu" else device)), None


def train_variant(variant: str, gen: str, device: str, prompts, answers, steps: int, batch: int) -> dict:
    """ft_gen's loop (harness building blocks) for `steps` steps; per-step loss, seconds, tokens, FLOPs."""
    from harness.builtins.strategies.ft_gen import answer_nll
    from harness.models.lora import add_lora
    from harness.training.flops import FlopCounter
    from harness.training.loop import generator_token_count, linear_schedule, trainable

    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    generator, autocast = load_variant(variant, gen, device)
    torch.manual_seed(0)
    add_lora(generator, 16, quantized=variant.startswith("qlora"), gradient_checkpointing="checkpointing" in variant)
    counter = FlopCounter()
    counter.watch(generator.model)
    optimizer, scheduler = linear_schedule([(trainable(generator.model), 1e-3, "gen")], steps)
    generator.model.train()
    run_device = str(generator.device)
    losses, seconds, tokens, flops = [], [], [], []
    for step in range(steps):
        lo = (step * batch) % len(prompts)
        p, a = prompts[lo : lo + batch], answers[lo : lo + batch]
        sync(run_device)
        t = time.perf_counter()
        with torch.autocast("cuda", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            loss = answer_nll(generator, p, a)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        sync(run_device)
        seconds.append(time.perf_counter() - t)
        losses.append(float(loss))
        tokens.append(generator_token_count(generator, p, a))
        flops.append(counter.take())
    return summarize_steps(variant, run_device, losses, seconds, tokens, flops)


def summarize_steps(variant, device, losses, seconds, tokens, flops) -> dict:
    caps = probe(device)
    peak = peak_flops(caps.name, "float32" if "fp32" in variant and "autocast" not in variant else generator_dtype_name(caps))
    timed_steps = slice(2, None) if len(seconds) > 3 else slice(0, None)  # the first steps warm kernels up
    step_s = float(np.median(seconds[timed_steps]))
    step_flops = float(np.median(flops[timed_steps]))
    out = {"device": device, "losses": [round(x, 4) for x in losses], "step_seconds": round(step_s, 4),
           "tokens_per_s": round(float(np.median(tokens[timed_steps])) / step_s, 1),
           "flops_per_step": step_flops, "mfu": round(mfu(step_flops, step_s, peak), 4) if peak else None}
    if device.startswith("cuda"):
        out["peak_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def training(device: str, gen: str, emb: str, dataset, smoke: bool) -> dict:
    steps, batch = (2, 2) if smoke else (12, 4)
    prompts, answers = training_prompts(device, emb, dataset, 16 * steps)
    variants = ["qlora_nf4_bf16", "lora_bf16", "lora_fp32_autocast_bf16", "lora_bf16_gradient_checkpointing",
                "lora_bf16_eager_attention"]
    out = {"steps": steps, "batch": batch}
    for variant in variants:
        out[variant] = train_variant(variant, gen, device, prompts, answers, steps, batch)
        print(f"   {variant}: {out[variant]}", flush=True)
    out["lora_bf16_batch16"] = train_variant("lora_bf16", gen, device, prompts, answers, min(steps, 6), 4 * batch)
    out["lora_fp32_cpu"] = train_variant("lora_fp32_cpu", gen, device, prompts, answers, 2, batch)
    q, b = out["qlora_nf4_bf16"]["losses"], out["lora_bf16"]["losses"]
    out["qlora_vs_lora_max_relative_loss_gap"] = round(max(abs(x - y) / abs(y) for x, y in zip(q, b)), 4)
    out["lora_bf16_over_cpu_tokens_per_s"] = round(out["lora_bf16"]["tokens_per_s"] / out["lora_fp32_cpu"]["tokens_per_s"], 1)
    out["qlora_over_cpu_tokens_per_s"] = round(out["qlora_nf4_bf16"]["tokens_per_s"] / out["lora_fp32_cpu"]["tokens_per_s"], 1)
    return out


# -- evaluation ---------------------------------------------------------------------------------------
def evaluation(device: str, gen: str, emb: str, dataset, smoke: bool) -> dict:
    from harness.models.generation import Generator
    from harness.models.loading import load_causal_lm
    from harness.runtime.gpu import DecoderShape, sequence_bytes

    prompts, _ = training_prompts(device, emb, dataset, 16 if smoke else 256)
    generator = Generator(*load_causal_lm(gen, device))
    auto = generator.batch_size_for(prompts, 24)
    generator.generate(prompts[:2], 24, 2)  # warm-up: kernels, cuBLAS handles
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    auto_s, auto_answers = timed(lambda: generator.generate(prompts, 24, auto), device, warm_up=False)
    peak_mb = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    eight_s, eight_answers = timed(lambda: generator.generate(prompts, 24, 8), device, warm_up=False)
    cpu = Generator(*load_causal_lm(gen, "cpu"))
    cpu_prompts = prompts[:8]
    cpu_s, _ = timed(lambda: cpu.generate(cpu_prompts, 24, 8), "cpu", warm_up=False)
    longest = max(len(ids) for ids in generator._encode(prompts)) + 24
    estimate = sequence_bytes(DecoderShape.from_config(generator.model.config), longest,
                              2 if probe(device).bf16 else 4) * min(auto, len(prompts))
    return {"prompts": len(prompts), "auto_batch": auto, "auto_seconds": round(auto_s, 2),
            "batch8_seconds": round(eight_s, 2), "auto_over_batch8_speedup": round(eight_s / auto_s, 2),
            "same_answers_auto_vs_8": float(np.mean([x == y for x, y in zip(auto_answers, eight_answers)])),
            "peak_memory_mb_auto": peak_mb, "estimated_mb_auto_batch": round(estimate / 2**20, 1),
            "questions_per_s_device": round(len(prompts) / auto_s, 2),
            "questions_per_s_cpu": round(len(cpu_prompts) / cpu_s, 2),
            "device_over_cpu": round((len(prompts) / auto_s) / (len(cpu_prompts) / cpu_s), 1)}


# -- the real CLI ----------------------------------------------------------------------------------------
def cli_runs(device: str, gen: str, emb: str, args, work: Path) -> dict:
    from harness.store.db import Store

    db = work / "check.duckdb"
    env = {**os.environ, "HARNESS_DB": str(db), "HARNESS_CACHE": str(work / "cache"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = {}
    for strategy in ("ft_gen", "rag_token", "jsa_rag"):
        cmd = [sys.executable, "-m", "harness", "run", "--plugin", strategy, "--dataset", args.dataset,
               "--embedder", f"hf:{emb}", "--generator", f"hf:{gen}", "--limit", "4" if args.smoke else "16",
               "--index-device", "cuda" if device.startswith("cuda") else "cpu"]
        if args.data_dir:
            cmd += ["--data-dir", args.data_dir]
        began, left = time.perf_counter(), args.deadline - time.perf_counter()
        if left < 30:
            out[strategy] = {"skipped": "time budget spent"}
            continue
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=left)
        except subprocess.TimeoutExpired:
            out[strategy] = {"exit": "timeout", "wall_s": round(left, 1)}
            continue
        result = {"exit": done.returncode, "wall_s": round(time.perf_counter() - began, 1)}
        if done.returncode != 0:
            result["stderr"] = done.stderr[-1500:]
        out[strategy] = result
        print(f"   {strategy}: exit {done.returncode} in {result['wall_s']} s", flush=True)
    store = Store(str(db))
    for run in store.query("SELECT id, strategy, status, device, config FROM runs"):
        per_step = store.query("SELECT name, median(value) AS median, max(value) AS max, count(*) AS steps "
                               "FROM train_log WHERE run_id = ? AND name IN ('tokens_per_second', 'mfu', 'generator_4bit', "
                               "'peak_memory_mb', 'train_flops', 'step_seconds') GROUP BY name", [run["id"]])
        cost = store.run_metrics(run["id"]).get("cost", {})
        out[run["strategy"]].update({
            "status": run["status"], "device": run["device"],
            "quantize": json.loads(run["config"]).get("quantize"),
            "per_step": {r["name"]: {"median": r["median"], "max": r["max"], "steps": r["steps"]} for r in per_step},
            "fit_seconds": cost.get("fit_seconds"), "peak_memory_mb": cost.get("peak_memory_mb")})
    return out


# -- the table ------------------------------------------------------------------------------------------------
def summary_rows(r: dict) -> list[tuple[str, str]]:
    def get(*path, fmt="{}"):
        node = r
        for key in path:
            if not isinstance(node, dict) or key not in node:
                return "–"
            node = node[key]
        return fmt.format(node) if node is not None else "–"

    rows = [("device", get("environment", "device")),
            ("bf16 matmul TFLOP/s measured / datasheet", f"{get('environment', 'measured_bf16_matmul_tflops')} / "
                                                          f"{get('environment', 'datasheet_peak_tflops')}"),
            ("search: same rows GPU vs CPU (default corpus)", get("search", "corpus_same_rows")),
            ("search 1M x 384: GPU / CPU queries per s", f"{get('search', 'synthetic_device_torch_qps')} / "
                                                          f"{get('search', 'synthetic_cpu_faiss_qps')} = "
                                                          f"{get('search', 'synthetic_device_over_cpu')}x")]
    for v in ("qlora_nf4_bf16", "lora_bf16", "lora_fp32_autocast_bf16", "lora_bf16_gradient_checkpointing",
              "lora_bf16_eager_attention", "lora_bf16_batch16", "lora_fp32_cpu"):
        rows.append((f"train {v}: tokens/s · MFU · peak MB",
                     f"{get('training', v, 'tokens_per_s')} · {get('training', v, 'mfu')} · "
                     f"{get('training', v, 'peak_memory_mb')}"))
    rows += [("train QLoRA vs LoRA bf16: max relative loss gap", get("training", "qlora_vs_lora_max_relative_loss_gap")),
             ("train LoRA bf16 GPU / CPU tokens per s", get("training", "lora_bf16_over_cpu_tokens_per_s")),
             ("eval batch by memory · speed-up over 8 · GPU/CPU",
              f"{get('evaluation', 'auto_batch')} · {get('evaluation', 'auto_over_batch8_speedup')}x · "
              f"{get('evaluation', 'device_over_cpu')}x")]
    for s in ("ft_gen", "rag_token", "jsa_rag"):
        rows.append((f"cli {s}: exit · 4-bit · tokens/s · MFU · peak MB",
                     f"{get('cli', s, 'exit')} · {get('cli', s, 'per_step', 'generator_4bit', 'max')} · "
                     f"{get('cli', s, 'per_step', 'tokens_per_second', 'median', fmt='{:.0f}')} · "
                     f"{get('cli', s, 'per_step', 'mfu', 'median', fmt='{:.4f}')} · "
                     f"{get('cli', s, 'per_step', 'peak_memory_mb', 'max', fmt='{:.0f}')}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT", "."), help="folder for gpu_check.json")
    parser.add_argument("--smoke", action="store_true", help="the CPU and small sizes: checks the script, not a GPU")
    parser.add_argument("--budget", type=float, default=360.0, help="seconds; later sections are skipped past it")
    parser.add_argument("--dataset", default="fanoutqa_wiki")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--sections", default="environment,search,training,evaluation,cli")
    args = parser.parse_args()
    device = "cpu" if args.smoke else "cuda"
    if not args.smoke and not torch.cuda.is_available():
        sys.exit("error: no CUDA device visible (use --smoke to check the script on the CPU)")
    torch.set_num_threads(os.cpu_count() or 1)
    from harness.cli.common import quiet_libraries

    quiet_libraries()
    check = Check(args)
    args.deadline = check.start + args.budget
    wanted = set(args.sections.split(","))
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    os.environ["HARNESS_CACHE"] = str(work / "cache")
    if "environment" in wanted:
        check.run("environment", environment, device, args.smoke)
    models = check.run("models", build_models, work / "models", args.smoke)
    dataset = check.run("data", load_data, args)
    if models and dataset is not None:
        gen, emb = models
        check.results["data"] = {"passages": len(dataset.corpus), "train": len(dataset.train),
                                 "dev": len(dataset.dev), "test": len(dataset.test)}
        for name, fn, extra in (("search", search, (device, emb, dataset, args.smoke)),
                                ("training", training, (device, gen, emb, dataset, args.smoke)),
                                ("evaluation", evaluation, (device, gen, emb, dataset, args.smoke)),
                                ("cli", cli_runs, (device, gen, emb, args, work))):
            if name in wanted:
                check.run(name, fn, *extra)
    check.results["total_seconds"] = round(time.perf_counter() - check.start, 1)
    check.save()
    print("\n" + "\n".join(f"{k:<58} {v}" for k, v in summary_rows(check.results)))
    print(f"total {check.results['total_seconds']} s · full results in {Path(args.out) / 'gpu_check.json'}")
    failed = [k for k, v in check.results.items() if isinstance(v, dict) and "error" in v]
    cli_failed = [s for s, v in check.results.get("cli", {}).items() if isinstance(v, dict) and v.get("exit") not in (0, None)]
    if failed or cli_failed:
        print(f"FAILED sections: {failed} · failed CLI runs: {cli_failed}")
        sys.exit(1)


if __name__ == "__main__":
    main()
