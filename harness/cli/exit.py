"""How the command ends: one line for a user's mistake (exit 2), for Ctrl-C (130) and SIGTERM (143), for a
failed strategy (1); anything else is a bug and keeps its traceback."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

import click

from harness.errors import (
    HELD_SIGNALS,
    StrategyFailed,
    Terminated,
    UserError,
    forget_interrupts,
    interrupt_behind,
    note_interrupt,
    signals_held_at_start,
)


def exit_code_for(exc: BaseException) -> int:
    """Print the one line a user sees for `exc` and return the exit code (re-raise what is a bug)."""
    if isinstance(exc, click.exceptions.Abort) and isinstance(exc.__cause__, KeyboardInterrupt):
        exc = exc.__cause__
    interrupt = interrupt_behind(exc)
    if interrupt is not None:
        cause = "terminated (SIGTERM)" if isinstance(interrupt, Terminated) else "interrupted (Ctrl-C)"
        print(f"{cause}: a run in progress is stored as interrupted; earlier runs are intact", file=sys.stderr)
        return 143 if isinstance(interrupt, Terminated) else 130
    if isinstance(exc, click.exceptions.Abort):
        print("aborted", file=sys.stderr)
        return 1
    if isinstance(exc, click.ClickException):
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if isinstance(exc, click.UsageError) and ctx else ""
        print(f"error: {exc.format_message()}{hint}", file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, UserError):
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, StrategyFailed):
        print(f"error: {exc} (the run is stored as failed; `harness show` has it)", file=sys.stderr)
        return exc.exit_code
    raise exc


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While the CLI runs, SIGTERM raises `Terminated` (a KeyboardInterrupt) in the main thread, once, and
    Ctrl-C its KeyboardInterrupt as Python does; both are noted (`errors.interrupt_behind`), so one that comes
    out as another exception is still told apart from a failure."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigterm(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the cleanup short
        raise note_interrupt(Terminated())

    def on_sigint(signum, frame):
        raise note_interrupt(KeyboardInterrupt())

    forget_interrupts()
    previous_term = signal.signal(signal.SIGTERM, on_sigterm)
    python_sigint = signal.getsignal(signal.SIGINT) is signal.default_int_handler  # not SIG_IGN or a host's own
    previous_int = signal.signal(signal.SIGINT, on_sigint) if python_sigint else None
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        if python_sigint:
            signal.signal(signal.SIGINT, previous_int)



@contextlib.contextmanager
def signals_held():
    """Ctrl-C and SIGTERM stay pending (not lost) until `release_signals()`: while the CLI installs its handlers
    and imports its heavy libraries, a signal must not land inside an import (torch can crash half-imported).
    Afterwards the thread's signal mask is as it was before the command (unheld, for a command process)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before - HELD_SIGNALS if signals_held_at_start() else before)


def release_signals() -> None:
    """Deliver Ctrl-C and SIGTERM again; one that came while they were held is handled here and now."""
    if threading.current_thread() is threading.main_thread():
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_SIGNALS)
