"""A FitContext on the tiny models and dataset, built by the runner's own steps, for tests that call a
strategy's `fit` (or its loop) directly and inspect the models afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from harness import plugins
from harness.config import RunConfig
from harness.runner.assemble import build_pipeline, configure_torch, load_dataset, resolve
from harness.store.layout import create_run_folder
from harness.training.context import FitContext
from harness.training.loop import snapshot


def tiny_context(tmp_path: Path, data_dir: Path, strategy: str, **overrides) -> tuple[FitContext, object]:
    plugins.load_plugins()
    cfg = RunConfig(strategy=strategy, dataset="local", data_dir=str(data_dir), embedder="tiny-embedder",
                    generator="tiny-llama", max_new_tokens=4, **overrides)
    resolved = resolve(cfg)
    cfg = resolved.config
    dataset = load_dataset(cfg, resolved)
    configure_torch(cfg.seed)
    pipeline = build_pipeline(cfg, resolved, dataset, "cpu")
    folder = create_run_folder(cfg, tmp_path / "runs")
    ctx = FitContext(pipeline, dataset, cfg, resolved.options, "cpu", folder.meta["run_id"], folder)
    return ctx, resolved.strategy_cls()


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> set[str]:
    """Names of the parameters that differ (in any element) from `before`."""
    after = snapshot(module)
    return {name for name, value in after.items() if name in before and not torch.equal(before[name], value)}


def base_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The generator's non-LoRA parameters, keyed by their name without peft's prefixes."""
    out = {}
    for name, p in model.named_parameters():
        if "lora_" not in name:
            out[name.replace("base_model.model.", "").replace(".base_layer", "")] = p.detach().clone()
    return out


def encoder_trainable_names(encoder) -> set[str]:
    """Every tower parameter the forward uses: all but BERT's unused pooler."""
    return {name for name, _ in encoder.named_parameters() if ".pooler." not in name}


def assert_micro_batches_match(modules: list[torch.nn.Module], backward) -> list:
    """`backward(micro_batch)` back-propagates one batch and returns (loss, extra). With the whole batch (0)
    and one question at a time (1), from zeroed grads in eval mode (no dropout): the same loss and the same
    gradient on every parameter. Returns the two extras."""
    for m in modules:
        m.eval()
    runs = []
    for micro in (0, 1):
        for m in modules:
            m.zero_grad(set_to_none=True)
        loss, extra = backward(micro)
        runs.append((loss.item(), extra, [p.grad.clone() for m in modules for p in m.parameters() if p.grad is not None]))
    (loss_full, _, g_full), (loss_micro, _, g_micro) = runs
    assert loss_micro == pytest.approx(loss_full, rel=1e-5) and len(g_full) == len(g_micro) > 0
    for a, b in zip(g_full, g_micro):
        # float32 sums in another order (a batch of 3 vs 3 batches of 1) differ by ~1e-6 on some kernels
        # (seen: 1.1e-6 on rag_end2end's passage tower); a wrong share would differ by the gradient itself
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    return [extra for _, extra, _ in runs]
