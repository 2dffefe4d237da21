"""The GPU decisions (pure functions of device capabilities), MFU arithmetic, batch sizes by memory, and the
CUDA paths themselves where a GPU exists (skipped here: this machine has none)."""

import subprocess
import sys

import pytest
import torch

from harness.errors import UserError
from harness.runtime.gpu import (
    DecoderShape,
    DeviceCaps,
    attention_implementation,
    check_index_device,
    generation_batch_size,
    generator_dtype,
    mfu,
    peak_flops,
    probe,
    sequence_bytes,
    training_quantization,
)
from tests.conftest import tiny_run_args

H200 = DeviceCaps("cuda", "NVIDIA H200", 1, (9, 0), 143 * 2**30)
V100 = DeviceCaps("cuda", "Tesla V100-SXM2-16GB", 1, (7, 0), 16 * 2**30)
CPU = DeviceCaps("cpu")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_device_selection_without_cuda_is_the_cpu():
    from harness.runtime.timing import pick_device

    if torch.cuda.is_available():
        assert pick_device() == "cuda" and probe("cuda").kind == "cuda"
    else:
        assert pick_device() == "cpu"
        assert probe("cuda") == CPU  # asking for cuda on a machine without it reads as the CPU
    assert probe("cpu") == CPU


def test_dtype_and_attention_follow_the_device():
    assert generator_dtype(H200) == torch.bfloat16 and H200.bf16
    assert generator_dtype(V100) == torch.float32 and not V100.bf16  # no bf16 units; fp16 needs loss scaling
    assert generator_dtype(CPU) == torch.float32  # the CPU path stays float32
    assert attention_implementation(H200) == "sdpa"
    assert attention_implementation(CPU) is None  # transformers' own default on the CPU, unchanged


@pytest.mark.parametrize("requested, caps, bnb, expected", [
    (None, H200, True, "4bit"),  # the paper's QLoRA is the default on CUDA
    (None, H200, False, None),  # without bitsandbytes: LoRA on bf16 weights
    ("none", H200, True, None),  # LoRA bf16 on request
    (None, CPU, True, None),  # CPU: plain LoRA in float32
    ("4bit", CPU, True, "4bit"),  # asked for explicitly: QLoRA on the CPU too
])
def test_training_quantization_decision(requested, caps, bnb, expected):
    assert training_quantization(requested, caps, bnb) == expected


def test_asking_for_4bit_without_bitsandbytes_is_a_clear_error():
    with pytest.raises(UserError, match="bitsandbytes"):
        training_quantization("4bit", H200, False)


@pytest.mark.parametrize("name, dtype, tflops", [
    ("NVIDIA H200", "bfloat16", 989.4), ("NVIDIA H100 80GB HBM3", "bfloat16", 989.4),
    ("NVIDIA H100 PCIe", "bfloat16", 756.0), ("NVIDIA A100-SXM4-80GB", "bfloat16", 312.0),
    ("NVIDIA A10", "bfloat16", 125.0), ("NVIDIA L4", "bfloat16", 121.0), ("NVIDIA L40S", "bfloat16", 362.1),
    ("NVIDIA H100 80GB HBM3", "float32", 66.9),
])
def test_peak_flops_table(name, dtype, tflops):
    assert peak_flops(name, dtype) == pytest.approx(tflops * 1e12)


def test_unknown_device_has_no_peak_unless_given():
    assert peak_flops("cpu", "float32") is None
    assert peak_flops("Some Future GPU", "bfloat16") is None
    assert peak_flops("Some Future GPU", "bfloat16", override_tflops=500.0) == pytest.approx(500e12)


def test_mfu_against_a_hand_computed_case():
    # 2.4e12 FLOPs in 20 ms = 1.2e14 FLOP/s; over an H200's 989.4 TFLOP/s: 120 / 989.4 = 0.121286
    assert mfu(2.4e12, 0.02, peak_flops("NVIDIA H200", "bfloat16")) == pytest.approx(0.1212856, rel=1e-6)
    assert mfu(1e12, 1.0, 1e12) == 1.0
    with pytest.raises(ValueError):
        mfu(1e12, 0.0, 1e12)


