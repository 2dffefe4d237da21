"""`harness runs [--status S]`: every run with its status and error, as every reader shows it.

A run stored as `running` whose process is gone (same host and a dead pid, or a stale heartbeat) is
shown as `interrupted`, with why, so a killed run never reads `running` forever.
"""

from __future__ import annotations

import click
from rich.table import Table

from harness import hookimpl

STATUSES = ("finished", "failed", "interrupted", "running")


@hookimpl
def register_commands(cli):
    @cli.command(name="runs")
    @click.option("--status", type=click.Choice(STATUSES), default=None, help="only runs with this status")
    @click.pass_context
    def runs_command(ctx: click.Context, status: str | None) -> None:
        """Every run (any status) with its error, oldest first; lost runs read `interrupted`.

        \b
        Examples:
          harness runs
          harness runs --status failed
        """
        from harness.cli.common import console, open_store

        store = open_store(ctx)
        rows = store.runs(status)
        if not rows:
            console.print(f"no {status + ' ' if status else ''}runs in {store.path}")
            return
        table = Table("run", "status", "strategy", "dataset", "embedder", "generator", "seed", "started", "error",
                      title=f"{len(rows)} {status + ' ' if status else ''}run(s) · {store.path}")
        for r in rows:
            table.add_row(r["id"], r["status"], r["strategy"], r["dataset"], r["embedder"], r["generator"],
                          str(r["seed"]), str(r["started_at"])[:19], r["error"] or "")
        console.print(table)
