"""Published: the paper's numbers as reference rows, clearly labelled, beside this store's dev results."""

import altair as alt
import pandas as pd
import streamlit as st

from harness.dashboard import components, data, published

NUMBERS = {
    "em": st.column_config.NumberColumn("EM", format="%.1f"),
    "f1": st.column_config.NumberColumn("F1", format="%.1f"),
    "recall@5": st.column_config.NumberColumn("Recall@5", format="%.1f"),
    "hours": st.column_config.NumberColumn("time (h)", format="%.1f", help="fine-tuning wall-clock hours"),
    "embed_lr": st.column_config.NumberColumn("embed LR", format="%.0e"),
    "gen_lr": st.column_config.NumberColumn("gen LR", format="%.0e"),
}


def yours(dataset: str) -> pd.DataFrame:
    """This store's leaderboard rows for `dataset`, on dev (the paper reports validation), or nothing."""
    path = data.db_path()
    components.store_caption(path)
    try:
        if data.store_state(path).kind != "ok":
            return pd.DataFrame()
        rows = data.leaderboard(path, (("dataset", (dataset,)),))
    except (data.StoreBusy, data.StoreUnreadable):
        st.caption("The store is busy or unreadable: only the published rows are shown.")
        return pd.DataFrame()
    if rows.empty:
        return rows
    return pd.DataFrame({
        "source": "this store (dev split)", "method": rows["strategy"], "strategy": rows["strategy"],
        "pipeline": rows["embedder"] + " + " + rows["generator"], "em": rows["dev_em"], "f1": rows["dev_f1"],
        "recall@5": rows["dev_recall@5"], "hours": rows["fit_seconds"] / 3600})


def beside(dataset: str) -> None:
    paper = pd.DataFrame(r for r in published.table3_rows() if r["dataset"] == dataset)
    paper["pipeline"] = "mean of 4 pipelines"
    mine = yours(dataset)
    table = pd.concat([paper, mine], ignore_index=True)[["source", "method", "strategy", "pipeline", "em", "f1",
                                                          "recall@5", "hours"]]
    if mine.empty:
        st.caption(f"No finished runs on a dataset named `{dataset}` in this store: run "
                   f"`harness run --dataset {dataset} ...` to set yours beside the paper's.")
    st.dataframe(table, hide_index=True, column_config=NUMBERS, placeholder="–")
    st.altair_chart(alt.Chart(table).mark_bar().encode(
        x=alt.X("em:Q", title="EM (validation)"), y=alt.Y("strategy:N", sort=list(published.STRATEGY_OF.values()),
                                                         title=None),
        color=alt.Color("source:N", legend=alt.Legend(orient="bottom", labelLimit=500)), yOffset="source:N",
        tooltip=["source", "method", "pipeline", alt.Tooltip("em", format=".1f")],
    ).properties(height=36 * len(table) + 40))


def per_pipeline(dataset: str) -> None:
    rows = pd.DataFrame(r for r in published.per_pipeline_rows() if r["dataset"] == dataset)
    figure = "Figure 6" if dataset == "hotpotqa" else "Figure 7"
    st.caption(f"{figure}: each pipeline with the learning rates its grid search chose (empty = not trained).")
    st.dataframe(rows[["source", "embedder", "generator", "method", "strategy", "em", "f1", "recall@5", "hours",
                       "embed_lr", "gen_lr"]], hide_index=True, column_config=NUMBERS, height=35 * 29, placeholder="–")


def body() -> None:
    st.title("Published results")
    st.warning(f"**Published numbers, not runs of this harness.** {published.CITATION} "
               f"Setting: {published.SETTING}.", icon=":material/menu_book:")
    dataset = st.radio("Dataset", ["hotpotqa", "popqa"], format_func={"hotpotqa": "HotPotQA",
                                                                       "popqa": "PopQA"}.get,
                       horizontal=True, key="published_dataset")
    table3, figures = st.tabs(["Table 3 (mean of 4 pipelines), beside your runs", "Per pipeline (Figures 6–7)"])
    with table3:
        beside(dataset)
        st.caption("As published, Table 3's 2-Phase time (61.0 h HotPotQA, 9.4 h PopQA) is the per-pipeline "
                   "2-Phase mean plus the Ft. Gen. mean: it counts the generator phase, which Figures 6–7 leave "
                   "out. Your rows are each strategy's best cell on this store's dev split; time is fit time.")
    with figures:
        per_pipeline(dataset)


body()