def test_index_device_checks():
    check_index_device("cpu", "hnsw", 0, False)  # the CPU serves every kind
    check_index_device("cuda", "flat", 1, False)  # torch search needs no faiss-gpu
    check_index_device("cuda", "ivfpq", 2, True)
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        check_index_device("cuda", "flat", 0, False)
    with pytest.raises(UserError, match="hnsw has no GPU"):
        check_index_device("cuda", "hnsw", 1, False)
    with pytest.raises(UserError, match="faiss with GPU support"):
        check_index_device("cuda", "ivfpq", 1, False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_index_device_cuda_without_a_gpu_is_one_line_exit_2_from_the_real_cli(tiny_data, tmp_path):
    cmd = [sys.executable, "-c", "from harness.cli import main; main()",
           *tiny_run_args(tiny_data), "--index-device", "cuda"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["error: --index-device cuda needs a CUDA GPU and torch sees none (torch.cuda.is_available() "
                     "is False); use --index-device cpu"], result.stderr
    import os

    from harness.store.db import Store

    assert Store(os.environ["HARNESS_DB"]).query("SELECT id FROM runs") == []  # refused before anything is stored


def test_sequence_bytes_by_hand():
    shape = DecoderShape(layers=2, heads=4, kv_heads=2, head_dim=16, hidden=64, intermediate=128, vocab=400)
    L = 10
    kv = 2 * 2 * 2 * 16 * L * 2  # 2 (k, v) x layers x kv_heads x head_dim x L x bf16
    activations = L * (4 * 64 + 3 * 128) * 2
    attention = 4 * L * L * 2
    logits = 2 * 400 * 4
    assert sequence_bytes(shape, L) == kv + activations + attention + logits == 19_360


def test_generation_batch_size_by_memory():
    assert generation_batch_size(free_bytes=10_000, per_sequence=1_000) == 5  # half the free memory
    assert generation_batch_size(free_bytes=100, per_sequence=1_000) == 1  # never below one
    assert generation_batch_size(free_bytes=10**12, per_sequence=1_000) == 256  # capped
    # SmolLM2-135M's shape at 1,100 tokens fits hundreds on an H200, Llama-3-8B's far fewer
    smol = DecoderShape(30, 9, 3, 64, 576, 1536, 49152)
    llama = DecoderShape(32, 32, 8, 128, 4096, 14336, 128256)
    free = 120 * 2**30
    assert generation_batch_size(free, sequence_bytes(smol, 1100)) == 256
    assert 100 < generation_batch_size(free, sequence_bytes(llama, 1100)) < 256


def test_decoder_shape_from_a_real_config():
    from transformers import AutoConfig

    from harness.builtins.models.tiny import tiny_llama_dir

    shape = DecoderShape.from_config(AutoConfig.from_pretrained(tiny_llama_dir()))
    assert (shape.layers, shape.heads, shape.kv_heads, shape.head_dim, shape.hidden) == (2, 4, 2, 16, 64)


def test_generation_batch_on_the_cpu_stays_eight():
    from harness.builtins.models.tiny import tiny_llama_dir
    from harness.models.generation import Generator
    from harness.models.loading import load_causal_lm

    generator = Generator(*load_causal_lm(str(tiny_llama_dir()), "cpu"))
    assert next(generator.model.parameters()).dtype == torch.float32
    assert generator.batch_size_for(["a question"] * 3, 24) == 8


def test_ft_gen_logs_mfu_from_the_step_flops_when_the_peak_is_given(tiny_data):
    import os

    from harness.store.db import Store
    from tests.conftest import run_cli

    assert run_cli(tiny_run_args(tiny_data, "ft_gen", "--peak-tflops", "0.001")) == 0  # 1e9 FLOP/s
    store = Store(os.environ["HARNESS_DB"])
    rows = store.query("SELECT step, name, value FROM train_log WHERE name IN ('mfu', 'train_flops', 'step_seconds')")
    by_step: dict = {}
    for r in rows:
        by_step.setdefault(r["step"], {})[r["name"]] = r["value"]
    assert len(by_step) == 2  # 6 training questions at batch 4, one epoch
    for values in by_step.values():
        assert values["mfu"] == pytest.approx(values["train_flops"] / values["step_seconds"] / 1e9, rel=1e-6)


def test_no_mfu_on_the_cpu_without_a_peak(tiny_data):
    import os

    from harness.store.db import Store
    from tests.conftest import run_cli

    assert run_cli(tiny_run_args(tiny_data, "ft_gen")) == 0
    store = Store(os.environ["HARNESS_DB"])
    assert store.query("SELECT count(*) AS n FROM train_log WHERE name = 'mfu'")[0]["n"] == 0  # no made-up peak
    assert store.query("SELECT count(*) AS n FROM train_log WHERE name = 'train_flops'")[0]["n"] > 0


def test_gradient_checkpointing_gives_the_same_lora_gradients():
    from harness.builtins.models.tiny import tiny_llama_dir
    from harness.models.generation import Generator
    from harness.models.loading import load_causal_lm
    from harness.models.lora import add_lora

    grads, folder = [], str(tiny_llama_dir())  # built (seeded) before the loop: LoRA's init draws the same numbers
    for checkpointing in (False, True):
        torch.manual_seed(0)
        generator = Generator(*load_causal_lm(folder, "cpu"))
        add_lora(generator, rank=4, gradient_checkpointing=checkpointing)
        base = generator.model.base_model.model
        enabled = getattr(base, "is_activation_checkpointing", None)  # transformers >= 5.2x; older: is_gradient_...
        assert (base.is_gradient_checkpointing if enabled is None else enabled) == checkpointing
        generator.model.train()
        with torch.no_grad():  # LoRA B starts at zero: give it a value, the same in both runs
            for i, (name, p) in enumerate(generator.model.named_parameters()):
                if "lora_B" in name:
                    p.copy_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(i)))
        lp, mask = generator.answer_log_probs(["Context: Paris is in France. Question: capital?"], ["Paris"])
        (-(lp * mask).sum()).backward()
        grads.append({n: p.grad.clone() for n, p in generator.model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-6), name


def test_quantize_none_and_new_options_reach_the_stored_config(tiny_data):
    import json
    import os

    from harness.store.db import Store
    from tests.conftest import run_cli

    args = tiny_run_args(tiny_data, "ft_gen", "--quantize", "none", "--gradient-checkpointing", "--peak-tflops", "0.05",
                         "--limit", "2")
    assert run_cli(args) == 0
    [run] = Store(os.environ["HARNESS_DB"]).query("SELECT config FROM runs")
    config = json.loads(run["config"])
    assert (config["quantize"], config["gradient_checkpointing"], config["peak_tflops"]) == ("none", True, 0.05)
    log = Store(os.environ["HARNESS_DB"]).query("SELECT name, value FROM train_log WHERE name = 'generator_4bit'")
    assert [r["value"] for r in log] == [0.0]  # LoRA, as asked
    assert config["index_device"] == "cpu" and config["eval_batch_size"] is None


@pytest.mark.parametrize("bad, message", [
    (["--index-device", "tpu"], "--index-device"), (["--quantize", "8bit"], "--quantize"),
    (["--peak-tflops", "-3"], "--peak-tflops"), (["--eval-batch-size", "0"], "--eval-batch-size"),
])
def test_bad_gpu_options_are_one_line_exit_2(tiny_data, capsys, bad, message):
    from tests.conftest import run_cli

    assert run_cli(tiny_run_args(tiny_data) + bad) == 2
    assert message in capsys.readouterr().err


# -- the CUDA paths: run wherever a GPU exists --------------------------------------------------------
@cuda
def test_generator_loads_in_bf16_with_sdpa_on_cuda():
    from harness.builtins.models.tiny import tiny_llama_dir
    from harness.models.loading import load_causal_lm

    model, _ = load_causal_lm(str(tiny_llama_dir()), "cuda")
    assert next(model.parameters()).device.type == "cuda"
    assert next(model.parameters()).dtype == (torch.bfloat16 if probe("cuda").bf16 else torch.float32)
    assert model.config._attn_implementation == "sdpa"


@cuda
def test_generation_batch_on_cuda_is_sized_by_memory():
    from harness.builtins.models.tiny import tiny_llama_dir
    from harness.models.generation import Generator
    from harness.models.loading import load_causal_lm

    generator = Generator(*load_causal_lm(str(tiny_llama_dir()), "cuda"))
    assert generator.batch_size_for(["a question"] * 3, 24) > 8  # a tiny model on any GPU fits more than 8


@cuda
@pytest.mark.skipif(not __import__("importlib").util.find_spec("bitsandbytes"), reason="needs bitsandbytes")
def test_ft_gen_on_cuda_defaults_to_qlora_and_logs_mfu(tiny_data):
    import os

    from harness.store.db import Store
    from tests.conftest import run_cli

    assert run_cli(tiny_run_args(tiny_data, "ft_gen", "--index-device", "cuda", "--peak-tflops", "100")) == 0
    store = Store(os.environ["HARNESS_DB"])
    [run] = store.query("SELECT id, device FROM runs")
    assert "cpu" not in run["device"]
    log = store.query("SELECT step, name, value FROM train_log WHERE run_id = ?", [run["id"]])
    assert {"tokens_per_second", "peak_memory_mb", "mfu"} <= {r["name"] for r in log}
    assert [r["value"] for r in log if r["name"] == "generator_4bit"] == [1.0]  # QLoRA by default on CUDA
    assert all(r["value"] > 0 for r in log if r["name"] in ("train_flops", "mfu"))  # the reloaded model is counted
