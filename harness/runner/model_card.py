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

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.config import code_version
from harness.config_file import config_to_toml
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
    usage = ("```python\nfrom peft import AutoPeftModelForCausalLM\nfrom transformers import AutoTokenizer\n\n"
             "model = AutoPeftModelForCausalLM.from_pretrained(\"THIS_REPO_OR_FOLDER\")\n"
             f"tokenizer = AutoTokenizer.from_pretrained(\"{facts.generator_ref}\")\n```\n")
    title = f"# {cfg['strategy']} LoRA adapter for {facts.generator_ref}\n"
    intro = (f"A LoRA adapter (rank {cfg.get('lora_rank')}) for the generator `{facts.generator_ref}`, trained by "
             f"[rag-harness](https://pypi.org/project/rag-harness/) with the `{cfg['strategy']}` strategy: "
             f"{facts.strategy_description}. At inference the retriever `{facts.embedder_ref}` puts the top "
             f"{cfg.get('k')} passages in the prompt.\n")
    return "\n".join([front, title, intro, "## Usage\n", usage, *_common_sections(facts)])


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


def write_model_cards(folder: Any, metrics: list, cfg: Any, resolved: Any) -> dict[str, Path]:
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
    if "adapter" in paths:
        point_adapter_at_hub(paths["adapter"], generator_hub)
    generator_ref = generator_hub or (adapter_base_path(paths["adapter"]) if "adapter" in paths else None)
    strategy = resolved.strategy_cls
    facts = CardFacts(folder.path.name, cfg.to_dict(), by_split, strategy.description or strategy.name,
                      strategy.citation, generator_ref or model_ref(resolved.generator_spec, cfg.generator),
                      model_ref(resolved.embedder_spec, cfg.embedder), code_version(), tuple(strategy.learning_rates))
    cards = {kind: write_card(path, kind, facts) for kind, path in paths.items()}
    folder.rehash_artifacts()
    return cards
