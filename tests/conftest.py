"""Shared fixtures: an isolated cache and store, a tiny local dataset, the tiny models.

Tiny random models are built once per session into a session cache (seconds); the real packaged
models are used only by tests marked `packaged`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from harness import errors

TINY_CORPUS = [
    ("Paris", "Paris is the capital and largest city of France."),
    ("Berlin", "Berlin is the capital of Germany and its largest city."),
    ("Rome", "Rome is the capital city of Italy."),
    ("Madrid", "Madrid is the capital of Spain."),
    ("Lisbon", "Lisbon is the capital of Portugal."),
    ("Vienna", "Vienna is the capital of Austria."),
    ("Oslo", "Oslo is the capital of Norway."),
    ("Nile", "The Nile is a river in Africa, flowing into the Mediterranean Sea."),
    ("Everest", "Mount Everest is the highest mountain above sea level."),
    ("Tokyo", "Tokyo is the capital of Japan."),
]
TINY_QUESTIONS = [
    ("What is the capital of France?", "Paris", 0),
    ("What is the capital of Germany?", "Berlin", 1),
    ("What is the capital of Italy?", "Rome", 2),
    ("What is the capital of Spain?", "Madrid", 3),
    ("What is the capital of Portugal?", "Lisbon", 4),
    ("What is the capital of Austria?", "Vienna", 5),
    ("What is the capital of Norway?", "Oslo", 6),
    ("Where does the Nile flow?", "Mediterranean Sea", 7),
    ("What is the highest mountain?", "Mount Everest", 8),
    ("What is the capital of Japan?", "Tokyo", 9),
]


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory) -> Path:
    """One cache for the whole session, shared by pytest-xdist's workers (`make test` runs two): a model built
    or converted once serves both. Entries are published whole (harness/runtime/cache.py), so two workers
    building the same one at once is safe."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return tmp_path_factory.mktemp("harness-cache")
    shared = tmp_path_factory.getbasetemp().parent / "harness-cache"
    shared.mkdir(exist_ok=True)
    return shared


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path, session_cache):
    """Every test gets its own store and artifact folder; caches are shared within the session."""
    monkeypatch.setenv("HARNESS_CACHE", str(session_cache))
    monkeypatch.setenv("HARNESS_DB", str(tmp_path / "harness.duckdb"))
    monkeypatch.setenv("HARNESS_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("HARNESS_ARTIFACTS", str(tmp_path / "artifacts"))  # runs stored before run folders
    monkeypatch.setenv("HARNESS_THREADS", os.environ.get("HARNESS_THREADS", "1"))
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.delenv("HARNESS_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("HARNESS_PLUGINS_DIR", raising=False)
    monkeypatch.setenv("HARNESS_TRACKERS", "")  # no tracker unless a test names one (and it is undone after)
    yield
    errors.forget_interrupts()  # a signal a test noted in this process must not end the next test's run


def sigterm_inside_a_c_extension_import(*args) -> None:
    """What a SIGTERM that lands while a C extension initialises leaves: the CLI's handler notes it and raises
    `Terminated`, and the import turns that into `ImportError: initialization failed` (CI saw it in a lazy
    `import sklearn`). Takes any arguments, to stand in for whatever was loading."""
    try:
        raise errors.note_interrupt(errors.Terminated())
    except BaseException:
        raise ImportError("initialization failed") from None


def write_tiny_dataset(root: Path, with_labels: bool = True) -> Path:
    """A local-format dataset: 10 passages, questions split 6 train / 2 dev / 2 test."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "corpus.jsonl").open("w") as fh:
        for i, (title, text) in enumerate(TINY_CORPUS):
            fh.write(json.dumps({"id": f"p{i}", "title": title, "text": text}) + "\n")
    splits = {"train": TINY_QUESTIONS[:6], "dev": TINY_QUESTIONS[6:8], "test": TINY_QUESTIONS[8:]}
    for split, rows in splits.items():
        with (root / f"{split}.jsonl").open("w") as fh:
            for i, (question, answer, gold) in enumerate(rows):
                row = {"id": f"{split}-{i}", "question": question, "answers": [answer]}
                if with_labels:
                    row["gold_passage_ids"] = [f"p{gold}"]
                fh.write(json.dumps(row) + "\n")
    return root


@pytest.fixture
def tiny_data(tmp_path) -> Path:
    return write_tiny_dataset(tmp_path / "tiny_data")


@pytest.fixture
def tiny_data_unlabelled(tmp_path) -> Path:
    return write_tiny_dataset(tmp_path / "tiny_data_nolabels", with_labels=False)


def tiny_run_args(data_dir: Path, strategy: str = "no_ft", *extra: str) -> list[str]:
    """CLI arguments for a fast run on the tiny models and dataset."""
    return ["run", "--plugin", strategy, "--dataset", "local", "--data-dir", str(data_dir),
            "--embedder", "tiny-embedder", "--generator", "tiny-llama", "--max-new-tokens", "4", *extra]


@pytest.fixture
def store(tmp_path):
    from harness.store.db import Store

    return Store(str(tmp_path / "harness.duckdb"), lock_timeout=2.0)


@pytest.fixture
def clean_plugins():
    """Unregister every plugin a test adds, so the global manager is as it was (llm's pattern)."""
    from harness import plugins

    plugins.load_plugins()
    before = {name for name, _ in plugins.pm.list_name_plugin()}
    try:
        yield plugins
    finally:
        for name, plugin in list(plugins.pm.list_name_plugin()):
            if name not in before:
                plugins.pm.unregister(plugin)
                plugins._origins.pop(name, None)


def run_cli(args: list[str]) -> int:
    """Run `harness ARGS` in-process through the real entry point; returns the exit code."""
    from harness.cli import main

    try:
        main(args)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def free_port() -> int:
    """A TCP port nothing listens on now (for a server a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process_group(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM a process started with start_new_session=True and everything it started; SIGKILL after
    `timeout` seconds."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def launch_failure(done: subprocess.CompletedProcess, limit: int = 8000) -> str:
    """What a failed multi-process launch printed, for the assertion message: the lines that name the cause
    (a Python exception, a C++ `terminate`/`what()`, an abort), the stacks of the first process that died by
    a signal (faulthandler's "Fatal Python error" block), then the end of stderr, unfiltered."""
    lines = done.stderr.splitlines()
    causes = [line for line in lines if any(word in line for word in ("Error", "terminate", "what()", "Abort", "Fatal"))]
    fatal = next((i for i, line in enumerate(lines) if line.startswith("Fatal Python error")), None)
    stacks = lines[fatal:fatal + 60] if fatal is not None else []
    return "\n".join(["causes:", *causes[-40:], "--- first fatal error ---", *stacks, "--- end of stderr ---",
                      "\n".join(lines)[-limit:]])
