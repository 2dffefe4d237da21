"""A study from a TOML file, with the key names of run and grid files (examples/studies/):

    name = "my_study"                         # what `harness study plan|run|report` is given (or the file)
    title = "..."
    citation = "..."
    seeds = [0, 1, 2]
    search_seeds = [0]                        # optional: grids search on these, the winner runs on every seed
    budgets = []                              # training-FLOP budgets (max_train_flops), optional
    [protocol]                                # RunConfig keys every run takes, plus the two splits
    select_split = "dev"
    report_split = "test"
    k = 5
    epochs = 1
    [[strategies]]                            # strategy, label, strategy_options, gen_lr / embed_lr lists,
    strategy = "ft_gen"                       # lrs_from (a strategy: reuse its selected rates)
    gen_lr = [1e-5, 1e-4]
    [[datasets]]                              # name (label), dataset (plugin), data_dir, train_questions,
    name = "mine"                             # corpus_passages, get (the command that fetches it)
    dataset = "local"
    data_dir = "examples/data"
    [[pipelines]]                             # name, embedder, generator, embedder_params, generator_params
    name = "packaged"
    embedder = "minilm"
    generator = "smollm2-135m"
    [[published]]                             # strategy, dataset, pipeline ("*": mean of pipelines), metric,
    strategy = "ft_gen"                       # value, source
    [[claims]]                                # text, kind (best|beats|matches|cheaper), strategies, metric
    [scales.smoke]                            # note, limit/max_new_tokens/... (RunConfig keys), lr_values,
                                              # seeds, search_seeds, embedder + generator (one pipeline)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.config_file import check_keys, check_value, read_config_file, run_config_types
from harness.errors import UserError
from harness.study.spec import (
    ANY_PIPELINE,
    Claim,
    DatasetAxis,
    Pipeline,
    Protocol,
    Published,
    Scale,
    StrategyAxis,
    Study,
)

TOP = {"name": "str", "title": "str", "citation": "str", "seeds": "list[int]", "search_seeds": "list[int]",
       "budgets": "list[float]",
       "protocol": "dict[str, Any]", "strategies": "list[dict]", "datasets": "list[dict]", "pipelines": "list[dict]",
       "published": "list[dict]", "claims": "list[dict]", "metric_notes": "dict[str, Any]", "scales": "dict[str, Any]",
       "setting": "str"}
STRATEGY_KEYS = {"strategy": "str", "label": "str", "strategy_options": "dict[str, Any]", "embed_lr": "list[float]",
                 "gen_lr": "list[float]", "lr_grid": "str", "lrs_from": "str"}
DATASET_KEYS = {"name": "str", "dataset": "str", "data_dir": "str", "train_questions": "int",
                "corpus_passages": "int", "get": "str"}
PIPELINE_KEYS = {"name": "str", "embedder": "str", "generator": "str", "embedder_params": "float",
                 "generator_params": "float"}
PUBLISHED_KEYS = {"strategy": "str", "dataset": "str", "pipeline": "str", "metric": "str", "value": "float",
                  "source": "str"}
CLAIM_KEYS = {"text": "str", "kind": "str", "strategies": "list[str]", "metric": "str", "dataset": "str"}


def load_study_file(path: str | Path) -> Study:
    path = Path(path)
    data = check_keys(read_config_file(path), path, TOP)
    for key in ("name", "strategies", "datasets", "pipelines"):
        if not data.get(key):
            raise UserError(f"{path}: a study needs '{key}'")
    return Study(
        name=data["name"], title=data.get("title", data["name"]), citation=data.get("citation", ""),
        strategies=tuple(_strategy(t, path) for t in data["strategies"]),
        datasets=tuple(DatasetAxis(**_table(t, path, "datasets", DATASET_KEYS, ("name", "dataset")))
                       for t in data["datasets"]),
        pipelines=tuple(Pipeline(**_table(t, path, "pipelines", PIPELINE_KEYS, ("name", "embedder", "generator")))
                        for t in data["pipelines"]),
        protocol=_protocol(data.get("protocol", {}), path), seeds=tuple(data.get("seeds", [0])),
        search_seeds=_search_seeds(data.get("search_seeds", []), data.get("seeds", [0]), path),
        budgets=tuple(data.get("budgets", [])),
        published=tuple(Published(**{"pipeline": ANY_PIPELINE, "source": "", **_table(
            t, path, "published", PUBLISHED_KEYS, ("strategy", "dataset", "metric", "value"))})
            for t in data.get("published", [])),
        claims=tuple(_claim(t, path) for t in data.get("claims", [])),
        metric_notes={k: str(v) for k, v in data.get("metric_notes", {}).items()},
        setting=data.get("setting", ""),
        scales={name: _scale(name, t, path) for name, t in data.get("scales", {}).items()},
    )


def _table(table: Any, path: Path, where: str, keys: dict[str, str], required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise UserError(f"{path}: each [[{where}]] is a table")
    values = check_keys(table, Path(f"{path} [[{where}]]"), keys)
    missing = [k for k in required if k not in values]
    if missing:
        raise UserError(f"{path}: a [[{where}]] table lacks {', '.join(missing)}")
    return values


def _strategy(table: Any, path: Path) -> StrategyAxis:
    from harness.config import LR_GRIDS

    values = _table(table, path, "strategies", STRATEGY_KEYS, ("strategy",))
    grid = {n: list(values[n]) for n in ("embed_lr", "gen_lr") if n in values}
    if "lr_grid" in values:
        if values["lr_grid"] not in LR_GRIDS:
            raise UserError(f"{path}: lr_grid must be one of {', '.join(LR_GRIDS)}")
        grid = {n: list(LR_GRIDS[values["lr_grid"]]) for n in ("embed_lr", "gen_lr")} | grid
    source = values.get("lrs_from")
    return StrategyAxis(values["strategy"], values.get("label", ""), values.get("strategy_options", {}), grid,
                        {"embed_lr": source, "gen_lr": source} if source else {})


def _protocol(table: dict, path: Path) -> Protocol:
    table = dict(table)
    splits = {k: check_value(table.pop(k), "str", f"{path}: protocol.{k}") for k in ("select_split", "report_split")
              if k in table}
    return Protocol(**splits, config=check_keys(table, Path(f"{path} [protocol]"), run_config_types()))


def _claim(table: Any, path: Path) -> Claim:
    values = _table(table, path, "claims", CLAIM_KEYS, ("text", "kind", "strategies"))
    if values["kind"] not in ("best", "beats", "matches", "cheaper"):
        raise UserError(f"{path}: a claim's kind is best, beats, matches or cheaper; got '{values['kind']}'")
    return Claim(values["text"], values["kind"], tuple(values["strategies"]), values.get("metric", "em"),
                 values.get("dataset"))


def _scale(name: str, table: Any, path: Path) -> Scale:
    if not isinstance(table, dict):
        raise UserError(f"{path}: [scales.{name}] is a table")
    table = dict(table)
    note = str(table.pop("note", f"{name.upper()} SCALE"))
    lr_values = table.pop("lr_values", None)
    seeds = table.pop("seeds", None)
    search_seeds = table.pop("search_seeds", None)
    embedder, generator = table.pop("embedder", None), table.pop("generator", None)
    pipelines = (Pipeline(f"{embedder} + {generator}", embedder, generator),) if embedder and generator else None
    config = check_keys(table, Path(f"{path} [scales.{name}]"), run_config_types())
    return Scale(note, pipelines, None, tuple(check_value(lr_values, "list[float]", f"{path}: lr_values"))
                 if lr_values else None, tuple(seeds) if seeds else None,
                 _search_seeds(search_seeds, seeds, path, f"[scales.{name}] ") if search_seeds is not None else None,
                 config)


def _search_seeds(search: list[int], seeds: list[int] | None, path: Path, where: str = "") -> tuple[int, ...]:
    """`search_seeds` must name seeds the study runs (those of the scale where it sets its own)."""
    stray = [s for s in search if seeds is not None and s not in seeds]
    if stray:
        raise UserError(f"{path}: {where}search_seeds {stray} are not among seeds {list(seeds)}")
    return tuple(search)


def get_study(name: str) -> Study:
    """A registered study by name, or a study file (.toml) by path."""
    from harness import plugins

    if name.endswith(".toml") or Path(name).is_file():
        return load_study_file(name)
    plugins.load_plugins()
    return plugins.studies().get(name)
