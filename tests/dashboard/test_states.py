"""What the pages show when there is nothing to show: no store, no finished runs, another schema, a
writer holding the lock. Never a traceback."""

import duckdb
import pytest

from harness.store.db import Store
from tests.conftest import run_cli
from tests.dashboard.conftest import app_test, page_text, writer_holding_lock

STORE_PAGES = ["leaderboard", "quality_vs_cost", "run", "compare", "learning_rates"]


def page(name: str):
    return app_test(None if name == "leaderboard" else name)


@pytest.mark.parametrize("name", STORE_PAGES)
def test_missing_store_says_run_harness_run_first(name, tmp_path, monkeypatch):
    path = tmp_path / "nothing-here.duckdb"
    monkeypatch.setenv("HARNESS_DB", str(path))
    at = page(name)
    assert not at.exception
    assert "Run `harness run` first" in page_text(at)
    assert not path.exists()  # the dashboard never creates a store


def test_published_page_works_without_a_store(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DB", str(tmp_path / "nothing-here.duckdb"))
    at = page("published")
    assert not at.exception and len(at.dataframe) == 2
    assert "No finished runs on a dataset named `hotpotqa`" in page_text(at)


def test_store_without_finished_runs(tmp_path, monkeypatch):
    path = tmp_path / "fresh.duckdb"
    store = Store(str(path))
    store.start_run("r1", "k1", {"strategy": "no_ft", "dataset": "d", "embedder": "e", "generator": "g",
                                 "seed": 0}, {})
    store.end_run("r1", "failed", "boom")
    monkeypatch.setenv("HARNESS_DB", str(path))
    at = page("leaderboard")
    assert not at.exception
    assert "no finished runs yet (1 failed)" in page_text(at) and "Run `harness run` first" in page_text(at)


def test_older_schema_asks_for_harness_migrate_and_migrate_fixes_it(tmp_path, monkeypatch):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
    con.close()
    monkeypatch.setenv("HARNESS_DB", str(path))
    at = page("leaderboard")
    assert not at.exception
    assert f"Run `harness --db {path} migrate`" in page_text(at)
    assert run_cli(["--db", str(path), "migrate"]) == 0
    assert "no finished runs yet" in page_text(page("leaderboard"))


def test_newer_schema_asks_for_an_upgrade(filled_db):
    con = duckdb.connect(str(filled_db))
    con.execute("INSERT INTO _migrations VALUES ('m999_from_the_future', now())")
    con.close()
    at = page("leaderboard")
    assert not at.exception
    assert "written by a newer rag-harness" in page_text(at) and "m999_from_the_future" in page_text(at)


def test_not_a_harness_store_or_not_duckdb(tmp_path, monkeypatch):
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE something (x INTEGER)")
    con.close()
    monkeypatch.setenv("HARNESS_DB", str(other))
    assert "not a rag-harness store" in page_text(page("leaderboard"))
    junk = tmp_path / "junk.duckdb"
    junk.write_text("this is not a database\n" * 100)
    monkeypatch.setenv("HARNESS_DB", str(junk))
    at = page("leaderboard")
    assert not at.exception and "Cannot read the store" in page_text(at)


def test_store_locked_by_a_writer_shows_busy_then_recovers(filled_db):
    with writer_holding_lock(filled_db):
        at = page("leaderboard")
        assert not at.exception
        assert "Store busy, retrying" in page_text(at)
        assert not at.dataframe
    at.run()
    assert not at.exception and len(at.dataframe[0].value) == 6


@pytest.mark.parametrize("name", ["run", "compare", "published"])
def test_other_pages_while_locked(name, filled_db):
    with writer_holding_lock(filled_db):
        at = page(name)
        assert not at.exception
        text = page_text(at)
    assert "Store busy, retrying" in text or (name == "published" and "only the published rows" in text)
