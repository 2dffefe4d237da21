"""Hub-ready artifacts: when a run finishes, each trained adapter / embedder folder gets a model card.

An `adapter` folder is a peft folder whose `adapter_config.json` names the base model by its hub id when the
generator has one (`GeneratorSpec.hub_id`; the packaged SmolLM2 is HuggingFaceTB/SmolLM2-135M-Instruct; a
local folder stays a path), so `AutoPeftModelForCausalLM.from_pretrained(folder)` loads it wherever the base
is available. An `embedder` / `passage_embedder` folder is a sentence-transformers folder. Both get a
README.md: base model, strategy and its citation, dataset, learning rates and the rest of the config, the
harness's metrics with 95% intervals, the harness version. Metrics exist only after evaluation, so the cards
are written when the run is evaluated, before its folder is finalised, and the artifacts' sha256 registered again.

    harness export RUN_ID --adapter hub/
    huggingface-cli upload YOUR_NAME/REPO hub/adapter .
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import code_version
from harness.config_file import config_to_toml
from harness.models.generation import PROMPT
from harness.training.saving import ARTIFACT_NOTE
from harness.version import __version__

CARD = "README.md"
PEFT_CONFIG = "adapter_config.json"
SPLITS = ("dev", "test", "train")


@dataclass
class CardFacts:
    """What a card says about a run, gathered once."""

    run_id: str
    config: dict
    metrics: dict[str, dict[str, float]]
    strategy_description: str
    citation: str
    generator_ref: str  # hub id or local path of the base generator
    embedder_ref: str
    code_version: str
    learning_rates: tuple[str, ...] = ("embed_lr", "gen_lr")  # the rates the strategy takes
    base_weights: dict[str, str] = field(default_factory=dict)  # the exact generator weights trained on
    generator_path: str = ""  # the folder the base generator was loaded from (what the script loads)
    towers: dict[str, str] = field(default_factory=dict)  # "query" / "passage" -> the encoder the run used
    example: dict = field(default_factory=dict)  # one stored prediction the script reproduces


def base_model_ref(spec: Any, name: str, loaded_path: str | None = None) -> str:
    """The base model as a user can load it elsewhere: the spec's hub id, else the local path, else the name."""
    return getattr(spec, "hub_id", None) or loaded_path or name


def point_adapter_at_hub(folder: Path, hub_id: str | None) -> None:
    """Rewrite `base_model_name_or_path` in a peft folder to `hub_id` (nothing to do without one)."""
    path = folder / PEFT_CONFIG
    if hub_id and path.is_file():
        config = json.loads(path.read_text())
        config["base_model_name_or_path"] = hub_id
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def adapter_base_path(folder: Path) -> str | None:
    path = folder / PEFT_CONFIG
    return json.loads(path.read_text()).get("base_model_name_or_path") if path.is_file() else None


def write_card(folder: Path, kind: str, facts: CardFacts) -> Path:
    text = adapter_card(facts) if kind == "adapter" else embedder_card(facts, kind)
    (folder / CARD).write_text(text, encoding="utf-8")
    return folder / CARD


def adapter_card(facts: CardFacts) -> str:
    cfg = facts.config
    front = _front_matter(facts.generator_ref, "peft", ["lora", "text-generation"], facts)
    title = f"# {cfg['strategy']} LoRA adapter for {facts.generator_ref}\n"
    intro = (f"A LoRA adapter (rank {cfg.get('lora_rank')}) for the generator `{facts.generator_ref}`, trained by "
             f"[rag-harness](https://pypi.org/project/rag-harness/) with the `{cfg['strategy']}` strategy: "
             f"{facts.strategy_description}. At inference the retriever `{facts.embedder_ref}` puts the top "
             f"{cfg.get('k')} passages in the prompt.\n")
    return "\n".join([front, title, intro, *_usage(facts), *_base_weights(facts), *_common_sections(facts)])


