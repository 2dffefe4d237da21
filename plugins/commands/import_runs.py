"""`harness import FOLDER...`: ingest finished run folders into the store, in one transaction.

A FOLDER is a run folder, or a directory of run folders (e.g. another machine's `harness-runs/`). Named
run folders must be finished; inside a directory, unfinished ones (still working, or killed) are skipped
and counted. A corrupt folder (a file that does not match its sha256, a truncated file) is one line and
nothing is imported. Runs already stored are left as they are, so importing twice changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import click

from harness import UserError, hookimpl
from harness.cli.common import open_store
from harness.store import read_finished, run_folders_under


def collect_finished(paths: list[str]) -> tuple[list, int]:
    """(every finished run under `paths`, verified; the number of unfinished folders skipped)."""
    runs, skipped = [], 0
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise UserError(f"{given} does not exist; give run folders or directories of run folders")
        folders = run_folders_under(path)
        named = folders == [path]
        for folder in folders:
            if not named and not (folder / "status.json").exists():
                skipped += 1
                continue
            runs.append(read_finished(folder))
    return runs, skipped


@hookimpl
def register_commands(cli):
    @cli.command(name="import")
    @click.argument("folders", nargs=-1, required=True, type=click.Path())
    @click.pass_context
    def import_command(ctx: click.Context, folders: tuple[str, ...]) -> None:
        """Ingest finished run folders (or directories of them) into the store; twice changes nothing.

        \b
        Examples:
          harness import harness-runs/3f2a9c0d1e2b
          harness import /shared/alice/harness-runs     # merge another person's runs into this leaderboard
        """
        runs, skipped = collect_finished(list(folders))
        store = open_store(ctx)
        imported, present = store.import_runs(runs)
        by_status: dict[str, int] = {}
        for run in runs:
            if run.meta["run_id"] in imported:
                by_status[run.status] = by_status.get(run.status, 0) + 1
        detail = ", ".join(f"{n} {status}" for status, n in sorted(by_status.items()))
        click.echo(f"imported {len(imported)} run(s) into {store.path}" + (f" ({detail})" if detail else "")
                   + f"; {len(present)} already stored"
                   + (f"; {skipped} unfinished folder(s) skipped" if skipped else ""))
