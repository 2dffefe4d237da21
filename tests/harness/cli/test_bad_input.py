"""Every class of bad input, one table: input -> the one line the user sees and the exit code.

Each row runs the real CLI (`harness.cli.main`, or the installed `harness` script where a fresh process is
needed) on the tiny models and data. A user mistake must give exactly one line on stderr containing the
expected fragments, exit code 2, no traceback, and no run stored as finished. Rows with exit code 0 are
damaged caches: the run rebuilds them, says so, and finishes. Adding an option? Add its bad values here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.store.db import Store
from tests.conftest import run_cli, tiny_run_args

HARNESS = str(Path(sys.executable).parent / "harness")
CONFIG = {"strategy": "ft_gen", "dataset": "local", "embedder": "tiny-embedder", "generator": "tiny-llama", "seed": 0}


@dataclass
class Case:
    """`args(data, tmp)` -> argv; `setup(data, tmp)` prepares files and may return env vars to set."""

    name: str
    args: Callable[[Path, Path], list[str]]
    fragments: tuple[str, ...]
    code: int = 2
    setup: Callable[[Path, Path], dict | None] | None = None
    fresh_process: bool = False  # env read once per process (plugins, HF_HUB_OFFLINE): run the installed script
    env: dict = field(default_factory=dict)


def run(*extra: str, strategy: str = "no_ft") -> Callable[[Path, Path], list[str]]:
    return lambda data, tmp: tiny_run_args(data, strategy, *extra)


def args(*argv: str) -> Callable[[Path, Path], list[str]]:
    return lambda data, tmp: [a.format(data=data, tmp=tmp) for a in argv]


# -- setups -------------------------------------------------------------------------------------
def append_line(name: str, raw: bytes):
    def setup(data: Path, tmp: Path):
        with (data / name).open("ab") as fh:
            fh.write(raw + b"\n")
    return setup


def write_file(path: str, content: bytes = b"a file, not a folder"):
    def setup(data: Path, tmp: Path):
        target = Path(path.format(data=data, tmp=tmp))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return setup


def env_file(var: str):
    def setup(data: Path, tmp: Path):
        (tmp / "plain-file").write_text("x")
        return {var: str(tmp / "plain-file")}
    return setup


def truncated_store(data: Path, tmp: Path):
    """A real store with runs in it, cut at half its size (DuckDB then fails on read, not on open)."""
    path = Path(os.environ["HARNESS_DB"])
    store = Store(str(path))
    for i in range(40):
        store.start_run(f"run{i:03d}", "key", CONFIG, {})
        store.finish_run(f"run{i:03d}", [("test", "em", float(i))], [])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def newer_schema(data: Path, tmp: Path):
    import duckdb

    Store(os.environ["HARNESS_DB"]).check()
    con = duckdb.connect(os.environ["HARNESS_DB"])
    con.execute("INSERT INTO _migrations VALUES ('m999_from_the_future', now())")
    con.close()


def two_runs(data: Path, tmp: Path):
    store = Store(os.environ["HARNESS_DB"])
    store.start_run("abc123", "k1", CONFIG, {})
    store.start_run("abd456", "k2", CONFIG, {})


def finished_run_with_artifact(stored_path: str):
    """A finished ft_gen run whose adapter row names `stored_path` (made outside its folder when needed)."""
    def setup(data: Path, tmp: Path):
        from harness.store.folder import folder_sha256

        outside = tmp / "elsewhere" / "adapter"
        outside.mkdir(parents=True)
        (outside / "adapter_config.json").write_text("{}")
        run_dir = Path(os.environ["HARNESS_ARTIFACTS"]) / "run000"
        run_dir.mkdir(parents=True)
        if stored_path == "adapter-link":
            (run_dir / "adapter-link").symlink_to(outside)
        store = Store(os.environ["HARNESS_DB"])
        store.start_run("run000", "key", {**CONFIG, "data_dir": str(data)}, {})
        store.finish_run("run000", [("test", "em", 1.0)], [])
        store.add_artifact("run000", "adapter", stored_path.format(outside=outside), folder_sha256(outside))
    return setup


def pickled_artifact(data: Path, tmp: Path):
    from harness.store.folder import folder_sha256

    run_dir = Path(os.environ["HARNESS_ARTIFACTS"]) / "run000" / "adapter"
    run_dir.mkdir(parents=True)
    (run_dir / "adapter_model.bin").write_bytes(b"\x80\x04 a pickle")
    store = Store(os.environ["HARNESS_DB"])
    store.start_run("run000", "key", {**CONFIG, "data_dir": str(data)}, {})
    store.finish_run("run000", [("test", "em", 1.0)], [])
    store.add_artifact("run000", "adapter", "adapter", folder_sha256(run_dir))


def truncate_cached(kind: str):
    """A finished run first (so the cache entry exists), then the entry's main file cut in half."""
    def setup(data: Path, tmp: Path):
        assert run_cli(tiny_run_args(data)) == 0
        cache = Path(os.environ["HARNESS_CACHE"])
        pattern = "indexes/*/index.faiss" if kind == "index" else "models/tiny-llama-*/model.safetensors"
        for path in cache.glob(pattern):
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return setup


