"""Loading helpers shared by model plugins: safe Hugging Face loading and package data paths."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from harness.errors import UserError
from harness.optional import require_installed


def package_dir(package: str, install_hint: str) -> Path:
    """The folder of an installed package, found without importing it (some have unmet optional deps)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"package '{package}' is not installed: {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def load_sentence_transformer(path_or_id: str, device: str):
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(path_or_id, device=device, trust_remote_code=False)
    except OSError as exc:
        raise UserError(f"cannot load embedder '{path_or_id}': {exc}".splitlines()[0]) from None


def load_causal_lm(path_or_id: str, device: str, quantize: str | None = None):
    """(model, tokenizer): float32 on the CPU, bfloat16 + SDPA attention on a bf16 GPU (harness/runtime/gpu.py says
    why); 4-bit NF4 through bitsandbytes if asked, computing in that dtype."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.runtime.gpu import attention_implementation, generator_dtype, probe

    caps = probe(device)
    kwargs: dict = {"trust_remote_code": False, "use_safetensors": True, "dtype": generator_dtype(caps)}
    if attention_implementation(caps):
        kwargs["attn_implementation"] = attention_implementation(caps)
    if quantize == "4bit":
        kwargs["quantization_config"] = bnb_4bit_config(compute_dtype=kwargs["dtype"])
    try:
        tokenizer = AutoTokenizer.from_pretrained(path_or_id, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(path_or_id, **kwargs)
    except OSError as exc:
        raise UserError(f"cannot load generator '{path_or_id}': {exc}".splitlines()[0]) from None
    if quantize != "4bit":
        model.to(device)
    return model, tokenizer


def bnb_4bit_config(compute_dtype):
    """QLoRA's 4-bit NF4 with double quantization; bitsandbytes is imported lazily with a clear error."""
    require_installed("bitsandbytes", "--quantize 4bit", extra="gpu")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute_dtype
    )
