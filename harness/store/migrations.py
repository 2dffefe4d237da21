"""All DDL of the store, as named migrations recorded in `_migrations` when applied.

Add a change as a new function `mNNN_what_it_does(con)` at the end of MIGRATIONS; never edit an old one.
"""

from __future__ import annotations

import json
import os

import duckdb

from harness.config import data_digest, evaluation_set_id
from harness.errors import UserError


def m001_initial(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        CREATE TABLE runs (
            id VARCHAR PRIMARY KEY,
            run_key VARCHAR NOT NULL,
            grid_id VARCHAR,
            config JSON NOT NULL,
            strategy VARCHAR NOT NULL,
            dataset VARCHAR NOT NULL,
            embedder VARCHAR NOT NULL,
            generator VARCHAR NOT NULL,
            seed INTEGER NOT NULL,
            status VARCHAR NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'interrupted')),
            error VARCHAR,
            started_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP,
            git_sha VARCHAR,
            harness_version VARCHAR,
            packages JSON,
            device VARCHAR,
            device_count INTEGER
        )
        """
    )
    con.execute("CREATE INDEX runs_run_key ON runs (run_key)")
    con.execute(
        """
        CREATE TABLE metrics (
            run_id VARCHAR NOT NULL,
            split VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            value DOUBLE,
            PRIMARY KEY (run_id, split, name)
        )
        """
    )
    con.execute(
        """
        CREATE TABLE predictions (
            run_id VARCHAR NOT NULL,
            split VARCHAR NOT NULL,
            example_id VARCHAR NOT NULL,
            question VARCHAR NOT NULL,
            prediction VARCHAR NOT NULL,
            golds JSON NOT NULL,
            gold_passage_ids JSON NOT NULL,
            retrieved_ids JSON NOT NULL,
            em DOUBLE NOT NULL,
            f1 DOUBLE NOT NULL,
            hit DOUBLE,
            answer_hit DOUBLE NOT NULL,
            PRIMARY KEY (run_id, split, example_id)
        )
        """
    )
    con.execute(
        """
        CREATE TABLE train_log (
            run_id VARCHAR NOT NULL,
            step INTEGER NOT NULL,
            name VARCHAR NOT NULL,
            value DOUBLE,
            elapsed DOUBLE NOT NULL
        )
        """
    )
    con.execute(
        """
        CREATE TABLE artifacts (
            run_id VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            path VARCHAR NOT NULL,
            sha256 VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        )
        """
    )


def m002_answer_match_definition(con: duckdb.DuckDBPyConnection) -> None:
    """answer_recall@k became DPR's `has_answer` (NFD, simple tokens, token-sequence match). Runs stored
    before were scored by a normalized substring match on spaces: mark them `substring_v0` until
    `harness migrate --recompute-answer-recall` rescores them from their stored retrieved ids."""
    con.execute(f"ALTER TABLE runs ADD COLUMN answer_match VARCHAR DEFAULT '{ANSWER_MATCH}'")
    con.execute(f"UPDATE runs SET answer_match = '{OLD_ANSWER_MATCH}'")


ANSWER_MATCH = "dpr_has_answer"  # how answer_hit is computed now (harness.metrics.answer_hit)
OLD_ANSWER_MATCH = "substring_v0"  # normalized substring on spaces, before m002


def m003_run_folders(con: duckdb.DuckDBPyConnection) -> None:
    """Every run is a folder: where it is, and the host and pid of the process that works on it (a reader
    shows a `running` run whose process is gone as interrupted). Artifact paths become relative to the run
    folder: a stored absolute path `<root>/<run id>/<kind>` becomes folder `<root>/<run id>`, path `<kind>`."""
    con.execute("ALTER TABLE runs ADD COLUMN folder VARCHAR")
    con.execute("ALTER TABLE runs ADD COLUMN host VARCHAR")
    con.execute("ALTER TABLE runs ADD COLUMN pid INTEGER")
    rows = con.execute("SELECT DISTINCT run_id, path FROM artifacts").fetchall()
    for run_id, path in rows:
        if os.path.isabs(path):
            folder, kind = os.path.split(path.rstrip("/"))
            con.execute("UPDATE runs SET folder = ? WHERE id = ? AND folder IS NULL", [folder, run_id])
            con.execute("UPDATE artifacts SET path = ? WHERE run_id = ? AND path = ?", [kind, run_id, path])


def m004_evaluation_sets(con: duckdb.DuckDBPyConnection) -> None:
    """Which questions each run's split was scored on (`harness.config.evaluation_set_id`): the leaderboard
    ranks, selects and tests runs only within one evaluation set. Stored runs get theirs from their config,
    their stored predictions' ids and their data folder as it is now (`missing:<path>` where it is gone)."""
    con.execute(
        """
        CREATE TABLE evaluation_sets (
            run_id VARCHAR NOT NULL,
            split VARCHAR NOT NULL,
            id VARCHAR NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (run_id, split)
        )
        """
    )
    con.execute("ALTER TABLE runs ADD COLUMN data_digest VARCHAR")
    digests: dict[str | None, str | None] = {}  # a data folder many runs used is hashed once
    for run_id, config in con.execute("SELECT id, config FROM runs WHERE status = 'finished'").fetchall():
        config = json.loads(config)
        if config.get("data_dir") not in digests:
            digests[config.get("data_dir")] = data_digest(config.get("data_dir"))
        digest = digests[config.get("data_dir")]
        con.execute("UPDATE runs SET data_digest = ? WHERE id = ?", [digest, run_id])
        ids = con.execute("SELECT split, list(example_id) FROM predictions WHERE run_id = ? GROUP BY split",
                          [run_id]).fetchall()
        counts = con.execute("SELECT split, max(value) FILTER (WHERE name = 'n') FROM metrics WHERE run_id = ? "
                             "AND split IN ('train', 'dev', 'test') GROUP BY split", [run_id]).fetchall()
        if rows := evaluation_set_rows(run_id, config, digest, dict(ids), dict(counts)):
            con.executemany("INSERT INTO evaluation_sets VALUES (?, ?, ?, ?)", rows)