CASES = [
    # -- run options: numbers in range, checked before anything is stored -------------------------
    Case("seed negative", run("--seed", "-1"), ("--seed must be an integer from 0 to 4294967295", "-1")),
    Case("seed 2**40", run("--seed", str(2**40)), ("--seed must be an integer from 0 to 4294967295",)),
    Case("gen-lr inf", run("--gen-lr", "inf", strategy="ft_gen"), ("--gen-lr must be a finite number > 0", "inf")),
    Case("gen-lr negative", run("--gen-lr", "-1"), ("--gen-lr must be a finite number > 0",)),
    Case("embed-lr not a number", run("--embed-lr", "fast"), ("--embed-lr must be a finite number > 0", "'fast'")),
    Case("embed-lr nan", run("--embed-lr", "nan"), ("--embed-lr must be a finite number > 0", "nan")),
    Case("tau nan", run("--tau", "nan"), ("--tau must be a finite number > 0", "nan")),
    Case("tau inf", run("--tau", "inf"), ("--tau must be a finite number > 0", "inf")),
    Case("tau zero", run("--tau", "0"), ("--tau must be a finite number > 0",)),
    Case("eval-splits empty", run("--eval-splits", ""), ("--eval-splits must name one or more of train, dev, test",)),
    Case("eval-splits unknown", run("--eval-splits", "dev,valid"), ("--eval-splits must name", "valid")),
    Case("k zero", run("-k", "0"), ("-k must be an integer >= 1", "0")),
    Case("epochs zero", run("--epochs", "0"), ("--epochs must be an integer >= 1",)),
    Case("batch-size zero", run("--batch-size", "0"), ("--batch-size must be an integer >= 1",)),
    Case("limit zero", run("--limit", "0"), ("--limit must be an integer >= 1",)),
    Case("corpus-limit negative", run("--corpus-limit", "-5"), ("--corpus-limit must be an integer >= 1",)),
    Case("eval-batch-size zero", run("--eval-batch-size", "0"), ("--eval-batch-size must be an integer >= 1",)),
    Case("max-train-flops inf", run("--max-train-flops", "inf"), ("--max-train-flops must be a finite number > 0",)),
    Case("peak-tflops nan", run("--peak-tflops", "nan"), ("--peak-tflops must be a finite number > 0",)),
    # -- click's own checks, in the same one-line form with where to look --------------------------
    Case("limit not an integer", run("--limit", "abc"),
         ("error: Invalid value for '--limit': 'abc' is not a valid integer", "(see 'harness run --help')")),
    Case("misspelt option", run("--limt", "3"), ("error: No such option '--limt'", "--limit", "harness run --help")),
    Case("index choice", run("--index", "bogus"), ("Invalid value for '--index'", "'flat', 'hnsw', 'ivfpq'")),
    Case("quantize choice", run("--quantize", "8bit"), ("Invalid value for '--quantize'", "4bit")),
    Case("index-device choice", run("--index-device", "tpu"), ("Invalid value for '--index-device'", "cuda")),
    Case("unknown command", args("rnu"), ("No such command 'rnu'", "run")),
    Case("list choice", args("list", "strategy"), ("Invalid value for '{strategies|models|datasets}'", "strategies")),
    # -- strategy options (--set) ---------------------------------------------------------------------
    Case("set float nan", run("--set", "kl_weight=nan", strategy="vrag"),
         ("option 'kl_weight' (--set) must be a finite float", "'nan'")),
    Case("set int not a number", run("--set", "proposals=many", strategy="jsa_rag"), ("option 'proposals'", "int")),
    Case("set unknown key", run("--set", "bogus=1", strategy="vrag"), ("has no option 'bogus'", "kl_weight")),
    Case("set without =", run("--set", "kl_weight"), ("--set expects KEY=VALUE",)),
    Case("set on a strategy without options", run("--set", "x=1"), ("takes no options",)),
    # -- names ----------------------------------------------------------------------------------------
    Case("unknown strategy", run(strategy="no-ft"), ("unknown strategy 'no-ft'", "known:", "did you mean 'no_ft'")),
    Case("unknown embedder", run("--embedder", "minilmm"), ("unknown embedder 'minilmm'", "did you mean 'minilm'")),
    Case("unknown generator", run("--generator", "tiny-lama"), ("unknown generator 'tiny-lama'", "tiny-llama")),
    Case("unknown dataset", args("run", "--dataset", "squadd"), ("unknown dataset 'squadd'", "squad")),
    # -- data files ----------------------------------------------------------------------------------
    Case("corpus not UTF-8", run(), ("corpus.jsonl:11: not valid UTF-8", "byte 0xff"),
         setup=append_line("corpus.jsonl", b'{"id": "p10", "title": "x", "text": "caf\xff"}')),
    Case("train not UTF-8", run(), ("train.jsonl:7: not valid UTF-8",),
         setup=append_line("train.jsonl", b'{"id": "t", "question": "\xc3(?", "answers": ["a"]}')),
    Case("example id an object", run(), ("train.jsonl:7: field 'id' must be a non-empty string or an integer", "dict"),
         setup=append_line("train.jsonl", b'{"id": {"a": 1}, "question": "q?", "answers": ["a"]}')),
    Case("row not JSON", run(), ("train.jsonl:7", "not valid JSON"), setup=append_line("train.jsonl", b"{not json")),
    Case("row without question", run(), ("train.jsonl:7", "'question'"),
         setup=append_line("train.jsonl", b'{"id": "x", "answers": ["a"]}')),
    Case("empty answers", run(), ("train.jsonl:7", "'answers'"),
         setup=append_line("train.jsonl", b'{"id": "x", "question": "q?", "answers": []}')),
    Case("context label not in corpus", run(), ("context label", "x\u2192nope"),
         setup=append_line("train.jsonl", b'{"id": "x", "question": "q?", "answers": ["a"], "gold_passage_ids": ["nope"]}')),
    Case("split file missing", run(), ("missing file", "dev.jsonl"), setup=lambda data, tmp: (data / "dev.jsonl").unlink()),
    Case("data-dir is a file", args("run", "--dataset", "local", "--data-dir", "{data}/corpus.jsonl"),
         ("--data-dir", "is not a directory")),
    Case("local without data-dir", args("run", "--dataset", "local"), ("dataset 'local' needs --data-dir DIR",)),
    Case("hub dataset offline", args("run", "--dataset", "popqa", "--embedder", "tiny-embedder"),
         ("could not load", "pass --data-dir DIR with a local copy"), env={"HF_HUB_OFFLINE": "1"}, fresh_process=True),
    # -- the store ----------------------------------------------------------------------------------
    Case("truncated store", run(), ("database", "harness.duckdb", "truncated"), setup=truncated_store),
    Case("store not a database", run(), ("cannot open database",),
         setup=write_file("{tmp}/harness.duckdb", b"this is not a duckdb file" * 100)),
    Case("db parent is a file", args("--db", "{data}/corpus.jsonl/runs.duckdb", "leaderboard"),
         ("--db", "corpus.jsonl is a file, not a folder")),
    Case("db is a folder", args("--db", "{data}", "leaderboard"), ("--db", "is a folder; give a file path")),
    Case("store from a newer schema", run(),
         ("has schema version 999 (m999_from_the_future), newer than this harness reads", "upgrade rag-harness"),
         setup=newer_schema),
    # -- show / evaluate ------------------------------------------------------------------------------
    Case("show negative predictions", args("show", "abc123", "--predictions", "-3"),
         ("Invalid value for '--predictions'", "-3", "x>=0")),
    Case("show % is literal", args("show", "%"), ("no run with id '%'",), setup=two_runs),
    Case("show _ is literal", args("show", "ab_"), ("no run with id 'ab_'",), setup=two_runs),
    Case("show empty id", args("show", ""), ("give a run id",), setup=two_runs),
    Case("show ambiguous prefix", args("show", "ab"), ("run id prefix 'ab' matches 2 runs",), setup=two_runs),
    Case("evaluate bad split", args("evaluate", "abc123", "--splits", "validation"), ("--splits must be among",)),
    Case("evaluate absolute artifact path", args("evaluate", "run000"), ("stored path", "outside the run's artifact folder"),
         setup=finished_run_with_artifact("{outside}")),
    Case("evaluate .. artifact path", args("evaluate", "run000"), ("'../../elsewhere/adapter'", "outside"),
         setup=finished_run_with_artifact("../../elsewhere/adapter")),
    Case("evaluate symlinked artifact", args("evaluate", "run000"), ("'adapter-link'", "outside"),
         setup=finished_run_with_artifact("adapter-link")),
    Case("evaluate pickled artifact", args("evaluate", "run000"), ("holds pickle files (adapter_model.bin)",),
         setup=pickled_artifact),
    # -- environment variables -------------------------------------------------------------------------
    Case("HARNESS_THREADS abc", run(), ("HARNESS_THREADS must be an integer >= 1", "'abc'"), env={"HARNESS_THREADS": "abc"}),
    Case("HARNESS_THREADS 0", run(), ("HARNESS_THREADS must be an integer >= 1", "'0'"), env={"HARNESS_THREADS": "0"}),
    Case("HARNESS_CACHE a file", run(), ("HARNESS_CACHE", "is not a folder"), setup=env_file("HARNESS_CACHE")),
    Case("HARNESS_PROGRESS_SECONDS soon", run(), ("HARNESS_PROGRESS_SECONDS must be a number of seconds >= 0", "'soon'"),
         env={"HARNESS_PROGRESS_SECONDS": "soon"}),
    Case("HARNESS_SHIPPED_VECTORS yes", run(), ("HARNESS_SHIPPED_VECTORS must be 0 or 1", "'yes'"),
         env={"HARNESS_SHIPPED_VECTORS": "yes"}),
    Case("HARNESS_FSDP yes", run(), ("HARNESS_FSDP must be 0 or 1", "'yes'"), env={"HARNESS_FSDP": "yes"}),
    Case("HARNESS_TRACKERS unknown", run(), ("HARNESS_TRACKERS: unknown tracker 'tensorboard'", "mlflow"),
         env={"HARNESS_TRACKERS": "tensorboard"}),
    Case("HARNESS_RUNS a file", run(strategy="ft_gen"), ("HARNESS_RUNS", "is not a folder"),
         setup=env_file("HARNESS_RUNS")),
    Case("HARNESS_DB parent a file", args("leaderboard"), ("--db", "is a file, not a folder"),
         env={"HARNESS_DB": "{data}/corpus.jsonl/h.duckdb"}),
    Case("HARNESS_LOAD_PLUGINS not installed", args("plugins"),
         ("HARNESS_LOAD_PLUGINS names 'no_such_plugin', not installed; installed plugins:",),
         env={"HARNESS_LOAD_PLUGINS": "no_such_plugin"}, fresh_process=True),
    Case("plugins-dir not a folder", args("--plugins-dir", "{data}/corpus.jsonl", "plugins"), ("is not a directory",)),
    # -- grid -------------------------------------------------------------------------------------------
    Case("grid rate inf", args("grid", "--plugin", "ft_gen", "--gen-lr", "1e-4,inf"), ("learning rates must be finite",)),
    # -- damaged caches: rebuilt, said, and the run finishes --------------------------------------------
    Case("truncated cached index.faiss", run("--force"), ("cache: cached index at", "is damaged", "rebuilding it"),
         code=0, setup=truncate_cached("index")),
    Case("truncated converted model.safetensors", run("--force"),
         ("cache: tiny model at", "model.safetensors is", "truncated", "rebuilding it"), code=0,
         setup=truncate_cached("model")),
]


