"""`hf:<id>`: any Hugging Face sentence-transformers embedder or causal LM, by hub id or local folder.

Also the papers' models by short name: `mpnet`, `llama3-8b`, `mistral-7b` (need the hub, or HF_HOME
holding them). Loading is safetensors-only with `trust_remote_code` off.
"""

from pathlib import Path

from harness import EmbedderSpec, GeneratorSpec, hookimpl
from harness.models import load_causal_lm, load_sentence_transformer

PAPER_EMBEDDERS = {"mpnet": "sentence-transformers/all-mpnet-base-v2"}
PAPER_GENERATORS = {
    "llama3-8b": "meta-llama/Meta-Llama-3-8B-Instruct",
    "mistral-7b": "mistralai/Mistral-7B-Instruct-v0.1",
}


def hub_id(model_id: str) -> str | None:
    """`model_id` when it names a hub repository; None for a local folder (which stays a path)."""
    return None if Path(model_id).expanduser().exists() else model_id


def hf_embedder(model_id: str, name: str | None = None) -> EmbedderSpec:
    return EmbedderSpec(
        name or f"hf:{model_id}", lambda opts: load_sentence_transformer(model_id, opts.device), f"Hugging Face {model_id}",
        hub_id=hub_id(model_id),
    )


def hf_generator(model_id: str, name: str | None = None) -> GeneratorSpec:
    return GeneratorSpec(
        name or f"hf:{model_id}",
        lambda opts: load_causal_lm(model_id, opts.device, opts.quantize),
        f"Hugging Face {model_id}",
        hub_id=hub_id(model_id),
    )


@hookimpl
def register_models(register):
    register(EmbedderSpec("hf:", None, "any sentence-transformers model: hf:<hub id or folder>", resolve=hf_embedder))
    register(GeneratorSpec("hf:", None, "any causal LM: hf:<hub id or folder>", resolve=hf_generator))
    for short, model_id in PAPER_EMBEDDERS.items():
        register(hf_embedder(model_id, short))
    for short, model_id in PAPER_GENERATORS.items():
        register(hf_generator(model_id, short))
