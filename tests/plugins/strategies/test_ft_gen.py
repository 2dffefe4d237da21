"""ft_gen: the loss is the answer-only NLL (the prompt is masked), only the adapters train, the adapter
artifact reloads to the same predictions, and `--quantize 4bit` without bitsandbytes is a clean error."""

import importlib.util
import json
import os

import pytest
import torch

from harness.builtins.models.tiny import tiny_llama_dir
from harness.builtins.strategies import ft_gen
from harness.builtins.strategies.ft_gen import answer_nll
from harness.models.generation import Generator
from harness.models.loading import load_causal_lm
from harness.store.db import Store
from harness.training.loop import snapshot
from harness.types import Passage
from tests.conftest import run_cli, tiny_run_args
from tests.plugins.strategies._tiny import changed, tiny_context


@pytest.fixture(scope="module")
def generator():
    model, tokenizer = load_causal_lm(str(tiny_llama_dir()), "cpu")
    return Generator(model, tokenizer)


def encode_pair(generator, prompt, answer):
    prompt_ids = generator._encode([prompt])[0]
    return prompt_ids, generator.answer_token_ids(answer)


def test_loss_is_the_answer_only_nll_of_a_masked_causal_lm(generator):
    """Reference: Hugging Face's own causal-LM loss with every prompt label set to -100 (ignored)."""
    prompt = generator.format_prompt("What is the capital of France?", [Passage("p", "Paris", "Paris is in France.")])
    prompt_ids, answer_ids = encode_pair(generator, prompt, "Paris")
    ids = torch.tensor([prompt_ids + answer_ids])
    labels = ids.clone()
    labels[0, : len(prompt_ids)] = -100
    with torch.no_grad():
        masked_mean = generator.model(input_ids=ids, labels=labels).loss  # mean over the answer tokens
        ours = answer_nll(generator, [prompt], ["Paris"])
        labels[0, 5] = ids[0, 5]  # unmask one prompt label: the reference changes, so masking is what matched
        unmasked = generator.model(input_ids=ids, labels=labels).loss * (len(answer_ids) + 1)
    assert ours.item() == pytest.approx(masked_mean.item() * len(answer_ids), rel=1e-5)
    assert unmasked.item() != pytest.approx(ours.item(), rel=1e-3)


def test_changing_what_prompt_positions_predict_leaves_the_loss_unchanged(generator):
    """Perturb the final hidden states (hence the predictions) at every position whose label is a prompt
    token: the loss does not move. Perturb the position that predicts the first answer token: it does."""
    prompts = [generator.format_prompt("Who wrote Hamlet?", [Passage("p", "Hamlet", "A play by Shakespeare.")])]
    prompt_ids, answer_ids = encode_pair(generator, prompts[0], "William Shakespeare")
    L, A = len(prompt_ids) + len(answer_ids), len(answer_ids)

    def loss_with_noise(positions):
        def hook(module, args, output):
            noise = torch.zeros_like(output)
            noise[:, positions] = 10 * torch.randn_like(output[:, positions])
            return output + noise

        handle = generator.model.model.norm.register_forward_hook(hook)
        try:
            with torch.no_grad():
                return answer_nll(generator, prompts, ["William Shakespeare"]).item()
        finally:
            handle.remove()

    clean = loss_with_noise([])
    prompt_label_positions = list(range(0, L - A - 1))  # position i predicts token i+1, a prompt token
    assert loss_with_noise(prompt_label_positions) == pytest.approx(clean, abs=1e-5)
    assert loss_with_noise([L - A - 1]) != pytest.approx(clean, abs=1e-3)  # predicts y_1


def fit_remembering_the_generator(ctx, strategy, monkeypatch) -> dict:
    """fit(); returns every generator parameter (adapters included) as it was when the loop started."""
    at_start = {}
    original = ft_gen.train_generator

    def spy(ctx, *args, **kwargs):
        at_start.update(snapshot(ctx.pipeline.generator.model))
        return original(ctx, *args, **kwargs)

    monkeypatch.setattr(ft_gen, "train_generator", spy)
    strategy.fit(ctx)
    return at_start


def test_only_the_adapters_train(tmp_path, tiny_data, monkeypatch):
    ctx, strategy = tiny_context(tmp_path, tiny_data, "ft_gen")
    encoder_before = snapshot(ctx.pipeline.query_encoder)
    vectors_before = ctx.pipeline.index.vectors.copy()
    at_start = fit_remembering_the_generator(ctx, strategy, monkeypatch)
    model = ctx.pipeline.generator.model
    lora = {n for n, _ in model.named_parameters() if "lora_" in n}
    assert lora and changed(at_start, model) == lora  # every adapter matrix moved, nothing else did
    assert all(p.grad is None and not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)
    assert not changed(encoder_before, ctx.pipeline.query_encoder)
    assert (ctx.pipeline.index.vectors == vectors_before).all()
    assert ctx.trained_tokens > 0


