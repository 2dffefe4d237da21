"""A blank database migrates to the current schema; migrating twice is a no-op."""

import duckdb

from harness.store.migrations import MIGRATIONS, applied_migrations, latest_migration, migrate


def columns(con, table):
    return [row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()]


def test_blank_database_gets_every_table(tmp_path):
    con = duckdb.connect(str(tmp_path / "blank.duckdb"))
    applied = migrate(con)
    assert applied == [m.__name__ for m in MIGRATIONS]
    assert applied_migrations(con)[-1] == latest_migration()
    assert {"id", "run_key", "grid_id", "config", "status", "error", "git_sha", "packages", "device"} <= set(columns(con, "runs"))
    assert columns(con, "metrics") == ["run_id", "split", "name", "value"]
    assert {"retrieved_ids", "gold_passage_ids", "em", "f1", "hit", "answer_hit"} <= set(columns(con, "predictions"))
    assert columns(con, "train_log") == ["run_id", "step", "name", "value", "elapsed"]
    assert columns(con, "artifacts") == ["run_id", "kind", "path", "sha256", "created_at"]
    assert migrate(con) == []
    con.close()


def test_run_folders_migration_makes_old_artifact_paths_relative(tmp_path):
    from harness.store.migrations import m001_initial

    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    con.execute("CREATE TABLE _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
    m001_initial(con)
    con.execute("INSERT INTO _migrations VALUES ('m001_initial', now())")
    con.execute("""INSERT INTO runs (id, run_key, config, strategy, dataset, embedder, generator, seed, status, started_at)
                   VALUES ('r1', 'k', '{}', 's', 'd', 'e', 'g', 0, 'finished', now())""")
    con.execute("INSERT INTO artifacts VALUES ('r1', 'adapter', '/data/harness-artifacts/r1/adapter', 'ab', now())")
    assert "m003_run_folders" in migrate(con)
    assert con.execute("SELECT folder, host, pid FROM runs").fetchall() == [("/data/harness-artifacts/r1", None, None)]
    assert con.execute("SELECT path FROM artifacts").fetchall() == [("adapter",)]
    con.close()
