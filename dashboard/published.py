"""Published reference numbers: Lawton, Samuel, Kumar, Liu (2025), read from the `lawton2025` study
(plugins/studies/lawton2025.py), which holds them as data.

Copied from the paper, not produced by this harness: validation split, 1 epoch, top-5 retrieval from a
29.9M-chunk Wikipedia, one node of 8 NVIDIA A10 GPUs; time in hours. Table 3 averages the four pipelines
(MiniLM or MPNet embedder × LLaMA-3-8B-Instruct or Mistral-7B-Instruct-v0.1 generator); Figures 6 (HotPotQA)
and 7 (PopQA) give each pipeline with the learning rates its grid search chose.
"""

from __future__ import annotations

from harness.builtins.studies.lawton2025 import CITATION, METHODS, PER_PIPELINE, SETTING, STRATEGY_OF, TABLE3

__all__ = ["CITATION", "METHODS", "PER_PIPELINE", "SETTING", "STRATEGY_OF", "TABLE3", "table3_rows", "per_pipeline_rows"]

SOURCE_LABEL = "published (Lawton et al. 2025)"


def table3_rows() -> list[dict]:
    """Table 3 as records, each labelled with its source."""
    return [
        {"source": SOURCE_LABEL, "method": m, "strategy": STRATEGY_OF[m], "dataset": ds, "em": em, "f1": f1,
         "recall@5": r5, "hours": hours}
        for m, ds, em, f1, r5, hours in TABLE3
    ]


def per_pipeline_rows() -> list[dict]:
    """Figures 6 and 7 as records, each labelled with its source."""
    rows = []
    for (ds, embedder, generator), cells in PER_PIPELINE.items():
        for method, (em, f1, r5, hours, embed_lr, gen_lr) in zip(METHODS, cells):
            rows.append({"source": SOURCE_LABEL, "dataset": ds, "embedder": embedder, "generator": generator,
                         "method": method, "strategy": STRATEGY_OF[method], "em": em, "f1": f1, "recall@5": r5,
                         "hours": hours, "embed_lr": embed_lr, "gen_lr": gen_lr})
    return rows
