"""Leaderboard: one row per strategy × dataset × embedder × generator, best grid cell by dev EM, on test."""

import streamlit as st

from harness.config import option_help
from harness.dashboard import components, data

HELP = option_help()

SHOWN = ["vs_best", "strategy", "dataset", "eval_set", "n", "embedder", "generator", "labels", "em", "em_std", "em_ci",
         "f1", "f1_std", "f1_ci", "recall@5", "answer_recall@5", "gain_retrieval", "gain_reading", "grounded",
         "closed_book_em", "oracle_em", "retention_em_change", "retention_perplexity_change", "fit_seconds", "gpu_hours",
         "peak_memory_mb", "seeds", "embed_lr", "gen_lr", "cells", "run_id"]


def columns() -> dict:
    """Every column with its description (and a metric's direction)."""
    identity = {name: st.column_config.TextColumn(name, help=HELP[name]) for name in data.FILTER_COLUMNS}
    number = st.column_config.NumberColumn
    return identity | {
        "vs_best": st.column_config.TextColumn(
            "vs best", width=125,
            help="★ best test EM of its evaluation set; ≈ tied: a paired bootstrap over the shared test examples finds no "
                 f"difference at p < {data.TIE_ALPHA} (or, without predictions, the 95% intervals overlap); "
                 "below: significantly worse"),
        "eval_set": st.column_config.TextColumn(
            "eval set", width=120,
            help="the evaluation set: the same questions of the same data (dataset, its data folder's contents, "
                 "--limit, --corpus-limit, the question ids). Rows rank, and are tested against the best, only "
                 "within one set"),
        "n": number("n", help="questions the row's test scores are on", format="%d", width=55),
        "labels": st.column_config.TextColumn(
            "labels", width=80, help="context labels the retriever trained on: dataset (the dataset's own gold passages) "
                                     "or silver@N (--silver-labels N: the base retriever's top-N passages with a gold answer)"),
        "em": components.metric_column("em", "EM", width=64),
        "em_std": number("± std", help="EM standard deviation over seeds", format="%.1f", width=58),
        "em_ci": st.column_config.TextColumn("EM 95% CI", help="95% bootstrap interval over test examples", width=100),
        "f1": components.metric_column("f1", "F1", width=64),
        "f1_std": number("± std ", help="F1 standard deviation over seeds", format="%.1f", width=58),
        "f1_ci": st.column_config.TextColumn("F1 95% CI", help="95% bootstrap interval over test examples", width=100),
        "recall@5": components.metric_column("recall@5", width=90),
        "answer_recall@5": components.metric_column("answer_recall@5", width=130),
        "gain_retrieval": number("Δ retrieval", format="%+.1f", width=90,
                                 help="EM points over the no_ft row of the same evaluation set and models that come "
                                      "from finding more gold passages (docs/architecture.md §6)"),
        "gain_reading": number("Δ reading", format="%+.1f", width=85,
                               help="EM points over the no_ft row that come from answering better from what was "
                                    "retrieved; Δ retrieval + Δ reading = the EM difference"),
        "grounded": number("grounded %", format="%.0f", width=85,
                           help="share of correct answers whose answer is inside a retrieved passage"),
        "closed_book_em": number("closed-book EM", format="%.1f", width=105,
                                 help="EM with no passages in the prompt (--eval-modes closed_book)"),
        "oracle_em": number("oracle EM", format="%.1f", width=85,
                            help="EM with the gold passages in place of retrieval (--eval-modes oracle)"),
        "retention_em_change": number("retention EM Δ", format="%+.1f", width=110,
                                      help="closed-book EM on held-out questions after fit minus before, in points "
                                           "(--eval-modes retention)"),
        "retention_perplexity_change": number("retention ppl Δ%", format="%+.1f", width=115,
                                              help="held-out perplexity change over fit, in percent (higher: the "
                                                   "generator forgot more; --eval-modes retention)"),
        "fit_seconds": components.metric_column("fit_seconds", width=100),
        "gpu_hours": components.metric_column("gpu_hours", fmt="%.3f", width=100),
        "peak_memory_mb": components.metric_column("peak_memory_mb", fmt="%.0f", width=135),
        "seeds": number("seeds", help="seeds run for the chosen grid cell (mean ± std over them)", width=60),
        "embed_lr": number("embed LR", help="embedder learning rate of the chosen cell", format="%.0e", width=80),
        "gen_lr": number("gen LR", help="generator learning rate of the chosen cell", format="%.0e", width=70),
        "cells": number("cells", help="grid cells tried; the one with the best mean dev EM is shown", width=55),
        "run_id": st.column_config.TextColumn("run", help="newest run of the chosen cell (select a row to open it)"),
    }


def body(path: str) -> None:
    st.title("Leaderboard")
    st.caption("Per **evaluation set** (the same `n` test questions of the same data) × strategy × embedder × "
               "generator: the grid cell with the best mean **dev** EM, reported on **test**. Mean ± std over seeds, "
               "95% bootstrap interval, cost of the fit. Runs scored on other questions (a `--limit` run, another "
               "data folder) are ranked in their own set, never against these. Hover a column header for what it "
               "measures.")
    filters = components.filter_bar(path, "leaderboard")
    sort = st.columns(4)[0].selectbox(
        "Sort by (within each evaluation set)", data.SORT_KEYS, key="leaderboard_sort",
        format_func=lambda k: f"{components.label(k)} ({components.direction(k) if k != 'seeds' else 'most first'})")
    frame = data.leaderboard(path, filters, sort)
    if frame.empty:
        st.info("No finished run matches these filters.")
        return
    show_table(frame)


def show_table(frame) -> None:
    st.caption(f"{len(frame)} rows · {int(frame['seeds'].sum())} runs")
    event = st.dataframe(frame[SHOWN], column_config=columns(), hide_index=True, on_select="rerun",
                         selection_mode="single-row", key="leaderboard_table", placeholder="–")
    chosen = event.selection.rows if event is not None else []
    if chosen:
        components.run_link(frame.loc[chosen[0], "run_id"])
    else:
        st.caption("Select a row to open its run.")
    st.download_button("Download CSV (filtered view)", data.to_csv(frame), file_name="leaderboard.csv",
                       mime="text/csv", icon=":material/download:")


components.render(body)
