"""The GPU decisions, each a pure function of what the device can do, and the arithmetic of its cost.

Precision (docs/architecture.md §11, docs/gpu.md says why):
- generator weights: bfloat16 on a CUDA device that computes in bf16 (compute capability >= 8.0: A100,
  A10, L4, H100, H200, ...), else float32 (CPU, V100, T4: float16 would need loss scaling). The base
  weights are frozen under LoRA, so bf16 weights lose nothing an fp32 master copy would keep; the LoRA
  adapters stay float32 (peft's default) and AdamW updates them in float32.
- generator training: QLoRA (4-bit NF4 base, bf16 compute, Dettmers et al. 2023) by default on CUDA when
  bitsandbytes is installed, as the paper; `--quantize none` trains LoRA on the bf16 weights instead.
  On the CPU plain LoRA in float32: 4-bit there saves memory and costs time (docs/architecture.md §8).
- attention: PyTorch's scaled_dot_product_attention ("sdpa") on CUDA.
- query and passage towers: float32 weights and compute everywhere. They are trained in full at learning
  rates down to 1e-8, updates a bf16 weight cannot hold (its spacing near 1 is 2^-8), and their cosine
  scores are divided by tau = 0.05, which magnifies bf16's rounding twentyfold; they are a few percent of
  a step's FLOPs next to the generator.

Cost: model FLOP utilisation = achieved FLOP/s over the device's peak (`mfu`), the peak from
`PEAK_TFLOPS` (vendor datasheets, dense, no sparsity) or the user's `--peak-tflops`.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.config import INDEX_DEVICES
from harness.errors import UserError
from harness.optional import is_installed


@dataclass(frozen=True)
class DeviceCaps:
    """What the decisions need to know about a device; `probe(device)` reads it from torch."""

    kind: str  # "cpu" | "cuda"
    name: str = "cpu"
    count: int = 0  # visible CUDA devices
    capability: tuple[int, int] = (0, 0)  # CUDA compute capability
    total_memory: int = 0  # bytes, of one device

    @property
    def bf16(self) -> bool:
        """bf16 matrix units: CUDA compute capability 8.0 (Ampere) and later."""
        return self.kind == "cuda" and self.capability >= (8, 0)


def probe(device: str) -> DeviceCaps:
    """The capabilities of `device` ("cpu", "cuda", "cuda:1") as torch sees them."""
    import torch

    if not device.startswith("cuda") or not torch.cuda.is_available():
        return DeviceCaps("cpu")
    index = torch.device(device).index or 0
    props = torch.cuda.get_device_properties(index)
    return DeviceCaps("cuda", props.name, torch.cuda.device_count(), (props.major, props.minor), props.total_memory)


# -- precision and quantization -------------------------------------------------------------------
def generator_dtype_name(caps: DeviceCaps) -> str:
    """bfloat16 where the device computes in bf16, else float32 (the CPU path stays float32)."""
    return "bfloat16" if caps.bf16 else "float32"


def generator_dtype(caps: DeviceCaps):
    import torch

    return getattr(torch, generator_dtype_name(caps))


def attention_implementation(caps: DeviceCaps) -> str | None:
    """"sdpa" on CUDA; None on the CPU (transformers' own default, so CPU results stay as they were)."""
    return "sdpa" if caps.kind == "cuda" else None


def training_quantization(requested: str | None, caps: DeviceCaps, bitsandbytes: bool) -> str | None:
    """The generator's weights while it trains: "4bit" (QLoRA) or None (LoRA on full-width weights).

    `requested` is `--quantize`: "4bit", "none", or None for the device's default, which is QLoRA on
    CUDA when bitsandbytes is installed (the paper's setting) and plain LoRA elsewhere.
    """
    if requested == "4bit":
        if not bitsandbytes:
            raise UserError("--quantize 4bit needs bitsandbytes: pip install 'rag-harness[gpu]'")
        return "4bit"
    if requested == "none":
        return None
    return "4bit" if caps.kind == "cuda" and bitsandbytes else None


def bitsandbytes_available() -> bool:
    return is_installed("bitsandbytes")


# -- retrieval on the GPU -------------------------------------------------------------------------
def check_index_device(index_device: str, index_kind: str, cuda_devices: int, faiss_gpu: bool) -> None:
    """Refuse an index placement this machine cannot serve, in one line (UserError, exit 2)."""
    if index_device not in INDEX_DEVICES:
        raise UserError(f"--index-device must be one of {', '.join(INDEX_DEVICES)}, got {index_device!r}")
    if index_device == "cpu":
        return
    if cuda_devices < 1:
        raise UserError("--index-device cuda needs a CUDA GPU and torch sees none (torch.cuda.is_available() "
                        "is False); use --index-device cpu")
    if index_kind == "hnsw":
        raise UserError("--index hnsw has no GPU search; with --index-device cuda use --index flat (exact) or ivfpq")
    if index_kind == "ivfpq" and not faiss_gpu:
        raise UserError("--index ivfpq --index-device cuda needs faiss with GPU support (pip uninstall faiss-cpu; "
                        "pip install faiss-gpu-cu12); or use --index flat, searched exactly on the GPU by torch")


def check_run_devices(cfg) -> None:
    """Before anything is stored: the devices `cfg` asks for exist here (one clear line if not)."""
    if cfg.index_device == "cpu":
        return
    cuda = visible_cuda_devices()
    check_index_device(cfg.index_device, cfg.index, cuda, cuda > 0 and cfg.index == "ivfpq" and faiss_has_gpu())


def visible_cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def faiss_has_gpu() -> bool:
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def query_chunk_rows(shard_rows: int, budget_bytes: int = 1 << 30) -> int:
    """Queries per matmul so one (queries x shard_rows) float32 score block stays within `budget_bytes`."""
    return max(1, budget_bytes // (4 * max(1, shard_rows)))


# -- cost: MFU ------------------------------------------------------------------------------------
# Dense peak TFLOP/s (no sparsity) from the vendors' datasheets: (bf16/fp16 tensor, fp32 non-tensor).
# Looked up by the first key contained in torch's device name, so the specific names come first.
PEAK_TFLOPS: dict[str, tuple[float, float]] = {
    "H200 NVL": (835.0, 60.0),
    "H200": (989.4, 66.9),
    "H100 NVL": (835.0, 60.0),
    "H100 PCIe": (756.0, 51.2),
    "H100": (989.4, 66.9),  # SXM5
    "A100": (312.0, 19.5),
    "L40S": (362.1, 91.6),
    "L40": (181.0, 90.5),
    "A10": (125.0, 31.2),
    "L4": (121.0, 30.3),
    "V100": (125.0, 15.7),  # fp16 tensor; no bf16 (runs here in float32)
    "T4": (65.0, 8.1),
}


def peak_flops(device_name: str, dtype_name: str, override_tflops: float | None = None) -> float | None:
    """The device's peak FLOP/s for `dtype_name` arithmetic, or None when neither the table nor the user knows."""
    if override_tflops is not None:
        return override_tflops * 1e12
    for key, (half, single) in PEAK_TFLOPS.items():
        if key.lower() in device_name.lower():
            return (single if dtype_name == "float32" else half) * 1e12
    return None


def mfu(flops: float, seconds: float, peak: float) -> float:
    """Model FLOP utilisation: achieved FLOP/s (flops / seconds) over the device's peak FLOP/s, in [0, 1]."""
    if seconds <= 0 or peak <= 0:
        raise ValueError(f"mfu needs seconds > 0 and peak > 0, got {seconds}, {peak}")
    return flops / seconds / peak


# -- evaluation batches by memory -----------------------------------------------------------------
@dataclass(frozen=True)
class DecoderShape:
    """The sizes that set a causal LM's memory per generated sequence (from its Hugging Face config)."""

    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    hidden: int
    intermediate: int
    vocab: int

    @classmethod
    def from_config(cls, config) -> "DecoderShape":
        heads = config.num_attention_heads
        return cls(config.num_hidden_layers, heads, getattr(config, "num_key_value_heads", None) or heads,
                   getattr(config, "head_dim", None) or config.hidden_size // heads, config.hidden_size,
                   getattr(config, "intermediate_size", None) or 4 * config.hidden_size, config.vocab_size)


def sequence_bytes(shape: DecoderShape, seq_len: int, dtype_bytes: int = 2) -> int:
    """Memory one sequence of `seq_len` tokens needs while it is decoded greedily, an upper estimate:

    KV cache 2·layers·kv_heads·head_dim·L, the widest layer's activations L·(4·hidden + 3·intermediate),
    one layer's attention weights heads·L² (if the kernel materialises them), all in `dtype_bytes`; plus
    the float32 logits of the next token and their softmax, 2·vocab·4.
    """
    kv = 2 * shape.layers * shape.kv_heads * shape.head_dim * seq_len * dtype_bytes
    activations = seq_len * (4 * shape.hidden + 3 * shape.intermediate) * dtype_bytes
    attention = shape.heads * seq_len * seq_len * dtype_bytes
    return kv + activations + attention + 2 * shape.vocab * 4


def generation_batch_size(free_bytes: int, per_sequence: int, share: float = 0.5, cap: int = 256) -> int:
    """Sequences per generation batch: `share` of the free memory over one sequence's need, in [1, cap]."""
    return int(min(cap, max(1, int(free_bytes * share) // max(1, per_sequence))))
