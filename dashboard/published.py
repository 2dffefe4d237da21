"""Published reference numbers: Lawton, Samuel, Kumar, Liu (2025), "A Comparison of Independent and Joint
Fine-tuning Strategies for Retrieval-Augmented Generation" (seed 000_1f7e72b692009daa).

Copied from the paper, not produced by this harness: validation split, 1 epoch, top-5 retrieval from a
29.9M-chunk Wikipedia, one node of 8 NVIDIA A10 GPUs; time in hours. Table 3 averages the four pipelines
(MiniLM or MPNet embedder × LLaMA-3-8B-Instruct or Mistral-7B-Instruct-v0.1 generator); Figures 6 (HotPotQA)
and 7 (PopQA) give each pipeline with the learning rates its grid search chose.
"""

from __future__ import annotations

CITATION = (
    "Lawton, Samuel, Kumar, Liu (2025). A Comparison of Independent and Joint Fine-tuning Strategies for "
    "Retrieval-Augmented Generation."
)
SETTING = "validation split · 1 epoch · top-5 of 29.9M Wikipedia chunks · 8× NVIDIA A10 · time in hours"

# The paper's method names and the strategy plugins that implement them.
STRATEGY_OF = {
    "No Ft.": "no_ft",
    "Ft. Embed.": "ft_embed",
    "Ft. Gen.": "ft_gen",
    "Indp.": "indp",
    "2-Phase": "two_phase",
    "RAG-Seq.": "rag_sequence",
    "RAG-Tok.": "rag_token",
}
METHODS = tuple(STRATEGY_OF)

# Table 3 (captioned "Figure 3" in the text): method, dataset, EM, F1, Recall@5, time (h), averaged over
# the four pipelines.
TABLE3 = [
    ("No Ft.", "hotpotqa", 10.3, 19.8, 19.1, 0.0),
    ("Ft. Embed.", "hotpotqa", 11.1, 20.8, 21.4, 3.5),
    ("Ft. Gen.", "hotpotqa", 28.4, 39.4, 19.1, 23.8),
    ("Indp.", "hotpotqa", 29.3, 40.2, 21.4, 27.4),
    ("2-Phase", "hotpotqa", 30.0, 41.3, 25.1, 61.0),
    ("RAG-Seq.", "hotpotqa", 29.1, 40.2, 24.0, 49.2),
    ("RAG-Tok.", "hotpotqa", 29.5, 40.8, 24.3, 49.3),
    ("No Ft.", "popqa", 12.6, 18.6, 17.4, 0.0),
    ("Ft. Embed.", "popqa", 18.2, 26.6, 30.8, 0.4),
    ("Ft. Gen.", "popqa", 32.1, 34.7, 17.4, 2.9),
    ("Indp.", "popqa", 40.6, 43.2, 30.8, 3.2),
    ("2-Phase", "popqa", 41.0, 43.7, 33.3, 9.4),
    ("RAG-Seq.", "popqa", 41.4, 44.1, 32.8, 7.9),
    ("RAG-Tok.", "popqa", 41.6, 44.4, 33.1, 8.0),
]

