"""Reloading a run's saved models (`harness evaluate RUN_ID`); what they are: harness/training/saving.py.

Paths in the `artifacts` table are relative to the run's folder; one that resolves outside it is refused
before anything is loaded, and each folder's sha256 is checked against the store. The run's `folder` (a store is
shared input) must be that run's own finalised folder (its meta.json names the run, its digests verify). Loading is weights-only:
safetensors (peft, sentence-transformers), never pickles.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.config import RunConfig
from harness.errors import UserError
from harness.evaluation import evaluate
from harness.models.loading import load_sentence_transformer
from harness.pipeline import RagPipeline
from harness.retrieval.index import IndexParams, build_or_load_index
from harness.runner.assemble import build_pipeline, configure_torch, load_dataset, resolve
from harness.runtime.timing import pick_device
from harness.store.db import Store
from harness.store.folder import folder_sha256, verified_run_folder
from harness.store.layout import artifacts_root
from harness.store.schema import KIND
from harness.training.saving import ARTIFACT_NOTE

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}


def run_artifacts(store: Store, run_id: str) -> dict[str, Path]:
    """kind -> folder of the run's newest artifact of that kind, inside the run's folder and with its sha256
    checked. A store is shared input: a path that resolves outside the run's folder (absolute elsewhere,
    `..`, a symlink out) is refused before anything is read from it."""
    run = store.find_run(run_id)
    run_id = run["id"]
    rows = store.run_artifacts(run_id)
    if run.get("folder"):  # its own finalised folder, verified, or nothing is read from it
        run_dir = verified_run_folder(run["folder"], run_id).folder
    else:
        run_dir = artifacts_root(store) / run_id  # a run stored before run folders
    for row in rows:
        if not KIND.fullmatch(row["kind"]):
            raise UserError(f"run {run_id} has an artifact of kind '{row['kind'][:40]}': kinds are names of a-z, "
                            "0-9 and _; refusing to load it")
    paths = {row["kind"]: (contained_path(run_dir, row["path"], f"artifact {row['kind']} of run {run_id}"), row)
             for row in rows}
    found = {}
    for kind, (path, row) in paths.items():
        if not path.is_dir():
            raise UserError(f"artifact {kind} of run {run_id} is missing: {path}")
        if folder_sha256(path) != row["sha256"]:
            raise UserError(f"artifact {kind} of run {run_id} changed since it was stored (sha256 mismatch): {path}")
        if pickles := sorted(p.name for p in path.rglob("*") if p.suffix in PICKLE_SUFFIXES):
            raise UserError(f"artifact {kind} of run {run_id} holds pickle files ({', '.join(pickles)}); "
                            "only safetensors weights are loaded")
        found[kind] = path
    return found


def contained_path(run_dir: Path, stored: str, what: str) -> Path:
    """`stored` (relative to `run_dir`) as a real path inside `run_dir`, symlinks resolved; else UserError."""
    root = run_dir.resolve()
    path = (run_dir / stored).resolve()
    if path == root or not path.is_relative_to(root):
        raise UserError(f"{what}: stored path '{stored}' resolves to {path}, outside the run's artifact folder "
                        f"{root}; refusing to load it (artifact paths must stay inside their run's folder)")
    return path


def apply_artifacts(pipeline: RagPipeline, artifacts: dict[str, Path], device: str, index_kind: str = "flat") -> None:
    """Put the tuned query tower and the LoRA adapter into a pipeline built from the base models."""
    if "embedder" in artifacts:
        folder = artifacts["embedder"]
        encoder = load_sentence_transformer(str(folder), device)
        pipeline.query_encoder = encoder
        note = folder / ARTIFACT_NOTE
        if note.is_file() and json.loads(note.read_text()).get("reindexed"):
            pipeline.passage_encoder = encoder
            pipeline.index = build_or_load_index(encoder, pipeline.corpus, IndexParams(kind=index_kind))
    if "adapter" in artifacts:
        from peft import PeftModel

        pipeline.generator.model = PeftModel.from_pretrained(pipeline.generator.model, str(artifacts["adapter"]))
        pipeline.generator.model.eval()


def reevaluate(store: Store, run_id: str, splits: list[str]) -> tuple[dict, dict]:
    """(the run's row, split -> SplitResult) of the run's artifacts on its base models, data and config."""
    run = store.find_run(run_id)
    if run["status"] != "finished":
        raise UserError(f"run {run['id']} is {run['status']}, not finished: nothing to re-evaluate")
    cfg = RunConfig.from_stored(run["config"])
    artifacts = run_artifacts(store, run["id"])
    if not artifacts:
        raise UserError(f"run {run['id']} ({run['strategy']}) saved no artifacts: it is its base models")
    resolved = resolve(cfg)
    dataset = load_dataset(cfg, resolved)
    configure_torch(cfg.seed)
    device = pick_device()
    pipeline = build_pipeline(cfg, resolved, dataset, device)
    apply_artifacts(pipeline, artifacts, device, getattr(cfg, "index", "flat"))
    results = {}
    for split in splits:
        results[split] = evaluate(pipeline, dataset.split(split), split, cfg.max_new_tokens, cfg.eval_batch_size, cfg.seed)
    return run, results
