"""The one exception type for a user's mistake (the CLI prints its message on one line, exit code 2), and
how a Ctrl-C or SIGTERM is told from the exception it comes out as."""

import difflib
import os
import signal
import sys
import threading

HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM}
_HELD_AT_START: list[bool] = []  # [True] once this process holds the signals from its first import on


def started_as_command() -> bool:
    """Whether this process is the `harness` command (the console script, or `python -m harness`)."""
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) == "harness":
        return True
    orig = list(getattr(sys, "orig_argv", []))
    return argv0 == "-m" and "-m" in orig and orig[orig.index("-m") + 1:orig.index("-m") + 2] == ["harness"]


def hold_signals_while_starting() -> None:
    """In the `harness` command, hold Ctrl-C and SIGTERM pending from the package's first import on: a signal
    in the middle of importing torch can crash the interpreter (a segfault, a half-imported module). The CLI
    releases them once its handlers are installed and the heavy libraries imported (`harness.cli.main`); a
    signal that came meanwhile then ends the command the documented way (one line, 130 or 143)."""
    if started_as_command() and threading.current_thread() is threading.main_thread():
        signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
        _HELD_AT_START[:] = [True]


def signals_held_at_start() -> bool:
    return bool(_HELD_AT_START)


class UserError(Exception):
    """Bad input from the user (unknown name, malformed file, bad option). Never shown as a traceback."""

    exit_code = 2


class PluginError(UserError):
    """A plugin failed while loading or registering; the message names the plugin."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (`timeout`, Slurm preemption, `docker stop`), raised in the main thread and handled as
    Ctrl-C: the run in progress is stored `interrupted`; the CLI exits with 143 (128 + SIGTERM)."""


_SIGNALLED: list[KeyboardInterrupt] = []  # the Ctrl-C or SIGTERM this process received, when it arrived


def note_interrupt(interrupt: KeyboardInterrupt) -> KeyboardInterrupt:
    """Remember that a signal arrived (called by the CLI's signal handlers, which then raise `interrupt`)."""
    _SIGNALLED[:] = [interrupt]
    return interrupt


def forget_interrupts() -> None:
    _SIGNALLED.clear()


def interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or SIGTERM behind `exc`: `exc` itself, or the signal that arrived before it was raised.

    A signal's exception can come out as another one: raised while a C extension initialises it reads
    `ImportError: initialization failed` (seen when SIGTERM landed in a lazy `import sklearn`), and a
    library's catch-all turns it into that library's error. Once a signal has arrived, whatever unwinds is
    its consequence, so the run is `interrupted` and the exit code the signal's, never `failed`."""
    if isinstance(exc, KeyboardInterrupt):
        return exc
    return _SIGNALLED[0] if _SIGNALLED else None


def raise_pending_interrupt(cause: BaseException | None = None) -> None:
    """Raise the interrupt a signal brought, if one came: for code that goes on after a catch-all (a cache
    that rebuilds, a tracker that warns, a training step after a library swallowed the signal)."""
    if _SIGNALLED:
        raise type(_SIGNALLED[0])() from cause


def unknown_name_error(kind: str, name: str, known: list[str]) -> UserError:
    """`unknown strategy 'jsa-rag'; known: ...; did you mean 'jsa_rag'?`"""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    listed = ", ".join(sorted(known)) or "(none registered)"
    return UserError(f"unknown {kind} '{name}'; known: {listed}{hint}")


class StrategyFailed(Exception):
    """A strategy raised during fit; the run is stored as failed and the message names the plugin."""

    exit_code = 1

