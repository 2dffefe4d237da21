"""A store path in a folder the user cannot enter, or under a file, is one line and exit 2, like every other bad
--db (never a PermissionError traceback)."""

import os
import sys

import pytest

from tests.conftest import run_cli

NOBODY = 65534


def run_unprivileged(args: list[str]) -> tuple[int, str]:
    """`harness ARGS` in a forked child without root's rights (root passes every permission check): its exit
    code and what it printed."""
    assert run_cli(["--db", ":memory:", "runs"]) == 0  # imports done here: the child may not read root's files
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root, run the command, report
        code = 99
        try:
            os.close(read)
            sys.stdout = sys.stderr = os.fdopen(write, "w", buffering=1)
            if os.geteuid() == 0:
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            code = run_cli(args)
        except BaseException as exc:  # noqa: BLE001 - the parent asserts on what this prints
            print(f"child failed: {type(exc).__name__}: {exc}")
        finally:
            sys.stdout.flush()
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as fh:
        printed = fh.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), printed


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork to drop rights in a child")
def test_a_store_in_a_folder_you_cannot_enter_is_one_line(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    locked.chmod(0o000 if os.geteuid() != 0 else 0o700)  # root's 0700 folder: nobody cannot enter it
    try:
        for db in (locked / "harness.duckdb", locked / "sub" / "harness.duckdb"):
            code, printed = run_unprivileged(["--db", str(db), "runs"])
            assert code == 2, printed
            assert len(printed.strip().splitlines()) == 1 and printed.startswith("error: ") and "permission" in printed
    finally:
        locked.chmod(0o700)


def test_a_store_under_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    for db in (tmp_path / "afile" / "harness.duckdb", tmp_path / "afile" / "sub" / "harness.duckdb"):
        assert run_cli(["--db", str(db), "runs"]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "is a file, not a folder" in err