def test_adapter_artifact_reloads_to_the_same_predictions(tiny_data, capsys):
    assert run_cli(tiny_run_args(tiny_data, "ft_gen", "--gen-lr", "1e-2")) == 0
    store = Store(os.environ["HARNESS_DB"])
    [run] = store.query("SELECT id, folder FROM runs WHERE status = 'finished'")
    [artifact] = store.query("SELECT * FROM artifacts WHERE run_id = ?", [run["id"]])
    assert artifact["kind"] == "adapter" and len(artifact["sha256"]) == 64
    assert (os.path.isfile(os.path.join(run["folder"], artifact["path"], "adapter_model.safetensors")))
    from harness.runner.artifacts import reevaluate

    _, results = reevaluate(store, run["id"], ["dev", "test"])
    stored = {(p["split"], p["example_id"]): p["prediction"] for p in store.run_predictions(run["id"])}
    fresh = {(p["split"], p["example_id"]): p["prediction"] for r in results.values() for p in r.predictions}
    assert fresh == stored
    capsys.readouterr()
    assert run_cli(["evaluate", run["id"], "--splits", "test"]) == 0
    assert "re-evaluated" in capsys.readouterr().out


def test_a_tampered_artifact_is_refused(tiny_data, capsys):
    assert run_cli(tiny_run_args(tiny_data, "ft_gen")) == 0
    store = Store(os.environ["HARNESS_DB"])
    [artifact] = store.query("SELECT a.*, r.folder FROM artifacts a JOIN runs r ON r.id = a.run_id")
    with open(os.path.join(artifact["folder"], artifact["path"], "adapter_config.json"), "a") as fh:
        fh.write(" ")
    capsys.readouterr()
    assert run_cli(["evaluate", artifact["run_id"]]) == 2
    err = capsys.readouterr().err
    assert "sha256" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is not None, reason="bitsandbytes is installed")
def test_quantize_4bit_without_bitsandbytes_is_one_clear_line(tiny_data, capsys):
    assert run_cli(tiny_run_args(tiny_data, "ft_gen", "--quantize", "4bit")) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "bitsandbytes" in lines[0] and "Traceback" not in err
    store = Store(os.environ["HARNESS_DB"])
    assert store.query("SELECT id FROM runs WHERE status = 'finished'") == []


def test_step_log_has_loss_lr_throughput_and_memory(tiny_data):
    assert run_cli(tiny_run_args(tiny_data, "ft_gen")) == 0
    store = Store(os.environ["HARNESS_DB"])
    rows = store.query("SELECT step, name, value FROM train_log ORDER BY step")
    names = {r["name"] for r in rows}
    assert {"loss", "lr", "gen_lr", "tokens_per_second", "peak_memory_mb"} <= names
    lrs = [r["value"] for r in rows if r["name"] == "lr"]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] == pytest.approx(1e-3)  # linear decay from the default
    assert json.loads(store.query("SELECT config FROM runs")[0]["config"])["gen_lr"] == 1e-3  # the default, stored


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes (QLoRA)")
def test_qlora_trains_adapters_over_a_4bit_base_and_reloads(tmp_path, tiny_data, monkeypatch):
    import bitsandbytes as bnb

    ctx, strategy = tiny_context(tmp_path, tiny_data, "ft_gen", quantize="4bit")
    at_start = fit_remembering_the_generator(ctx, strategy, monkeypatch)
    model = ctx.pipeline.generator.model
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())  # the base is NF4
    lora = {n for n, _ in model.named_parameters() if "lora_" in n}
    assert lora and changed(at_start, model) == lora
    assert run_cli(tiny_run_args(tiny_data, "ft_gen", "--quantize", "4bit")) == 0
    store = Store(os.environ["HARNESS_DB"])
    [run] = store.query("SELECT id, folder FROM runs WHERE status = 'finished'")
    from harness.runner.artifacts import reevaluate

    _, results = reevaluate(store, run["id"], ["test"])
    stored = {p["example_id"]: p["prediction"] for p in store.run_predictions(run["id"]) if p["split"] == "test"}
    assert {p["example_id"]: p["prediction"] for p in results["test"].predictions} == stored
