"""`harness dashboard`: a built-in plugin command that execs `streamlit run` on the store."""

import os

import pytest

from harness.builtins.commands import dashboard as command
from tests.conftest import run_cli


class Exec(Exception):
    pass


@pytest.fixture
def exec_calls(monkeypatch):
    """Record the exec instead of replacing the test process with streamlit."""
    calls = []

    def fake_exec(file, args, env):
        calls.append((args, env))
        raise Exec()

    monkeypatch.setattr(command.os, "execvpe", fake_exec)
    return calls


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_defaults_bind_localhost_headless_without_usage_stats(exec_calls, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HARNESS_DB")
    with pytest.raises(Exec):
        run_cli(["dashboard"])
    args, env = exec_calls[0]
    assert args[1:5] == ["-m", "streamlit", "run", str(command.app_path())]
    assert command.app_path().is_file()
    assert flag(args, "--server.address") == "127.0.0.1" and flag(args, "--server.port") == "8501"
    assert flag(args, "--server.headless") == "true" and flag(args, "--browser.gatherUsageStats") == "false"
    db = str(tmp_path / "harness.duckdb")
    assert args[-3:] == ["--", "--db", db] and env["HARNESS_DB"] == db
    assert "http://127.0.0.1:8501" in capsys.readouterr().out


def test_group_db_option_and_command_options(exec_calls, tmp_path):
    with pytest.raises(Exec):
        run_cli(["--db", str(tmp_path / "group.duckdb"), "dashboard", "--port", "8600", "--host", "0.0.0.0"])
    args, env = exec_calls[0]
    assert env["HARNESS_DB"] == str(tmp_path / "group.duckdb")
    assert flag(args, "--server.port") == "8600" and flag(args, "--server.address") == "0.0.0.0"
    with pytest.raises(Exec):
        run_cli(["--db", str(tmp_path / "group.duckdb"), "dashboard", "--db", str(tmp_path / "mine.duckdb")])
    assert exec_calls[1][1]["HARNESS_DB"] == str(tmp_path / "mine.duckdb")


def test_bad_port_is_one_line(exec_calls, capsys):
    assert run_cli(["dashboard", "--port", "99999"]) == 2
    assert "99999" in capsys.readouterr().err and not exec_calls


def test_listed_among_plugins(capsys):
    assert run_cli(["plugins"]) == 0
    assert "harness.builtins.commands.dashboard" in capsys.readouterr().out
    assert os.path.basename(command.app_path()) == "streamlit_app.py"
