"""Model plugins: the hub path on local folders, the packaged MiniLM and the GGUF conversion cache."""

import numpy as np
import pytest

from harness.builtins.models.tiny import tiny_embedder_dir, tiny_llama_dir
from harness.errors import UserError
from harness.plugins import load_plugins, models
from harness.types import ModelOptions
from tests.conftest import run_cli


def test_hf_family_loads_local_folders(tiny_data):
    load_plugins()
    regs = models()
    embedder = regs["embedder"].get(f"hf:{tiny_embedder_dir()}").load(ModelOptions())
    model, tokenizer = regs["generator"].get(f"hf:{tiny_llama_dir()}").load(ModelOptions())
    assert embedder.encode(["a question"]).shape == (1, 32)
    assert model.config.num_hidden_layers == 2 and tokenizer.eos_token == "</s>"
    args = ["run", "--dataset", "local", "--data-dir", str(tiny_data), "--embedder", f"hf:{tiny_embedder_dir()}",
            "--generator", f"hf:{tiny_llama_dir()}", "--max-new-tokens", "2"]
    assert run_cli(args) == 0


def test_hf_missing_model_is_a_clear_error(tmp_path):
    load_plugins()
    with pytest.raises(UserError, match="cannot load generator"):
        models()["generator"].get(f"hf:{tmp_path / 'nothing-here'}").load(ModelOptions())


def test_paper_models_are_registered_by_short_name():
    load_plugins()
    regs = models()
    assert {"mpnet"} <= set(regs["embedder"].items)
    assert {"llama3-8b", "mistral-7b"} <= set(regs["generator"].items)


@pytest.mark.packaged
def test_packaged_minilm_gives_real_embeddings():
    load_plugins()
    model = models()["embedder"].get("minilm").load(ModelOptions())
    vecs = model.encode(["What is the capital of France?", "Paris is the capital of France.", "Bananas are yellow."],
                        normalize_embeddings=True)
    assert vecs.shape == (3, 384)
    assert float(np.dot(vecs[0], vecs[1])) > float(np.dot(vecs[0], vecs[2])) + 0.2


@pytest.mark.packaged
def test_smollm2_is_converted_once_and_cached():
    from harness.builtins.models.smollm2 import converted_dir

    folder = converted_dir()
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert "quantization_config" not in (folder / "config.json").read_text()
    mtime = (folder / "model.safetensors").stat().st_mtime
    assert converted_dir() == folder and (folder / "model.safetensors").stat().st_mtime == mtime
