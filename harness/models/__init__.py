"""The generator and loading models: what a model plugin uses, and the LoRA a strategy puts on a generator.

    generation.py  Generator: batched greedy decoding (left padding), answer log-probs with grad
    loading.py     loading sentence-transformers and causal LMs (safetensors only, dtype and attention by device)
    lora.py        LoRA / QLoRA adapters on the generator (peft; bitsandbytes 4-bit on CUDA)

Public (plugins import these from `harness.models`): the names in `__all__`.
"""

from harness._exports import exports

__all__, __getattr__ = exports(__name__, {
    "generation": ("Generator",),
    "loading": ("load_causal_lm", "load_sentence_transformer", "package_dir"),
    "lora": ("add_lora", "prepare_generator_for_lora"),
})