def _usage(facts: CardFacts) -> list[str]:
    """How to answer a question with this adapter outside the harness: retrieve, build the prompt, generate.
    The script below is run by the tests against a tiny run and must reproduce its stored predictions."""
    cfg, example = facts.config, facts.example
    return [
        "## Usage\n",
        "The harness answers in three steps; this script does the same with plain sentence-transformers, "
        "transformers and peft, and reproduces the run's stored predictions:\n",
        "1. **Retrieve**: encode the question with the query tower and every passage (`title: text`) with the "
        f"passage tower (normalized), and keep the top {cfg.get('k')} by inner product (exact search).",
        "2. **Prompt**: the passages joined by a blank line into the template below (Lawton et al., Appendix A), "
        "then the tokenizer's chat template (one user message, generation prompt added) when it has one.",
        f"3. **Generate**: greedy decoding, at most {cfg.get('max_new_tokens')} new tokens; the answer is the "
        "first line of the output, stripped.\n",
        "The corpus, as the run retrieved from: `harness export RUN_ID --corpus corpus.jsonl` (one "
        "`{\"id\", \"title\", \"text\"}` per line; for `--dataset local` it is the data folder's corpus.jsonl).\n",
        "```python",
        *_script(facts).splitlines(),
        "```",
        (f"\nThis run answered that question `{json.dumps(example.get('prediction'))}` (gold: "
         f"{', '.join(map(str, example.get('golds', [])))}).\n" if example else ""),
    ]


def _script(facts: CardFacts) -> str:
    cfg, example = facts.config, facts.example
    question = example.get("question", "Your question here?")
    return f'''import json

import numpy as np
import torch
from peft import PeftModel
from sentence_transformers import SentenceTransformer
from transformers import AutoModelForCausalLM, AutoTokenizer

BASE = {json.dumps(facts.generator_path or facts.generator_ref)}  # the exact base weights: see "Base weights"
ADAPTER = "."  # this folder
QUERY_ENCODER = {json.dumps(facts.towers.get("query", facts.embedder_ref))}
PASSAGE_ENCODER = {json.dumps(facts.towers.get("passage", facts.embedder_ref))}
CORPUS = "corpus.jsonl"
K, MAX_NEW_TOKENS = {cfg.get("k")}, {cfg.get("max_new_tokens")}
PROMPT = {json.dumps(PROMPT)}

passages = [json.loads(line) for line in open(CORPUS, encoding="utf-8") if line.strip()]
texts = [f"{{p['title']}}: {{p['text']}}" if p.get("title") else p["text"] for p in passages]
passage_vectors = SentenceTransformer(PASSAGE_ENCODER).encode(texts, normalize_embeddings=True)
query_encoder = SentenceTransformer(QUERY_ENCODER)
tokenizer = AutoTokenizer.from_pretrained(BASE)
model = AutoModelForCausalLM.from_pretrained(BASE, dtype=torch.float32)
model = PeftModel.from_pretrained(model, ADAPTER).eval()


def answer(question: str) -> str:
    query = query_encoder.encode([question], normalize_embeddings=True)[0]
    top = np.argsort(-(passage_vectors @ query), kind="stable")[:K]
    text = PROMPT.format(context="\\n\\n".join(texts[i] for i in top), question=question)
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template([{{"role": "user", "content": text}}], tokenize=False,
                                             add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=not tokenizer.chat_template, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
    decoded = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    return decoded.splitlines()[0].strip() if decoded else ""


print(answer({json.dumps(question)}))
'''


def _base_weights(facts: CardFacts) -> list[str]:
    """The exact weights the adapter was trained on (not merely a model name)."""
    w = facts.base_weights
    if not w:
        return []
    lines = ["## Base weights\n", "The adapter was trained on exactly these weights; load them as the base:\n",
             "| | |", "| --- | --- |"]
    lines += [f"| {key} | `{value}` |" for key, value in w.items() if key != "note"]
    return lines + ([f"\n{w['note']}.\n"] if w.get("note") else [""])


