"""The `harness` command: the group, its core commands, and plugin commands added at start-up.

    common.py       what commands share; the public API of plugin commands (console, open_store, launch_argv)
    exit.py         how a command ends: one line and exit 2 for a mistake, 130/143 for Ctrl-C/SIGTERM
    run.py          harness run                  grid.py         harness grid
    catalog.py      harness plugins, list        leaderboard.py  harness leaderboard
    runs.py         harness show, evaluate,      migrate.py      harness migrate
                    runs, import

Which commands are core and which are plugins: the core holds the run / grid / inspect / store contract
(run, grid, show, evaluate, runs, import, leaderboard, list, plugins, migrate); commands with optional
dependencies or peripheral use are built-in plugins through `register_commands` (plugins/commands/:
dashboard, export, index, install-assets), written against `harness.cli.common` like any third-party one.
Commands are thin: they parse, call the machinery, and print; heavy imports stay inside the command functions,
so `harness --help` and `harness leaderboard` start without torch.
"""

from __future__ import annotations

import sys

import click

from harness import env, plugins
from harness._exports import moved_name
from harness.cli import catalog, common, grid, leaderboard, migrate, run, runs, study
from harness.cli.common import console, quiet_libraries
from harness.cli.exit import exit_code_for, release_signals, signals_held, sigterm_as_interrupt
from harness.cli.grid import add_executor_options
from harness.store.db import default_db_path
from harness.version import __version__

__all__ = ["cli", "main", "console", "quiet_libraries"]  # console and quiet_libraries: the paths of 0.1


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="harness")
@click.option("--db", default=None, help="DuckDB store (default ./harness.duckdb, or $HARNESS_DB)")
@click.option("--plugins-dir", default=None, type=click.Path(), help="load every *.py in DIR as a plugin")
@click.pass_context
def cli(ctx: click.Context, db: str | None, plugins_dir: str | None) -> None:
    """rag-harness: run, contribute and compare RAG fine-tuning strategies.

    \b
    Examples:
      harness run --plugin no_ft          # the baseline on the offline default models and data
      harness leaderboard                 # every finished run, best first
      harness list strategies             # what you can run
      harness leaderboard --db runs.duckdb   # --db goes before or after the command
    """
    ctx.obj = {"db": db or default_db_path()}
    if plugins_dir:
        plugins.load_plugins(plugins_dir)


CORE_COMMANDS = (run.run, grid.grid, leaderboard.leaderboard, runs.show, runs.evaluate, runs.runs_command,
                 runs.import_command, catalog.plugins_command, catalog.list_command, migrate.migrate,
                 study.study)
for _command in CORE_COMMANDS:
    cli.add_command(_command)


def _register_plugin_commands() -> None:
    plugins.pm.hook.register_commands(cli=cli)
    add_executor_options(cli.commands["grid"], plugins.executors().items.values())
    add_executor_options(cli.commands["study"].commands["run"], plugins.executors().items.values())
    for command in cli.commands.values():
        add_db_option(command)
        for sub in getattr(command, "commands", {}).values():  # a group's commands (`harness study plan --db X`)
            add_db_option(sub)


def add_db_option(command: click.Command) -> None:
    """`harness COMMAND --db X` as well as `harness --db X COMMAND` (commands with their own --db keep it)."""
    if any(param.name == "db" for param in command.params):
        return
    command.params.append(click.Option(["--db"], default=None, expose_value=False, callback=_set_db, metavar="PATH",
                                       help="DuckDB store (default ./harness.duckdb, or $HARNESS_DB)"))


def _set_db(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.obj["db"] = value


def main(argv: list[str] | None = None) -> None:
    """Entry point: load plugins, add their commands, run; a user's mistake is one line and exit code 2.

    Ctrl-C and SIGTERM (`timeout`, Slurm preemption, `docker stop`) end the same way: a run in progress is
    stored `interrupted`, one line says so, exit code 130 (Ctrl-C) or 143 (SIGTERM).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    common._LAUNCH_ARGV[:] = argv
    with signals_held(), sigterm_as_interrupt():  # a signal until release_signals() waits, then ends it cleanly
        try:
            plugins.load_plugins(_early_plugins_dir(argv))
            _register_plugin_commands()
            _import_heavy_libraries(argv)
            release_signals()
            cli.main(args=argv, prog_name="harness", standalone_mode=False)
        except BaseException as exc:  # noqa: BLE001 - sorted by kind below; anything else re-raises
            sys.exit(exit_code_for(exc))


HEAVY_COMMANDS = {"run", "grid", "evaluate", "index", "export"}  # they import torch and the model libraries


def _import_heavy_libraries(argv: list[str]) -> None:
    """Import what a model command needs (torch, transformers, ...) while signals are held: a Ctrl-C or
    SIGTERM in the middle of importing torch can crash the interpreter instead of ending the command."""
    command = next((arg for arg in argv if arg in cli.commands), None)
    if command in HEAVY_COMMANDS and not {"--help", "-h"} & set(argv):
        import harness.runner.lifecycle  # noqa: F401


def _early_plugins_dir(argv: list[str]) -> str | None:
    """`--plugins-dir` is needed before the CLI is built, so plugin commands can register."""
    for i, arg in enumerate(argv):
        if arg == "--plugins-dir" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--plugins-dir="):
            return arg.split("=", 1)[1]
    return env.plugins_dir()


def __getattr__(name: str):  # the names of the flat layout (harness.cli._LAUNCH_ARGV, ...), for one more release
    return moved_name(__name__, name)
