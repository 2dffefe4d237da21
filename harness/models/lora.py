"""LoRA and QLoRA on the generator: which one a run uses, and wrapping the model with adapters."""

from __future__ import annotations

import torch

from harness.models.generation import Generator


def add_lora(generator: Generator, rank: int, quantized: bool = False, gradient_checkpointing: bool = False) -> None:
    """Wrap the generator's model with LoRA adapters (rank r, alpha 2r) on every linear layer (QLoRA if 4-bit).

    `gradient_checkpointing` recomputes each layer's activations in backward (non-reentrant: no input
    needs grad), trading about a third more compute for activations of one layer at a time.
    """
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    model = generator.model
    checkpointing = {"use_reentrant": False}
    if quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing,
                                                gradient_checkpointing_kwargs=checkpointing)
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    generator.model = get_peft_model(model, config)


def use_qlora(ctx) -> bool:
    """QLoRA (4-bit NF4 base + LoRA) when `--quantize 4bit`, and by default on CUDA when bitsandbytes is
    installed (the paper's setting); plain LoRA on CPU, where 4-bit only saves memory and costs time, and
    with `--quantize none` (harness/runtime/gpu.py: training_quantization)."""
    from harness.runtime.gpu import bitsandbytes_available, probe, training_quantization

    return training_quantization(ctx.config.quantize, probe(ctx.device), bitsandbytes_available()) == "4bit"


def prepare_generator_for_lora(ctx) -> Generator:
    """Add LoRA (rank cfg.lora_rank) to the pipeline's generator; reload it in 4 bits first if QLoRA is the
    default here but the run loaded it unquantized (CUDA without `--quantize`). Logs `generator_4bit` (1 =
    QLoRA, 0 = LoRA) at step 0, so the stored run says which one trained."""
    generator = ctx.pipeline.generator
    quantized = use_qlora(ctx) and not generator.sharded  # FSDP shards full-width weights (harness.distributed)
    if quantized and ctx.config.quantize != "4bit":
        from harness import plugins
        from harness.types import ModelOptions

        spec = plugins.models()["generator"].get(ctx.config.generator)
        generator.model = None
        torch.cuda.empty_cache()
        generator.model, _ = spec.load(ModelOptions(device=ctx.device, quantize="4bit"))
        ctx.flops.watch(generator.model)  # the reloaded model's forwards count, as the first one's did
    add_lora(generator, ctx.config.lora_rank, quantized=quantized,
             gradient_checkpointing=getattr(ctx.config, "gradient_checkpointing", False))
    ctx.log(0, generator_4bit=float(quantized))
    return generator