def embedder_card(facts: CardFacts, kind: str) -> str:
    cfg = facts.config
    tower = "passage" if kind == "passage_embedder" else "query"
    front = _front_matter(facts.embedder_ref, "sentence-transformers",
                          ["sentence-similarity", "feature-extraction"], facts)
    usage = ("```python\nfrom sentence_transformers import SentenceTransformer\n\n"
             "model = SentenceTransformer(\"THIS_REPO_OR_FOLDER\")\n"
             "vectors = model.encode([\"a question\"], normalize_embeddings=True)\n```\n")
    title = f"# {cfg['strategy']} {tower} encoder from {facts.embedder_ref}\n"
    intro = (f"A sentence-transformers model: the {tower} tower of `{facts.embedder_ref}`, trained by "
             f"[rag-harness](https://pypi.org/project/rag-harness/) with the `{cfg['strategy']}` strategy "
             f"({facts.strategy_description}) together with the generator `{facts.generator_ref}`.\n")
    return "\n".join([front, title, intro, "## Usage\n", usage, *_common_sections(facts)])


def _front_matter(base: str, library: str, tags: list[str], facts: CardFacts) -> str:
    tags = ["rag-harness", facts.config["strategy"], "retrieval-augmented-generation", *tags]
    lines = ["---", f"base_model: {json.dumps(base)}", f"library_name: {library}", "tags:"]
    lines += [f"- {tag}" for tag in tags]
    return "\n".join(lines + ["---", ""])


def _common_sections(facts: CardFacts) -> list[str]:
    cfg = facts.config
    training = [
        "## Training\n",
        "| | |", "| --- | --- |",
        f"| strategy | `{cfg['strategy']}` |",
        f"| dataset | `{cfg['dataset']}`" + (f" (`{cfg['data_dir']}`)" if cfg.get("data_dir") else "") + " |",
        f"| generator (base) | `{facts.generator_ref}` |",
        f"| embedder (base) | `{facts.embedder_ref}` |",
        f"| embedder learning rate | {_rate(facts, 'embed_lr')} |",
        f"| generator learning rate | {_rate(facts, 'gen_lr')} |",
        f"| epochs · batch size · seed | {cfg.get('epochs')} · {cfg.get('batch_size')} · {cfg.get('seed')} |",
        f"| LoRA rank · quantization | {cfg.get('lora_rank')} · {cfg.get('quantize') or 'none'} |",
        f"| top-k · retrieval temperature | {cfg.get('k')} · {cfg.get('tau')} |",
        f"| strategy options | {_value(cfg.get('strategy_options') or 'defaults')} |",
        "",
    ]
    return [*training, *_results(facts), *_reproduce(facts), *_citation(facts)]


def _results(facts: CardFacts) -> list[str]:
    k = facts.config.get("k", 5)
    lines = ["## Results\n",
             "Measured by the harness's one evaluation code path (SQuAD-normalised EM and F1 in percent, 95% "
             f"bootstrap intervals over questions; recall@{k}: a gold passage in the top {k}; answer_recall@{k}: "
             "a gold answer inside a top-k passage).\n",
             f"| split | questions | EM (95% CI) | F1 (95% CI) | recall@{k} | answer_recall@{k} |",
             "| --- | --- | --- | --- | --- | --- |"]
    for split in (s for s in SPLITS if s in facts.metrics):
        m = facts.metrics[split]
        lines.append(f"| {split} | {round(m.get('n', 0))} | {_interval(m, 'em')} | {_interval(m, 'f1')} | "
                     f"{_pct(m.get(f'recall@{k}'))} | {_pct(m.get(f'answer_recall@{k}'))} |")
    cost = facts.metrics.get("cost", {})
    if cost:
        lines += ["", f"Training: {cost.get('fit_seconds', 0):.0f} s, {cost.get('trained_tokens', 0):.0f} tokens, "
                      f"peak memory {cost.get('peak_memory_mb', 0):.0f} MB."]
    return lines + [""]


def _reproduce(facts: CardFacts) -> list[str]:
    toml = config_to_toml(facts.config).strip()
    return ["## Reproduce\n", f"rag-harness {__version__} (code {facts.code_version}), run `{facts.run_id}`. "
            "Save this as `run.toml` and run `harness run --config run.toml`:\n", "```toml", toml, "```", ""]


