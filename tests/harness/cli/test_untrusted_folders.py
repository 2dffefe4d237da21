"""A store and a run folder are input: `harness evaluate` and `harness export --adapter` read a run's artifacts
only from that run's own finalised folder; a link that leaves an artifact folder is refused when digesting,
importing and exporting; an artifact kind is a name, never a path."""

import json
import os
import shutil
from pathlib import Path

import pytest

from harness.errors import UserError
from harness.store.db import Store
from harness.store.folder import RunFolder
from tests.conftest import run_cli, tiny_run_args
from tests.harness.cli.crafted import RUN_ID, digest_following_links, edit_json, redigest


@pytest.fixture
def stored_run(tiny_data) -> dict:
    """One finished ft_gen run (it saves an adapter) in the default store: its row."""
    assert run_cli(tiny_run_args(tiny_data, "ft_gen")) == 0
    [run] = Store(os.environ["HARNESS_DB"]).query("SELECT id, folder FROM runs")
    return run


def set_in_store(sql: str, params: list) -> None:
    with Store(os.environ["HARNESS_DB"]).transaction() as con:
        con.execute(sql, params)


def one_line(err: str) -> str:
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_evaluate_and_export_read_only_the_runs_own_finalised_folder(stored_run, tmp_path, capsys):
    decoy = tmp_path / "decoy"  # the artifact's bytes (its sha256 matches), but not this run's folder
    shutil.copytree(Path(stored_run["folder"]) / "artifacts", decoy / "artifacts")
    other = tmp_path / "other-run"  # a finalised folder, but another run's
    shutil.copytree(stored_run["folder"], other)
    edit_json(other, "meta.json", lambda meta: meta.update(run_id=RUN_ID))
    for folder, needle in ((decoy, "not its finalised run folder"), ("/", "not its finalised run folder"),
                           (other, f"folder of run '{RUN_ID}'")):
        set_in_store("UPDATE runs SET folder = ?", [str(folder)])
        capsys.readouterr()
        assert run_cli(["evaluate", stored_run["id"], "--splits", "test"]) == 2
        assert needle in one_line(capsys.readouterr().err)
        assert run_cli(["export", stored_run["id"], "--adapter", str(tmp_path / "out")]) == 2
        assert needle in one_line(capsys.readouterr().err) and not (tmp_path / "out").exists()
    set_in_store("UPDATE runs SET folder = ?", [stored_run["folder"]])  # its own folder: works
    assert run_cli(["export", stored_run["id"], "--adapter", str(tmp_path / "out")]) == 0


def test_a_link_out_of_an_artifact_folder_is_refused_on_digest(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    folder = RunFolder.create(tmp_path / RUN_ID, {"strategy": "no_ft"}, {"run_id": RUN_ID, "run_key": "k"})
    with pytest.raises(UserError, match="link that leaves it"):
        folder.save_artifact("adapter", lambda d: (d / "notes.txt").symlink_to(secret))


def plant_link(run_folder: Path, target: Path) -> str:
    """A link in the run's adapter folder to `target`, with every digest made to match (as a forger would)."""
    adapter = run_folder / "artifacts" / "adapter"
    (adapter / "secret.txt").symlink_to(target)
    digest = digest_following_links(adapter)
    edit_json(run_folder, "artifacts.json", lambda a: a["adapter"].update(sha256=digest))
    return digest


def test_a_link_out_of_an_artifact_folder_is_refused_on_import_and_export(stored_run, tmp_path, capsys):
    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    digest = plant_link(Path(stored_run["folder"]), secret)
    set_in_store("UPDATE artifacts SET sha256 = ?", [digest])
    capsys.readouterr()
    assert run_cli(["--db", str(tmp_path / "other.duckdb"), "import", stored_run["folder"]]) == 2
    assert "link that leaves it" in one_line(capsys.readouterr().err)
    assert run_cli(["export", stored_run["id"], "--adapter", str(tmp_path / "out")]) == 2
    assert "link that leaves it" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "out" / "adapter" / "secret.txt").exists()


def test_an_artifact_kind_that_is_a_path_is_refused_on_export(stored_run, tmp_path, capsys):
    set_in_store("UPDATE artifacts SET kind = '../../escaped'", [])
    target = tmp_path / "hub" / "run"
    assert run_cli(["export", stored_run["id"], "--adapter", str(target)]) == 2
    assert "kinds are names" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "escaped").exists()


def test_a_folder_whose_status_lists_no_metrics_reads_none_of_them(tmp_path, capsys):
    """A file the digests do not cover is not read (it could say anything)."""
    from tests.harness.cli.crafted import valid_folder

    folder = valid_folder(tmp_path / "runs")
    status = json.loads((folder / "status.json").read_text())
    del status["files"]["metrics.json"]
    (folder / "status.json").write_text(json.dumps(status))
    redigest(folder)
    assert run_cli(["--db", str(tmp_path / "x.duckdb"), "import", str(folder)]) == 2
    assert "metrics.json is not covered by the digests" in one_line(capsys.readouterr().err)
