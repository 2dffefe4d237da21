"""`harness plugins` and `harness list`: what is installed, where it came from, what breaks its contract."""

from __future__ import annotations

import dataclasses

import click
from rich.table import Table

from harness import plugins
from harness.cli.common import console
from harness.strategy import strategy_options_class


@click.command(name="plugins")
def plugins_command() -> None:
    """List loaded plugins, where each came from, and the hooks it implements.

    \b
    Examples:
      harness plugins
      harness --plugins-dir ./my_plugins plugins
      HARNESS_LOAD_PLUGINS=harness_example_strategy harness plugins
    """
    table = Table("plugin", "origin", "hooks")
    for info in plugins.plugin_info():
        table.add_row(info["name"], info["origin"], ", ".join(info["hooks"]))
    console.print(table)
    print_contract_problems(plugins.strategies())


def print_contract_problems(reg) -> None:
    """Strategies that do not satisfy the contract (harness/strategy.py), each with what it lacks."""
    if not reg.problems:
        return
    table = Table("strategy", "plugin", "missing", title="strategies that break the contract (harness/strategy.py): "
                                                         "they cannot run")
    for name, problems in sorted(reg.problems.items()):
        table.add_row(name, reg.owners[name], "; ".join(problems))
    console.print(table)


@click.command(name="list")
@click.argument("what", type=click.Choice(["strategies", "models", "datasets"]))
@click.option("--verbose", "-v", is_flag=True, help="strategies: their --set options; datasets: sizes, sources, licenses")
def list_command(what: str, verbose: bool) -> None:
    """List registered strategies, models (embedders and generators) or datasets.

    \b
    Examples:
      harness list strategies
      harness list strategies --verbose     # with each strategy's --set options
      harness list datasets -v              # sizes, sources, licenses
    """
    if what == "strategies":
        reg = plugins.strategies()
        table = Table("strategy", "needs context labels", "plugin", "description",
                      *(["learning rates", "--set options"] if verbose else []))
        for name, cls in sorted(reg.items.items()):
            if name in reg.problems:
                continue
            row = [name, "yes" if cls.needs_context_labels else "no", reg.owners[name], cls.description]
            rates = "\n".join(f"{k}={v:g}" for k, v in cls.learning_rates.items()) or "–"
            table.add_row(*(row + ([rates, strategy_options_text(cls)] if verbose else [])))
        console.print(table)
        print_contract_problems(reg)
        return
    elif what == "models":
        table = Table("kind", "name", "plugin", "description")
        for kind, reg in plugins.models().items():
            for name, spec in sorted(reg.items.items()):
                table.add_row(kind, name + ("<id>" if name.endswith(":") else ""), reg.owners[name], spec.description)
    else:
        reg = plugins.datasets()
        columns = ["dataset", "context labels", "description"] + (["size", "license", "source"] if verbose else [])
        table = Table(*columns)
        for name, spec in sorted(reg.items.items()):
            row = [name, "yes" if spec.has_context_labels else "no", spec.description]
            table.add_row(*(row + ([getattr(spec, "size", ""), spec.license, spec.source] if verbose else [])))
    console.print(table)


def strategy_options_text(cls) -> str:
    """`name=default  help` for each field of the strategy's Options dataclass (what --set accepts)."""
    options = strategy_options_class(cls)
    if options is None:
        return "–"
    return "\n".join(f"{f.name}={f.default if f.default is not dataclasses.MISSING else '?'}  {f.metadata.get('help', '')}".rstrip()  # noqa: E501
                     for f in dataclasses.fields(options))