def test_the_table_covers_at_least_forty_classes():
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tiny_data, tmp_path, monkeypatch, capsys, ):
    if case.code == 0:  # these rebuild cache entries: give them their own cache, not the session's
        monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    env = {k: v.format(data=tiny_data, tmp=tmp_path) for k, v in case.env.items()}
    env.update((case.setup(tiny_data, tmp_path) if case.setup else None) or {})
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    capsys.readouterr()
    before = stored_runs()
    argv = case.args(tiny_data, tmp_path)
    if case.fresh_process:
        done = subprocess.run([HARNESS, *argv], capture_output=True, text=True, timeout=300, env=dict(os.environ))
        code, err = done.returncode, done.stderr
    else:
        code, err = run_cli(argv), capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("[progress]")]
    assert code == case.code, err
    if case.code == 2:
        assert len(lines) == 1, err
        assert lines[0].startswith("error: "), lines[0]
    text = "\n".join(lines)
    for fragment in case.fragments:
        assert fragment in text, text
    if case.code == 2:
        assert stored_runs() == before  # a mistake stores nothing: no run started, none finished


def stored_runs() -> list[tuple[str, str]]:
    """(id, status) of every run in the test's store (none if it does not exist or cannot be read)."""
    from harness.errors import UserError

    path = os.environ["HARNESS_DB"]
    if not os.path.isfile(path):
        return []
    try:
        return [(r["id"], r["status"]) for r in Store(path).query("SELECT id, status FROM runs ORDER BY id")]
    except UserError:
        return []
