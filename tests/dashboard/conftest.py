"""A real DuckDB store filled through the Store API, and AppTest helpers for the dashboard pages.

The store holds, on dataset `tiny` (40 test and 20 dev examples): no_ft (one seed), ft_gen over a grid of
three generator LRs × two seeds, rag_token over a 2×2 grid of both LRs, two_phase with three seeds on the
mpnet embedder (and one generator-only first-stage cell of its grid, which scores best on dev but is not
two-phase fine-tuning); popqa has no_ft and rag_token; plus one failed and one running run, which the
leaderboard must ignore. Scores come from `harness.evaluation.summarize`, the code every real run uses.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import dashboard
from harness.evaluation import summarize
from harness.store.db import Store

APP = Path(dashboard.__file__).resolve().parent / "streamlit_app.py"
SIZES = {"dev": 20, "test": 40}

# strategy, dataset, embedder, grid id, [(embed_lr, gen_lr)], seeds, EM accuracy per cell, fit seconds, options
PLAN = [
    ("no_ft", "tiny", "minilm", None, [(None, None)], [0], [0.10], 0.0, {}),
    ("ft_gen", "tiny", "minilm", "grid-ftgen", [(None, 1e-5), (None, 3e-5), (None, 1e-4)], [0, 1],
     [0.35, 0.55, 0.25], 120.0, {}),
    ("rag_token", "tiny", "minilm", "grid-ragtok", [(3e-8, 1e-5), (3e-8, 3e-5), (3e-7, 1e-5), (3e-7, 3e-5)], [0],
     [0.40, 0.50, 0.45, 0.60], 300.0, {}),
    # a staged grid's first stage (generator only): it must never stand for two_phase on the leaderboard
    ("two_phase", "tiny", "mpnet", "grid-2phase", [(None, 3e-5)], [0], [0.95], 100.0, {"phases": "1"}),
    ("two_phase", "tiny", "mpnet", None, [(3e-8, 3e-5)], [0, 1, 2], [0.58], 500.0, {}),
    ("no_ft", "popqa", "minilm", None, [(None, None)], [0], [0.15], 0.0, {}),
    ("rag_token", "popqa", "minilm", None, [(3e-7, 1e-5)], [0], [0.45], 200.0, {}),
]


def _config(strategy, dataset, embedder, embed_lr, gen_lr, seed, options=None) -> dict:
    return {"strategy": strategy, "dataset": dataset, "embedder": embedder, "generator": "smollm2-135m",
            "seed": seed, "k": 5, "embed_lr": embed_lr, "gen_lr": gen_lr, "epochs": 1, "limit": None,
            "strategy_options": options or {}}


def _predictions(rng, split: str, accuracy: float) -> list[dict]:
    rows = []
    for i in range(SIZES[split]):
        right = bool(rng.random() < accuracy)
        retrieved = [f"p{(i + j * 7) % 50}" for j in range(5)]
        gold = retrieved[2] if rng.random() < 0.6 else f"p{50 + i}"
        rows.append({"split": split, "example_id": f"{split}-{i:03d}", "question": f"Question number {i} about topic {i % 7}?",
                     "prediction": f"answer {i}" if right else f"wrong {i}", "golds": [f"answer {i}", f"alias {i}"],
                     "gold_passage_ids": [gold], "retrieved_ids": retrieved, "em": float(right),
                     "f1": 1.0 if right else float(rng.choice([0.0, 0.4])), "hit": float(gold in retrieved),
                     "answer_hit": float(rng.random() < 0.7)})
    return rows


def _store_run(store: Store, run_id: str, config: dict, grid_id, accuracy: float, fit_seconds: float, rng) -> None:
    store.start_run(run_id, f"key-{run_id}", config, {
        "grid_id": grid_id, "git_sha": "abc123def456", "harness_version": "0.1.0", "device": "cpu (x86_64, 1 threads)",
        "device_count": 0, "packages": {"torch": "2.13.0", "duckdb": "2.0.0"}})
    metrics, predictions = [], []
    for split in ("dev", "test"):
        preds = _predictions(rng, split, accuracy)
        metrics += [(split, name, value) for name, value in summarize(preds, 5).items()]
        predictions += preds
    metrics += [("cost", "fit_seconds", fit_seconds), ("cost", "gpu_hours", 0.0),
                ("cost", "peak_memory_mb", 900.0 + fit_seconds), ("cost", "trained_tokens", 10 * fit_seconds)]
    if fit_seconds:
        store.log_steps(run_id, [(step, "loss", 3.0 / (step + 1), step * 1.5) for step in range(12)]
                        + [(step, "lr", 1e-5 * (1 - step / 12), step * 1.5) for step in range(12)])
        store.add_artifact(run_id, "adapter", f"/artifacts/{run_id}/adapter", "9f" * 32)
    store.finish_run(run_id, metrics, predictions)


def fill_store(path: str) -> dict[str, list[str]]:
    """Fill `path` through the Store API; returns run ids by strategy/dataset."""
    store, rng, ids = Store(path), np.random.default_rng(7), {}
    n = 0
    for strategy, dataset, embedder, grid_id, lrs, seeds, accuracies, fit, options in PLAN:
        for (embed_lr, gen_lr), accuracy in zip(lrs, accuracies):
            for seed in seeds:
                n += 1
                run_id = f"{strategy[:3]}{dataset[:3]}{n:04d}"
                config = _config(strategy, dataset, embedder, embed_lr, gen_lr, seed, options)
                _store_run(store, run_id, config, grid_id, accuracy, fit, rng)
                ids.setdefault(f"{strategy}/{dataset}", []).append(run_id)
    store.start_run("failedrun001", "key-failed", _config("vrag", "tiny", "minilm", None, None, 0), {})
    store.end_run("failedrun001", "failed", "strategy 'vrag' raised RuntimeError: boom")
    store.start_run("runningrun01", "key-running", _config("jsa_rag", "tiny", "minilm", None, None, 0), {})
    return ids


@pytest.fixture(scope="session")
def filled_db_template(tmp_path_factory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("dashboard-store") / "harness.duckdb"
    ids = fill_store(str(path))
    return path, ids


@pytest.fixture
def filled_db(filled_db_template, tmp_path, monkeypatch) -> Path:
    """A private copy of the filled store, set as $HARNESS_DB."""
    template, _ = filled_db_template
    path = tmp_path / "filled.duckdb"
    shutil.copy(template, path)
    monkeypatch.setenv("HARNESS_DB", str(path))
    return path


@pytest.fixture
def run_ids(filled_db_template) -> dict[str, list[str]]:
    return filled_db_template[1]


def app_test(page: str | None = None, query: dict | None = None):
    """Run the dashboard in AppTest (first the default page, then `page` if given) and return it."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    if page:
        if query:
            at.query_params.update(query)
        at.switch_page(f"app_pages/{page}.py").run()
    return at


def page_text(at) -> str:
    """Every markdown, caption, title, notice and metric on the page, as one string."""
    parts = []
    for kind in ("title", "markdown", "caption", "info", "warning", "error", "success", "subheader"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    return "\n".join(parts)


@pytest.fixture
def downloads(monkeypatch) -> dict[str, bytes]:
    """What the app's download buttons serve, by file name: the real MediaFileManager, observed."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    served: dict[str, bytes] = {}
    original = MediaFileManager.add

    def add(self, path_or_data, mimetype, coordinates, file_name=None, is_for_static_download=False):
        if file_name and isinstance(path_or_data, bytes):
            served[file_name] = path_or_data
        return original(self, path_or_data, mimetype, coordinates, file_name, is_for_static_download)

    monkeypatch.setattr(MediaFileManager, "add", add)
    return served


@contextlib.contextmanager
def writer_holding_lock(path):
    """Another process with the store open for writing, as `harness run` has it while it writes."""
    code = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(120)"
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)
