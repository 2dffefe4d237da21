"""The strategy contract: what a strategy plugin is, read in one place (as torchtune's recipe_interfaces.py).

A strategy is any class with these attributes and a `fit(ctx)` method; no base class is needed:

    class MyStrategy:
        name = "my_strategy"                       # what `--plugin` names
        citation = "Author et al. (2025). Title."  # BibTeX or a plain reference
        description = "one line for `harness list strategies`"
        needs_context_labels = False               # True: the dataset needs gold passage ids
        learning_rates = {"gen_lr": 1e-3}          # every rate it takes, with its default ({}: trains nothing)
        Options = MyOptions                        # optional: a dataclass of `--set key=value` options
        lr_stages = ()                             # optional: rates a grid may search one at a time
        run_defaults = None                        # optional: options -> other RunConfig defaults (batch_size)
        sharded_generator = False                  # optional: True if it may run with the generator sharded
                                                   # (FSDP): every generator call in fit goes through
                                                   # `backward_in_chunks`, so the processes call it in step

        def fit(self, ctx: FitContext) -> None: ...

The harness checks the contract when it collects strategies (`contract_problems`; `harness plugins` lists a
strategy that breaks it, with what is missing) and writes the defaults into the RunConfig before a run
starts (`resolve_defaults`), so a stored run records the learning rates and batch size it actually used.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from harness.config import RunConfig
from harness.errors import UserError

if TYPE_CHECKING:
    from harness.training.context import FitContext

LR_NAMES = ("embed_lr", "gen_lr")
DEFAULT_BATCH_SIZE = 4  # the harness's training batch when neither the user nor the strategy chooses one


class Strategy(Protocol):
    """The typed contract every strategy plugin satisfies (checked by `contract_problems`)."""

    name: ClassVar[str]
    citation: ClassVar[str]
    description: ClassVar[str]
    needs_context_labels: ClassVar[bool]
    learning_rates: ClassVar[Mapping[str, float]]  # rate name ("embed_lr", "gen_lr") -> its default
    Options: ClassVar[type | None]  # optional; None (or absent): the strategy takes no --set options
    lr_stages: ClassVar[tuple[tuple[str, dict[str, str]], ...]]  # optional; () when absent
    run_defaults: ClassVar[Callable[[Any], Mapping[str, Any]] | None]  # optional; options -> {field: default}
    sharded_generator: ClassVar[bool]  # optional; False when absent: refused under FSDP rather than left to hang

    def fit(self, ctx: FitContext) -> None: ...


REQUIRED = {"name": str, "citation": str, "description": str, "needs_context_labels": bool}
OPTIONAL = {"Options": None, "lr_stages": (), "run_defaults": None, "sharded_generator": False}


def contract_problems(cls: Any) -> list[str]:
    """What `cls` lacks to be a Strategy, one short phrase each (empty: it satisfies the contract)."""
    problems = [f"`{attr}` ({kind.__name__})" for attr, kind in REQUIRED.items()
                if not isinstance(getattr(cls, attr, None), kind)]
    rates = getattr(cls, "learning_rates", None)
    if not isinstance(rates, Mapping):
        problems.append("`learning_rates` (a dict of each rate it takes to its default, e.g. {'gen_lr': 1e-3})")
    elif any(k not in LR_NAMES or not isinstance(v, (int, float)) or not v > 0 for k, v in rates.items()):
        problems.append(f"`learning_rates` keys among {', '.join(LR_NAMES)} with defaults > 0")
    if not callable(getattr(cls, "fit", None)):
        problems.append("`fit(ctx)` method")
    options = getattr(cls, "Options", None)
    if options is not None and not dataclasses.is_dataclass(options):
        problems.append("`Options` as a dataclass")
    stages = getattr(cls, "lr_stages", ())
    if not (isinstance(stages, (tuple, list)) and all(isinstance(s, (tuple, list)) and len(s) == 2 for s in stages)):
        problems.append("`lr_stages` as ((rate name, options), ...)")
    return problems


def lr_stages(cls: Strategy) -> tuple[tuple[str, dict[str, str]], ...]:
    return tuple(getattr(cls, "lr_stages", ()) or ())


def strategy_options_class(cls: Strategy) -> type | None:
    return getattr(cls, "Options", None)


def resolve_defaults(cfg: RunConfig, cls: Strategy, options: Any) -> RunConfig:
    """`cfg` with every value the user left unset filled in: the strategy's learning-rate defaults (a rate it
    does not take stays None), its `run_defaults(options)`, then the harness's batch size."""
    values: dict[str, Any] = {}
    for name in LR_NAMES:
        if getattr(cfg, name) is None and name in cls.learning_rates:
            values[name] = float(cls.learning_rates[name])
    run_defaults = getattr(cls, "run_defaults", None)
    for name, value in (run_defaults(options) if run_defaults else {}).items():
        if getattr(cfg, name) is None:
            values[name] = value
    if cfg.batch_size is None and "batch_size" not in values:
        values["batch_size"] = DEFAULT_BATCH_SIZE
    return dataclasses.replace(cfg, **values)


def parse_strategy_options(strategy_cls: Any, pairs: dict[str, Any]) -> Any:
    """Build the strategy's `Options` dataclass from `--set key=value` pairs, coercing to field types."""
    options_cls = strategy_options_class(strategy_cls)
    if options_cls is None:
        if pairs:
            raise UserError(f"strategy '{strategy_cls.name}' takes no options (--set); got {sorted(pairs)}")
        return None
    fields = {f.name: f for f in dataclasses.fields(options_cls)}
    values = {}
    for key, raw in pairs.items():
        if key not in fields:
            raise UserError(f"strategy '{strategy_cls.name}' has no option '{key}'; options: {', '.join(fields)}")
        values[key] = _coerce(raw, fields[key], strategy_cls.name)
    try:
        return options_cls(**values)
    except (TypeError, ValueError) as exc:
        raise UserError(f"strategy '{strategy_cls.name}' options: {exc}") from None


def _coerce(raw: Any, f: dataclasses.Field, strategy: str) -> Any:
    if not isinstance(raw, str):
        return raw
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind.startswith("bool"):
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError(raw)
            return value
    except ValueError:
        what = "a finite float" if kind.startswith("float") else kind
        raise UserError(f"strategy '{strategy}' option '{f.name}' (--set) must be {what}, got '{raw}'") from None
    return raw

