"""Where caches live and which code version a run records."""

import shutil
import subprocess
import sys
from pathlib import Path

import harness
from harness.config import cache_dir, code_version

REPO = Path(harness.__file__).resolve().parent.parent


def test_cache_follows_xdg_and_harness_cache_wins(monkeypatch, tmp_path):
    monkeypatch.delenv("HARNESS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "rag-harness" and cache_dir().is_dir()
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine" and cache_dir().is_dir()


def test_source_checkout_version_carries_the_commit():
    if not (REPO / ".git").exists():  # a copy without git history: only the package version is known
        assert code_version() == harness.__version__
        return
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert code_version().startswith(f"{harness.__version__}+{head.strip()[:12]}")


def git(cwd, *args):
    subprocess.run(["git", "-c", "user.name=u", "-c", "user.email=u@example.org", *args], cwd=cwd, check=True,
                   capture_output=True)


def test_installed_package_inside_a_users_repository_records_only_its_version(tmp_path):
    """The user's own commits must not change the harness's code version (and with it every run key)."""
    user_repo = tmp_path / "my-project"
    site = user_repo / ".venv" / "site-packages"
    shutil.copytree(REPO / "harness", site / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    (user_repo / "pyproject.toml").write_text('[project]\nname = "my-project"\n')
    git(user_repo, "init", "-q")
    git(user_repo, "add", "-A")
    git(user_repo, "commit", "-q", "-m", "mine")
    out = subprocess.run([sys.executable, "-c", "from harness.config import code_version; print(code_version())"],
                         cwd=user_repo, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == harness.__version__