def _citation(facts: CardFacts) -> list[str]:
    if not facts.citation.strip():
        return []
    return ["## Citation\n", "The strategy this model was trained with:\n", "```bibtex", facts.citation.strip(), "```", ""]


def _interval(metrics: dict, name: str) -> str:
    value = metrics.get(name)
    if value is None:
        return "–"
    low, high = metrics.get(f"{name}_low"), metrics.get(f"{name}_high")
    return f"{value:.1f} ({low:.1f}–{high:.1f})" if low is not None and high is not None else f"{value:.1f}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _rate(facts: CardFacts, name: str) -> str:
    return _value(facts.config.get(name)) if name in facts.learning_rates else "not trained"


def _value(value: Any) -> str:
    if value is None:
        return "strategy default"
    return f"`{json.dumps(value)}`" if isinstance(value, dict) else str(value)


# -- at the end of a run ---------------------------------------------------------------------------
def model_ref(spec: Any, name: str) -> str:
    """The name a user loads a model by: the spec's hub id, else the `hf:` folder or id, else the harness name."""
    return getattr(spec, "hub_id", None) or (name[3:] if name.startswith("hf:") else name)


def base_weights(spec: Any, loaded_from: str | None) -> dict[str, str]:
    """The spec's own account of its exact weights, else the folder loaded and the sha256 of its weights."""
    if getattr(spec, "weights", None) is not None:
        return spec.weights()
    if not loaded_from or not Path(loaded_from).is_dir():
        return {"model": loaded_from} if loaded_from else {}
    files = sorted(Path(loaded_from).glob("*.safetensors"))
    digest = hashlib.sha256(b"".join(hashlib.sha256(f.read_bytes()).digest() for f in files)).hexdigest()
    return {"folder": loaded_from, "files": ", ".join(f.name for f in files), "sha256": digest}


def towers(paths: dict[str, Path], embedder_path: str) -> dict[str, str]:
    """The query and passage encoders the run retrieved with at evaluation: a tuned tower where the run saved
    one (the passage side only where the corpus was re-encoded with it), else the base embedder."""
    query = passage = embedder_path
    if "embedder" in paths:
        query = "../embedder"
        note = paths["embedder"] / ARTIFACT_NOTE
        if note.is_file() and json.loads(note.read_text()).get("reindexed"):
            passage = "../embedder"
    if "passage_embedder" in paths:
        passage = "../passage_embedder"
    return {"query": query, "passage": passage}


def write_model_cards(folder: Any, metrics: list, cfg: Any, resolved: Any, embedder_path: str = "",
                      example: dict | None = None) -> dict[str, Path]:
    """Point the run's adapter at its base model's hub id and write a card into every artifact folder of the
    run folder `folder` (harness.runfolder.RunFolder; `metrics` as (split, name, value) rows), registering
    the artifacts' new sha256 there before the run is finalised. Returns kind -> card path."""
    paths = {kind: folder.path / entry["path"] for kind, entry in folder.artifacts().items()}
    if not paths:
        return {}
    by_split: dict[str, dict[str, float]] = {}
    for split, name, value in metrics:
        by_split.setdefault(split, {})[name] = value
    generator_hub = getattr(resolved.generator_spec, "hub_id", None)
    loaded_from = adapter_base_path(paths["adapter"]) if "adapter" in paths else None
    if "adapter" in paths:
        point_adapter_at_hub(paths["adapter"], generator_hub)
    generator_ref = generator_hub or loaded_from
    strategy = resolved.strategy_cls
    facts = CardFacts(folder.path.name, cfg.to_dict(), by_split, strategy.description or strategy.name,
                      strategy.citation, generator_ref or model_ref(resolved.generator_spec, cfg.generator),
                      model_ref(resolved.embedder_spec, cfg.embedder), code_version(), tuple(strategy.learning_rates),
                      base_weights=base_weights(resolved.generator_spec, loaded_from), generator_path=loaded_from or "",
                      towers=towers(paths, embedder_path or model_ref(resolved.embedder_spec, cfg.embedder)),
                      example=example or {})
    cards = {kind: write_card(path, kind, facts) for kind, path in paths.items()}
    folder.rehash_artifacts()
    return cards
