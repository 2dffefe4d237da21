"""The wheel as a user installs it: one top-level import name (`harness`), the built-in plugins and the
dashboard inside it, working beside a user's own `plugins` and `dashboard` packages in their own git repository;
torch as a range; the license inside."""

import ast
import os
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import harness

ROOT = Path(harness.__file__).resolve().parent.parent
NOT_SOURCES = (".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", ".pytest_cache", "harness-artifacts",
               "*.duckdb", "*.duckdb.wal")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`pip wheel` of a copy of this checkout (the build writes build/ and egg-info beside the sources)."""
    source, out = tmp_path_factory.mktemp("src") / "rag-harness", tmp_path_factory.mktemp("dist")
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(source)], check=True, capture_output=True, timeout=600)
    return next(out.glob("rag_harness-*.whl"))


def test_one_top_level_name_with_builtins_dashboard_and_license_inside(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top == {"harness"}, top
    for path in ("harness/builtins/strategies/jsa_rag.py", "harness/builtins/commands/install_assets.py",
                 "harness/dashboard/streamlit_app.py", "harness/dashboard/app_pages/leaderboard.py",
                 "harness/dashboard/.streamlit/config.toml", "harness/py.typed"):
        assert path in names, path
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_the_default_corpus_vectors_ship_in_the_wheel(wheel):
    """The float16 vectors a first run takes instead of encoding the default corpus (make shipped-vectors)."""
    shipped = sorted(p.name for p in (ROOT / "plugins" / "datasets" / "shipped_vectors").glob("*.f16.npy"))
    assert shipped, "no shipped vectors in the checkout: run `make shipped-vectors`"
    names = zipfile.ZipFile(wheel).namelist()
    assert [f"harness/builtins/datasets/shipped_vectors/{name}" for name in shipped] == \
        sorted(n for n in names if n.endswith(".f16.npy"))


def test_torch_is_a_range(wheel):
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(zf.read(name).decode())
    torch = [r for r in metadata.get_all("Requires-Dist") if r.startswith("torch")]
    assert torch == ["torch>=2.13"]
    assert metadata["License-Expression"] == "Apache-2.0"


@pytest.fixture(scope="module")
def site(wheel, tmp_path_factory) -> Path:
    """The wheel pip-installed (no deps: this environment has them) into a throwaway target folder."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return target


@pytest.mark.packaged
def test_installed_wheel_runs_the_default_from_any_folder(site, tmp_path):
    """With the assets installed (`harness install-assets`), `harness run` needs nothing from a checkout."""
    folder = tmp_path / "anywhere"
    folder.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("HARNESS_DB")
    run = subprocess.run([sys.executable, "-m", "harness", "run", "--plugin", "no_ft", "--limit", "1", "--corpus-limit",
                          "100", "--eval-splits", "test", "--max-new-tokens", "8"], cwd=folder, env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr
    assert (folder / "harness.duckdb").is_file() and "finished" in run.stdout


def test_installed_beside_a_users_plugins_and_dashboard_packages(site, tmp_path):
    """A user's project with its own `plugins` and `dashboard` packages, first on the path, in a git
    repository: the harness still finds every built-in, and records only its own version."""
    project = tmp_path / "my-project"
    for decoy in ("plugins", "dashboard"):
        (project / decoy).mkdir(parents=True)
        (project / decoy / "__init__.py").write_text("USER_PACKAGE = True\n")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "mine"]):
        subprocess.run(["git", "-c", "user.name=u", "-c", "user.email=u@example.org", *args], cwd=project,
                       check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project), str(site)])}
    check = ("import sys, harness, harness.builtins, harness.dashboard.data\n"
             "from harness import plugins\n"
             "from harness.config import code_version\n"
             "plugins.load_plugins()\n"
             "print(harness.__file__)\n"
             "print(sorted(plugins.strategies().items))\n"
             "print(code_version())\n"
             "print('imported' if {'plugins', 'dashboard'} & set(sys.modules) else 'untouched')\n")
    out = subprocess.run([sys.executable, "-c", check], cwd=project, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    location, strategies, version, user_packages = out.stdout.splitlines()
    assert Path(location).is_relative_to(site)
    assert {"no_ft", "ft_embed", "ft_gen", "indp", "rag_sequence", "rag_token", "two_phase", "rag_end2end", "jsa_rag",
            "vrag"} <= set(ast.literal_eval(strategies))
    assert version == harness.__version__  # not the user's commit
    assert user_packages == "untouched"
    listing = subprocess.run([sys.executable, "-m", "harness", "plugins"], cwd=project, env=env, capture_output=True,
                             text=True, timeout=300)
    assert listing.returncode == 0, listing.stderr
    for plugin in ("harness.builtins.commands.dashboard", "harness.builtins.strategies.jsa_rag"):
        assert plugin in listing.stdout


def test_no_code_imports_the_repository_folders_by_their_folder_names():
    """`plugins.x` and `dashboard.x` import in a checkout, never from the wheel: harness.builtins, harness.dashboard."""
    pattern = re.compile(r"^\s*(from|import)\s+(plugins|dashboard)(\.|\s|$)", re.MULTILINE)
    files = [*(ROOT / "harness").glob("*.py"), *(p for folder in ("plugins", "dashboard", "tests", "bench", "examples")
                                                 for p in (ROOT / folder).rglob("*.py"))]
    offenders = [str(path.relative_to(ROOT)) for path in files if pattern.search(path.read_text(encoding="utf-8"))]
    assert len(files) > 100 and offenders == []
