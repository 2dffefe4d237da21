"""Learning rates: the dev metric against the learning rate (a line per strategy, a heatmap for two LRs)."""

import altair as alt
import pandas as pd
import streamlit as st

from harness.dashboard import components, data

LRS = ("embed_lr", "gen_lr")
LR_TITLE = {"embed_lr": "embedder LR", "gen_lr": "generator LR"}


def series_name(frame: pd.DataFrame) -> pd.Series:
    """The strategy, with the pipeline added when several pipelines are shown."""
    several = frame[["embedder", "generator"]].drop_duplicates().shape[0] > 1
    name = frame["strategy"] + (" · " + frame["embedder"] + " + " + frame["generator"] if several else "")
    return name + frame["earlier_stage"].map({True: " (earlier grid stage)", False: ""})


def varying(cells: pd.DataFrame) -> list[str]:
    return [lr for lr in LRS if cells[lr].nunique(dropna=True) > 1]


def split_by_shape(cells: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Series that vary one LR go into one long frame (for lines); those varying both get a heatmap each."""
    lines, heatmaps = [], {}
    for name, group in cells.groupby("series"):
        moving = varying(group)
        if len(moving) == 2:
            heatmaps[name] = group
        elif len(moving) == 1:
            lines.append(group.assign(which=LR_TITLE[moving[0]], lr=group[moving[0]]))
    return (pd.concat(lines) if lines else pd.DataFrame()), heatmaps


def line_chart(lines: pd.DataFrame, metric: str) -> alt.Chart:
    return alt.Chart(lines).mark_line(point=alt.OverlayMarkDef(size=70)).encode(
        x=alt.X("lr:Q", scale=alt.Scale(type="log"), title="learning rate", axis=alt.Axis(format=".0e")),
        y=alt.Y(f"{metric}:Q", title=f"dev {components.label(metric)} {components.arrow(metric)}",
                scale=alt.Scale(zero=False)),
        color=alt.Color("series:N", title="strategy", legend=alt.Legend(orient="bottom", labelLimit=400)), strokeDash=alt.StrokeDash("which:N", title="varied", legend=alt.Legend(orient="bottom")),  # noqa: E501
        tooltip=["series", "which", alt.Tooltip("lr", format=".0e"), alt.Tooltip(metric, format=".1f"), "seeds"],
    ).properties(height=380)


def heatmap(cells: pd.DataFrame, metric: str) -> alt.LayerChart:
    cells = cells.assign(embed=cells["embed_lr"].map("{:.0e}".format), gen=cells["gen_lr"].map("{:.0e}".format))
    sort_embed = sorted(cells["embed"].unique(), key=float)
    sort_gen = sorted(cells["gen"].unique(), key=float, reverse=True)
    base = alt.Chart(cells).encode(x=alt.X("embed:O", title=LR_TITLE["embed_lr"], sort=sort_embed,
                                           axis=alt.Axis(labelAngle=0)),
                                   y=alt.Y("gen:O", title=LR_TITLE["gen_lr"], sort=sort_gen))
    rects = base.mark_rect().encode(color=alt.Color(f"{metric}:Q", title=f"dev {components.label(metric)}",
                                                    scale=alt.Scale(scheme="viridis")),
                                    tooltip=["embed", "gen", alt.Tooltip(metric, format=".1f"), "seeds"])
    middle = (cells[metric].min() + cells[metric].max()) / 2  # dark text on the light (high) end of viridis
    text = base.mark_text(fontSize=13).encode(text=alt.Text(f"{metric}:Q", format=".1f"), color=alt.condition(
        alt.datum[metric] > middle, alt.value("black"), alt.value("white")))
    return alt.layer(rects, text).properties(height=260)


def body(path: str) -> None:
    st.title("Learning rates")
    st.caption("Mean dev score over seeds for each learning-rate cell. A strategy that varies one learning "
               "rate is a line; one that varies both is a heatmap. The leaderboard keeps each row's best cell.")
    datasets = data.filter_options(path)["dataset"]
    all_grids = data.grids(path)
    first = all_grids["datasets"].iloc[0].split(", ")[0] if len(all_grids) else datasets[0]
    left, middle, right = st.columns(3)
    dataset = left.selectbox("Dataset", datasets, index=datasets.index(first), key="lr_dataset",
                             help="the first dataset with a grid is shown first")
    metric = middle.selectbox("Dev metric", data.QUALITY, format_func=components.label, key="lr_metric")
    grids = all_grids[all_grids["datasets"].str.split(", ").map(lambda names: dataset in names).astype(bool)]
    chosen = right.multiselect("Grids", grids["grid_id"].tolist(), placeholder="all runs", key="lr_grids")
    cells = data.lr_cells(path, dataset, metric, tuple(chosen))
    if cells.empty:
        st.info("No finished runs with dev metrics for this choice.")
        return
    cells["series"] = series_name(cells)
    show(cells, metric)


def show(cells: pd.DataFrame, metric: str) -> None:
    lines, heatmaps = split_by_shape(cells)
    if not len(lines) and not heatmaps:
        st.info("No strategy here varies a learning rate: run a grid (`harness grid ... --lr-grid paper`).")
    if len(lines):
        st.altair_chart(line_chart(lines, metric))
    for name, group in heatmaps.items():
        st.subheader(name)
        st.altair_chart(heatmap(group, metric))
    with st.expander("All cells", expanded=False):
        st.dataframe(cells.drop(columns="series"), hide_index=True, placeholder="–", column_config={
            "embed_lr": st.column_config.NumberColumn("embed LR", format="%.0e"),
            "gen_lr": st.column_config.NumberColumn("gen LR", format="%.0e"),
            metric: components.metric_column(metric, f"dev {components.label(metric)}")})


components.render(body)
