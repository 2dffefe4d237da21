"""The one exception type for a user's mistake (the CLI prints its message on one line, exit code 2), and
how a Ctrl-C or SIGTERM is told from the exception it comes out as."""

import difflib


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

