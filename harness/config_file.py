"""Run and grid configuration files (TOML or YAML): read, check, merge with flags, and write back.

A file's keys are `RunConfig` field names; strategy options go in a `strategy_options` table:

    # run.toml                                   # the same in run.yaml
    strategy = "ft_gen"                          # strategy: ft_gen
    dataset = "local"                            # dataset: local
    data_dir = "./my_data"                       # data_dir: ./my_data
    gen_lr = 1e-4                                # gen_lr: 1.0e-4
    [strategy_options]                           # strategy_options:
    micro_batch = 2                              #   micro_batch: 2

`harness run --config run.toml --epochs 2`: flags given on the command line win over the file; the file
wins over the flags' defaults. A grid file also takes `lr_grid`, `lrs_from`, and lists for `embed_lr` and
`gen_lr`. Unknown keys and wrong types are one error line naming the file and the key.
`harness show RUN_ID --config` writes the stored config as TOML: running it reproduces the run exactly.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import tomllib
import typing
from pathlib import Path
from typing import Any

from harness.config import LR_GRIDS, RunConfig
from harness.errors import UserError
from harness.strategy import strategy_options_class

SUFFIXES = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml"}
GRID_KEYS = {"lr_grid": "str | None", "lrs_from": "str | None", "embed_lr": "list[float] | float | None",
             "gen_lr": "list[float] | float | None"}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The file's top-level table as a dict; a missing file, a bad suffix or a syntax error is a UserError."""
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"{path}: config files end in .toml, .yaml or .yml")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read config file ({exc})") from None
    data = _parse_toml(text, path) if kind == "toml" else _parse_yaml(text, path)
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config file is a table of KEY = VALUE lines, got a {type(data).__name__}")
    return data


def _parse_toml(text: str, path: Path) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML: {exc}") from None


def _parse_yaml(text: str, path: Path) -> Any:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    return {} if data is None else data


# -- checking ------------------------------------------------------------------------------------
def run_config_types() -> dict[str, str]:
    """RunConfig field name -> its annotation as text (e.g. 'float | None')."""
    hints = typing.get_type_hints(RunConfig)
    return {f.name: _type_text(hints[f.name]) for f in dataclasses.fields(RunConfig)}


def _type_text(hint: Any) -> str:
    text = str(hint) if not isinstance(hint, type) else hint.__name__
    return text.replace("typing.", "").replace("NoneType", "None")