# Figures 6 and 7: per (dataset, embedder, generator), one row per method in METHODS order:
# EM, F1, Recall@5, time (h), embedder LR, generator LR (None = not trained).
PER_PIPELINE = {
    ("hotpotqa", "MiniLM", "LLaMA3-8b"): [
        (15.3, 24.6, 19.5, 0.0, None, None), (16.5, 26.0, 21.3, 1.5, 1e-06, None),
        (29.9, 41.2, 19.5, 21.8, None, 1e-05), (30.5, 41.7, 21.3, 23.3, 1e-06, 1e-05),
        (30.8, 42.4, 23.7, 35.2, 3e-08, 1e-05), (27.8, 38.5, 22.9, 45.9, 3e-08, 1e-05),
        (30.0, 41.4, 23.2, 46.0, 3e-08, 1e-05),
    ],
    ("hotpotqa", "MiniLM", "Mistral-7b"): [
        (5.5, 15.2, 19.5, 0.0, None, None), (6.2, 15.7, 21.3, 1.5, 1e-06, None),
        (26.8, 37.5, 19.5, 24.6, None, 1e-05), (27.9, 38.5, 21.3, 26.1, 1e-06, 1e-05),
        (27.7, 38.7, 23.0, 36.6, 3e-08, 1e-05), (27.5, 38.4, 22.6, 49.9, 3e-08, 1e-05),
        (26.8, 37.3, 22.3, 49.8, 3e-08, 1e-05),
    ],
    ("hotpotqa", "MPNet", "LLaMA3-8b"): [
        (15.1, 24.5, 18.6, 0.0, None, None), (16.0, 25.9, 21.5, 5.5, 1e-06, None),
        (29.8, 41.0, 18.6, 22.9, None, 3e-06), (30.7, 41.8, 21.5, 28.4, 1e-06, 3e-06),
        (32.1, 43.8, 27.3, 37.9, 3e-08, 3e-06), (31.8, 43.7, 25.7, 48.7, 3e-08, 3e-06),
        (31.9, 44.0, 26.4, 49.1, 3e-08, 3e-06),
    ],
    ("hotpotqa", "MPNet", "Mistral-7b"): [
        (5.4, 15.0, 18.6, 0.0, None, None), (5.7, 15.6, 21.5, 5.5, 1e-06, None),
        (27.2, 37.8, 18.6, 26.0, None, 1e-05), (28.1, 38.8, 21.5, 31.6, 1e-06, 1e-05),
        (29.4, 40.6, 26.4, 39.1, 3e-08, 1e-05), (29.1, 40.4, 24.7, 52.4, 3e-08, 1e-05),
        (29.2, 40.3, 25.3, 52.5, 3e-08, 1e-05),
    ],
    ("popqa", "MiniLM", "LLaMA3-8b"): [
        (17.3, 23.4, 17.9, 0.0, None, None), (23.6, 31.1, 28.5, 0.1, 1e-05, None),
        (34.6, 37.4, 17.9, 2.5, None, 1e-05), (40.8, 43.7, 28.5, 2.6, 1e-05, 1e-05),
        (41.1, 44.0, 30.7, 6.3, 3e-07, 1e-05), (40.6, 43.6, 30.1, 7.2, 3e-07, 1e-05),
        (41.8, 44.3, 30.9, 7.3, 3e-07, 1e-05),
    ],
    ("popqa", "MiniLM", "Mistral-7b"): [
        (8.9, 15.3, 17.9, 0.0, None, None), (12.1, 20.4, 28.5, 0.1, 1e-05, None),
        (30.9, 33.4, 17.9, 2.7, None, 3e-05), (37.5, 40.5, 28.5, 2.8, 1e-05, 3e-05),
        (38.6, 41.5, 31.3, 6.5, 3e-08, 3e-05), (39.5, 42.3, 30.6, 7.7, 3e-08, 3e-05),
        (39.9, 42.4, 31.4, 7.8, 3e-08, 3e-05),
    ],
    ("popqa", "MPNet", "LLaMA3-8b"): [
        (16.0, 21.6, 16.9, 0.0, None, None), (25.1, 33.4, 33.1, 0.6, 3e-05, None),
        (33.6, 36.1, 16.9, 3.0, None, 1e-04), (43.0, 45.5, 33.1, 3.5, 3e-05, 1e-04),
        (43.2, 45.9, 35.8, 6.4, 3e-07, 1e-04), (44.0, 46.5, 35.4, 8.1, 3e-07, 1e-04),
        (42.4, 46.1, 35.2, 8.1, 3e-07, 1e-04),
    ],
    ("popqa", "MPNet", "Mistral-7b"): [
        (8.2, 14.2, 16.9, 0.0, None, None), (12.0, 21.2, 33.1, 0.6, 3e-05, None),
        (29.2, 31.9, 16.9, 3.3, None, 3e-05), (40.8, 43.2, 33.1, 3.9, 3e-05, 3e-05),
        (40.9, 43.5, 35.5, 6.9, 3e-07, 3e-05), (41.5, 44.1, 35.2, 8.7, 3e-07, 3e-05),
        (42.2, 44.9, 35.0, 8.6, 3e-07, 3e-05),
    ],
}

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
