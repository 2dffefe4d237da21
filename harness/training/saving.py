"""What a strategy saves at the end of `fit` (the tuned models), as artifacts of its run folder.

Artifact kinds (the `artifacts` table; written through `ctx.save_artifact`, reloaded by runner/artifacts.py):
- `adapter`: a peft LoRA folder for the run's generator (adapter weights only, safetensors);
- `embedder`: a sentence-transformers folder, the tuned query tower. Its `harness-artifact.json` says
  whether the corpus was re-encoded with it (`reindexed`); if not, retrieval uses the base index, as the
  run did;
- `passage_embedder`: a sentence-transformers folder, the trained passage tower (the corpus is re-encoded
  with it).
"""

from __future__ import annotations

import json

ARTIFACT_NOTE = "harness-artifact.json"


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