def evaluation_set_rows(run_id: str, config: dict, digest: str | None, ids: dict[str, list[str]],
                        counts: dict[str, float | None]) -> list[tuple[str, str, str, int]]:
    """(run id, split, evaluation set id, n) for every split the run has predictions or metrics for (`counts`:
    split -> its `n` metric, None where it has none)."""
    rows = []
    for split in sorted(set(ids) | set(counts)):
        split_ids = ids.get(split) or []
        n = len(split_ids) if split_ids else int(counts.get(split) or 0)
        rows.append((run_id, split, evaluation_set_id(config, split, split_ids, digest, n), n))
    return rows


MIGRATIONS = [m001_initial, m002_answer_match_definition, m003_run_folders, m004_evaluation_sets]


def applied_migrations(con: duckdb.DuckDBPyConnection) -> list[str]:
    con.execute("CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)")
    return [row[0] for row in con.execute("SELECT name FROM _migrations ORDER BY name").fetchall()]


def migrate(con: duckdb.DuckDBPyConnection, where: str = "the store") -> list[str]:
    """Apply every migration not yet recorded, each in its own transaction. Returns the names applied."""
    done = set(applied_migrations(con))
    check_not_newer(done, where)
    applied = []
    for migration in MIGRATIONS:
        if migration.__name__ in done:
            continue
        con.execute("BEGIN TRANSACTION")
        migration(con)
        con.execute("INSERT INTO _migrations VALUES (?, now())", [migration.__name__])
        con.execute("COMMIT")
        applied.append(migration.__name__)
    return applied


def schema_version(names: set[str] | list[str]) -> int:
    """A schema's version: the number of its newest migration (`m003_...` is version 3)."""
    numbers = [int(name[1:4]) for name in names if name[:1] == "m" and name[1:4].isdigit()]
    return max(numbers, default=0)


def check_not_newer(applied: set[str], where: str) -> None:
    """A store written by a newer harness is refused before anything is read or written."""
    unknown = sorted(applied - {m.__name__ for m in MIGRATIONS})
    if unknown:
        raise UserError(
            f"{where} has schema version {schema_version(applied)} ({unknown[-1]}), newer than this harness "
            f"reads (versions up to {schema_version([latest_migration()])}, {latest_migration()}): "
            "upgrade rag-harness, or use --db to pick another store"
        )


def latest_migration() -> str:
    return MIGRATIONS[-1].__name__
