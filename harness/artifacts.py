"""What a run saves besides its metrics (the tuned models), and reloading them (`harness evaluate RUN_ID`).

Artifact kinds (the `artifacts` table; written by strategies through `ctx.save_artifact`):
- `adapter`: a peft LoRA folder for the run's generator (adapter weights only, safetensors);
- `embedder`: a sentence-transformers folder, the tuned query tower. Its `harness-artifact.json` says
  whether the corpus was re-encoded with it (`reindexed`); if not, retrieval uses the base index, as the
  run did;
- `passage_embedder`: a sentence-transformers folder, the trained passage tower (the corpus is re-encoded
  with it).
Paths in the `artifacts` table are relative to the run's artifact folder (`<artifacts>/<run id>/`); one that
resolves outside it is refused before anything is loaded, and each folder's sha256 is checked against
the store. Loading is weights-only: safetensors (peft, sentence-transformers), never pickles.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from harness.config import RunConfig
from harness.errors import UserError
from harness.pipeline import RagPipeline
from harness.runfolder import folder_sha256
from harness.store import Store

ARTIFACT_NOTE = "harness-artifact.json"
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}


# -- saving (strategies call these at the end of fit) -----------------------------------------------
def save_adapter(ctx, generator) -> None:
    """The generator's LoRA adapter (peft folder, adapter weights only) as the run's `adapter` artifact."""
    ctx.save_artifact("adapter", lambda folder: generator.model.save_pretrained(folder))


def save_embedder(ctx, encoder, reindexed: bool = False) -> None:
    """The tuned query tower (sentence-transformers folder) as the run's `embedder` artifact.

    `reindexed` records whether the corpus was re-encoded with it (then reloading re-encodes too);
    otherwise retrieval uses the base embedder's index, as during the run.
    """
    def save(folder):
        encoder.save(str(folder))
        (folder / ARTIFACT_NOTE).write_text(json.dumps({"kind": "embedder", "reindexed": reindexed}))

    ctx.save_artifact("embedder", save)


def save_passage_tower(ctx, encoder) -> None:
    """The trained passage tower E_p as the run's `passage_embedder` artifact (sentence-transformers folder).

    The evaluated index is the corpus encoded by this tower: reloading a run re-encodes the corpus with it.
    """
    def save(folder):
        encoder.save(str(folder))
        (folder / ARTIFACT_NOTE).write_text(json.dumps({"kind": "passage_embedder", "reindexed": True}))

    ctx.save_artifact("passage_embedder", save)


# -- reloading ----------------------------------------------------------------------------------------
def stored_config(config: dict | str) -> RunConfig:
    """A stored config (a dict, or JSON as the store holds it) as a RunConfig; keys this version of the
    harness does not know are dropped."""
    config = json.loads(config) if isinstance(config, str) else dict(config)
    known = {f.name for f in dataclasses.fields(RunConfig)}
    return RunConfig(**{k: v for k, v in config.items() if k in known})


def run_artifacts(store: Store, run_id: str) -> dict[str, Path]:
    """kind -> folder of the run's newest artifact of that kind, inside the run's folder and with its sha256
    checked. A store is shared input: a path that resolves outside the run's folder (absolute elsewhere,
    `..`, a symlink out) is refused before anything is read from it."""
    from harness.runner import artifacts_root

    run = store.find_run(run_id)
    run_id = run["id"]
    rows = store.run_artifacts(run_id)
    run_dir = Path(run["folder"]) if run.get("folder") else artifacts_root(store) / run_id  # before run folders
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
    from harness.model_loading import load_sentence_transformer

    if "embedder" in artifacts:
        folder = artifacts["embedder"]
        encoder = load_sentence_transformer(str(folder), device)
        pipeline.query_encoder = encoder
        note = folder / ARTIFACT_NOTE
        if note.is_file() and json.loads(note.read_text()).get("reindexed"):
            from harness.retrieval import IndexParams, build_or_load_index

            pipeline.passage_encoder = encoder
            pipeline.index = build_or_load_index(encoder, pipeline.corpus, IndexParams(kind=index_kind))
    if "adapter" in artifacts:
        from peft import PeftModel

        pipeline.generator.model = PeftModel.from_pretrained(pipeline.generator.model, str(artifacts["adapter"]))
        pipeline.generator.model.eval()


def reevaluate(store: Store, run_id: str, splits: list[str]) -> tuple[dict, dict]:
    """(the run's row, split -> SplitResult) of the run's artifacts on its base models, data and config."""
    from harness.evaluation import evaluate
    from harness.runner import build_pipeline, configure_torch, load_dataset, resolve
    from harness.timing import pick_device

    run = store.find_run(run_id)
    if run["status"] != "finished":
        raise UserError(f"run {run['id']} is {run['status']}, not finished: nothing to re-evaluate")
    cfg = stored_config(run["config"])
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
