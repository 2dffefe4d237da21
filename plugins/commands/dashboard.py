"""`harness dashboard`: start the Streamlit leaderboard on the store (read-only), on 127.0.0.1 by default."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from harness import UserError, hookimpl


def app_path() -> Path:
    """dashboard/streamlit_app.py wherever the package is (also as a namespace in older editable installs)."""
    from harness import dashboard

    return next(Path(p) / "streamlit_app.py" for p in dashboard.__path__ if (Path(p) / "streamlit_app.py").is_file())


def streamlit_command(db: str, host: str, port: int) -> list[str]:
    """`python -m streamlit run` with everything set on the command line: headless, no usage statistics,
    no file watcher; the store is passed after `--` (and in $HARNESS_DB)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(app_path()),
        "--server.address", host, "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", "--server.runOnSave", "false",
        "--", "--db", db,
    ]


def _check_streamlit() -> None:
    try:
        import altair  # noqa: F401
        import streamlit  # noqa: F401
    except ImportError as exc:
        raise UserError(f"the dashboard needs streamlit and altair ({exc.name} is missing): "
                        "pip install 'rag-harness[dashboard]'") from None


@hookimpl
def register_commands(cli):
    @cli.command()
    @click.option("--db", default=None, help="DuckDB store to show (default: the group's --db, $HARNESS_DB, ./harness.duckdb)")
    @click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True, help="port to serve on")
    @click.option("--host", default="127.0.0.1", show_default=True,
                  help="address to bind; 0.0.0.0 exposes the dashboard to your network")
    @click.pass_context
    def dashboard(ctx: click.Context, db: str | None, port: int, host: str) -> None:
        """Start the Streamlit leaderboard on the store (it only reads; runs may write meanwhile).

        \b
        Examples:
          harness dashboard
          harness --db runs.duckdb dashboard --port 8600
        """
        _check_streamlit()
        path = os.path.abspath(db or ctx.obj["db"])
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"dashboard for {path} at http://{shown}:{port}  (Ctrl-C to stop)", err=False)
        sys.stdout.flush()
        env = dict(os.environ, HARNESS_DB=path)
        command = streamlit_command(path, host, port)
        os.execvpe(command[0], command, env)
