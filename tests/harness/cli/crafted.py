"""Run folders made by hand (no model runs): a valid finished folder, and the tools to change one of its files
and give it correct digests again, as someone crafting a folder would."""

import hashlib
import json
from pathlib import Path

from harness.store.folder import RunFolder, file_sha256

RUN_ID = "0a1b2c3d4e5f"
CONFIG = {"strategy": "no_ft", "dataset": "local", "embedder": "tiny-embedder", "generator": "tiny-llama",
          "seed": 0, "gen_lr": None}
METRICS = [["dev", "em", 50.0], ["dev", "f1", 62.5], ["test", "em", 25.0], ["cost", "fit_seconds", 0.0]]


def prediction(split: str, example_id: str, em: float = 1.0) -> dict:
    return {"split": split, "example_id": example_id, "question": f"who is {example_id}?", "prediction": "ada",
            "golds": ["ada", "ada l."], "gold_passage_ids": ["p1"], "retrieved_ids": ["p1", "p2"], "em": em,
            "f1": em, "hit": 1.0, "answer_hit": 1.0}


def valid_folder(root: Path, run_id: str = RUN_ID, artifact: bool = True) -> Path:
    """A finished run folder with every file: config, meta, steps, an artifact, metrics, predictions."""
    folder = RunFolder.create(root / run_id, CONFIG, {"run_id": run_id, "run_key": "key-" + run_id,
                                                      "grid_id": None, "created_at": "2026-01-02T03:04:05+00:00"})
    folder.start_attempt({"device": "cpu", "device_count": 0, "packages": {"torch": "2.13.0"}})
    folder.append_steps([(1, "loss", 2.5, 0.1), (2, "loss", 2.0, 0.2)])
    if artifact:
        folder.save_artifact("adapter", lambda d: (d / "adapter_model.safetensors").write_bytes(b"weights"))
    predictions = [prediction("dev", "d1"), prediction("dev", "d2", 0.0), prediction("test", "t1", 0.0)]
    folder.finalise("finished", metrics=[tuple(m) for m in METRICS], predictions=predictions)
    return folder.path


def redigest(folder: Path) -> None:
    """Give status.json the sha256 of every digested file as it is now (a crafted folder's digests verify)."""
    status = json.loads((folder / "status.json").read_text())
    status["files"] = {name: file_sha256(folder / name) for name in status["files"] if (folder / name).is_file()}
    (folder / "status.json").write_text(json.dumps(status))


def digest_following_links(folder: Path) -> str:
    """An artifact folder's digest as a reader that follows symlinks computes it (what a forger would register)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def edit_json(folder: Path, name: str, change) -> None:
    """Apply `change` to the parsed JSON of `name` (in place, or return a new value), write it, redigest."""
    data = json.loads((folder / name).read_text())
    out = change(data)
    (folder / name).write_text(json.dumps(data if out is None else out))
    redigest(folder)


def edit_lines(folder: Path, name: str, change) -> None:
    rows = [json.loads(line) for line in (folder / name).read_text().splitlines() if line.strip()]
    out = change(rows)
    rows = rows if out is None else out
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    redigest(folder)
