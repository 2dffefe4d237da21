"""Quality vs cost: test EM or F1 against fit time or GPU-hours, with the Pareto front drawn."""

import altair as alt
import streamlit as st

from harness.dashboard import components, data

TOOLTIP = ["strategy", "embedder", "generator", "run_id"]


def chart(points, x: str, y: str) -> alt.LayerChart:
    pick = alt.selection_point(fields=["run_id"], name="pick", on="click")
    base = alt.Chart(points).encode(
        x=alt.X(x, title=f"{components.label(x)} {components.arrow(x)}",
                scale=alt.Scale(domain=[0, 1.06 * float(points[x].max()) or 1.0])),  # costs start at 0
        y=alt.Y(y, title=f"test {components.label(y)} {components.arrow(y)}", scale=alt.Scale(zero=False, padding=16)),
    )
    dots = base.mark_circle(size=140, opacity=0.85).encode(
        color=alt.Color("strategy:N", legend=alt.Legend(orient="bottom")),
        tooltip=[*TOOLTIP, alt.Tooltip(y, format=".1f"), alt.Tooltip(x, format=".3g")],
    ).add_params(pick)
    front = base.transform_filter(alt.datum.pareto).mark_line(
        interpolate="step-after", color="#888", strokeDash=[6, 4])
    names = base.transform_filter(alt.datum.pareto).mark_text(align="left", dx=8, dy=-8, fontSize=11).encode(
        text="strategy")
    return alt.layer(front, dots, names).properties(height=420)


def body(path: str) -> None:
    st.title("Quality vs cost")
    st.caption("Each point is a leaderboard row (or every run). The dashed line is the Pareto front: no other "
               "point is both cheaper and better. Click a point to open its run.")
    filters = components.filter_bar(path, "cost", single_dataset=True)
    left, middle, right = st.columns(3)
    y = left.radio("Quality", ["em", "f1"], format_func=components.label, horizontal=True, key="cost_y")
    x = middle.radio("Cost", ["fit_seconds", "gpu_hours"], format_func=components.label, horizontal=True,
                     key="cost_x")
    every_run = right.toggle("every run (all grid cells and seeds)", key="cost_every_run")
    points = data.cost_points(path, filters, every_run, x, y)
    if points.empty:
        st.info("No finished run matches these filters.")
        return
    show_chart(points, x, y)
    show_front(points, x, y)


def show_chart(points, x: str, y: str) -> None:
    shown = points[[*TOOLTIP, "dataset", x, y, "pareto"]]
    event = st.altair_chart(chart(shown, x, y), on_select="rerun", key="cost_chart")
    picked = (event.selection.get("pick") or []) if event is not None else []
    if picked and picked[0].get("run_id"):
        st.switch_page(components.RUN_PAGE, query_params={"run": picked[0]["run_id"]})
    if x == "gpu_hours" and not points[x].any():
        st.caption("GPU-hours are 0 for CPU runs: pick fit time to spread them out.")


def show_front(points, x: str, y: str) -> None:
    front = points[points["pareto"]].sort_values(x)
    st.subheader(f"Pareto front ({len(front)} of {len(points)})")
    st.dataframe(front[[*TOOLTIP, y, x]], hide_index=True, column_config={
        y: components.metric_column(y), x: components.metric_column(x, fmt="%.3g")})
    labels = {row["run_id"]: f"{row['run_id']} · {row['strategy']} · {row['embedder']} + {row['generator']}"
              for _, row in points.iterrows()}
    chosen = st.selectbox("Open a run", list(labels), format_func=labels.get, key="cost_open")
    components.run_link(chosen)


components.render(body)