def check_keys(data: dict, path: Path, types: dict[str, str]) -> dict[str, Any]:
    """Every key known and every value of its type; numbers given as YAML strings ('1e-5') become floats."""
    checked = {}
    for key, value in data.items():
        if key not in types:
            close = difflib.get_close_matches(str(key), types, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserError(f"{path}: unknown key '{key}'{hint}; keys are {', '.join(sorted(types))}")
        checked[key] = check_value(value, types[key], f"{path}: key '{key}'")
    return checked


def check_value(value: Any, type_text: str, where: str) -> Any:
    """`value` if it fits one of the alternatives in `type_text`, converted where that is lossless."""
    for alternative in (t.strip() for t in type_text.split("|")):
        ok, converted = _fits(value, alternative)
        if ok:
            return converted
    raise UserError(f"{where} must be {_describe(type_text)}, got {json.dumps(value, default=str)}")


def _fits(value: Any, kind: str) -> tuple[bool, Any]:
    if kind == "None":
        return value is None, None
    if kind == "bool":
        return isinstance(value, bool), value
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool), value
    if kind == "float":
        return _as_float(value)
    if kind == "str":
        return isinstance(value, str), value
    if kind.startswith("list["):
        inner = kind[5:-1]
        if not isinstance(value, list):
            return False, None
        items = [_fits(item, inner) for item in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if kind.startswith("dict["):
        return isinstance(value, dict), value
    return True, value  # Any


def _as_float(value: Any) -> tuple[bool, Any]:
    if isinstance(value, bool):
        return False, None
    if isinstance(value, (int, float)):
        return math.isfinite(value), float(value)
    if isinstance(value, str):  # YAML 1.1 reads 1e-5 (no dot) as a string
        try:
            number = float(value)
        except ValueError:
            return False, None
        return math.isfinite(number), number
    return False, None


def _describe(type_text: str) -> str:
    words = {"int": "an integer", "float": "a finite number", "str": "a string", "bool": "true or false",
             "None": "unset", "list[str]": "a list of strings", "list[float]": "a list of numbers",
             "dict[str, Any]": "a table of options"}
    return " or ".join(words.get(t.strip(), t.strip()) for t in type_text.split("|") if t.strip() != "None")


def check_strategy_options(options: dict, strategy_cls: Any, path: Path) -> dict[str, Any]:
    """The `strategy_options` table checked against the strategy's Options dataclass, named by file and key."""
    options_cls = strategy_options_class(strategy_cls)
    fields = {f.name: f for f in dataclasses.fields(options_cls)} if options_cls else {}
    types = _option_types(options_cls)
    checked = {}
    for key, value in options.items():
        if key not in fields:
            known = ", ".join(fields) or "none"
            raise UserError(f"{path}: strategy '{strategy_cls.name}' has no option '{key}' "
                            f"(key 'strategy_options.{key}'); its options: {known}")
        # a string is what `--set` stores; the strategy's own option parser converts and checks it
        where = f"{path}: key 'strategy_options.{key}'"
        checked[key] = value if isinstance(value, str) else check_value(value, types.get(key, "Any"), where)
    return checked


def _option_types(options_cls: Any) -> dict[str, str]:
    if options_cls is None:
        return {}
    try:
        return {name: _type_text(hint) for name, hint in typing.get_type_hints(options_cls).items()}
    except (NameError, TypeError):  # an annotation this module cannot resolve: the strategy checks the value
        return {}


# -- loading -------------------------------------------------------------------------------------
def load_run_file(path: str | Path, extra_types: dict[str, str] | None = None) -> dict[str, Any]:
    """RunConfig values (and, for a grid, `extra_types` keys) from a config file, checked."""
    from harness import plugins

    path = Path(path)
    types = {**run_config_types(), **(extra_types or {})}
    values = check_keys(read_config_file(path), path, types)
    if values.get("strategy_options"):
        strategy_cls = plugins.strategies().get(values.get("strategy", RunConfig.strategy))
        values["strategy_options"] = check_strategy_options(values["strategy_options"], strategy_cls, path)
    return values


def load_grid_file(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(RunConfig values, grid values) of a grid file; `embed_lr`/`gen_lr` there are lists of rates to search."""
    path = Path(path)
    values = load_run_file(path, GRID_KEYS)
    grid = {key: values.pop(key) for key in list(values) if key in GRID_KEYS}
    for name in ("embed_lr", "gen_lr"):
        rates = grid.get(name)
        if rates is not None:
            grid[name] = rates = rates if isinstance(rates, list) else [rates]
            if not rates or any(rate <= 0 for rate in rates):
                raise UserError(f"{path}: key '{name}' must list learning rates > 0, got {rates}")
    if grid.get("lr_grid") is not None and grid["lr_grid"] not in LR_GRIDS:
        raise UserError(f"{path}: key 'lr_grid' must be one of {', '.join(LR_GRIDS)}, got '{grid['lr_grid']}'")
    return values, grid


def merge_over_file(file_values: dict[str, Any], flag_values: dict[str, Any], given: set[str]) -> dict[str, Any]:
    """The file's values, overridden by every flag given on the command line; strategy options merge key by key."""
    merged = {k: v for k, v in flag_values.items() if k not in file_values or k in given}
    for key, value in file_values.items():
        if key not in merged:
            merged[key] = value
    if "strategy_options" in file_values and "strategy_options" in given:
        merged["strategy_options"] = {**file_values["strategy_options"], **flag_values["strategy_options"]}
    return merged


# -- writing -------------------------------------------------------------------------------------
def config_to_toml(config: dict[str, Any], header: str = "") -> str:
    """A run's stored config as a TOML file (`None` values are left out: unset is their default)."""
    known = {f.name for f in dataclasses.fields(RunConfig)}
    lines = [f"# {line}" for line in header.splitlines()]
    scalars = {k: v for k, v in config.items() if k in known and k != "strategy_options" and v is not None}
    lines += [f"{key} = {toml_value(value)}" for key, value in scalars.items()]
    options = config.get("strategy_options") or {}
    if options:
        lines += ["", "[strategy_options]"] + [f"{key} = {toml_value(value)}" for key, value in options.items()]
    return "\n".join(lines) + "\n"


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML: {value!r}")
