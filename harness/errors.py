"""The one exception type for a user's mistake: the CLI prints its message on one line, exit code 2."""

import difflib


class UserError(Exception):
    """Bad input from the user (unknown name, malformed file, bad option). Never shown as a traceback."""

    exit_code = 2


class PluginError(UserError):
    """A plugin failed while loading or registering; the message names the plugin."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (`timeout`, Slurm preemption, `docker stop`), raised in the main thread and handled as
    Ctrl-C: the run in progress is stored `interrupted`; the CLI exits with 143 (128 + SIGTERM)."""


def unknown_name_error(kind: str, name: str, known: list[str]) -> UserError:
    """`unknown strategy 'jsa-rag'; known: ...; did you mean 'jsa_rag'?`"""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    listed = ", ".join(sorted(known)) or "(none registered)"
    return UserError(f"unknown {kind} '{name}'; known: {listed}{hint}")
