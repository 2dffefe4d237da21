"""Quality at equal compute: test quality against estimated training FLOPs, one line per strategy.

Each point is a strategy trained to one budget (`harness grid --budgets ...`, i.e. `--max-train-flops`),
averaged over its seeds; x is the FLOPs the runs actually spent (harness/training/flops.py: forward 2·N, backward
4·N per token), so strategies are compared at the same compute, whatever machine ran them.
"""

import altair as alt
import streamlit as st

from harness.dashboard import components, data


def chart(curves, untrained, y: str) -> alt.LayerChart:
    """Trained strategies as lines over log FLOPs; strategies that trained nothing (0 FLOPs, which a log
    axis cannot place) as dashed horizontal lines at their quality."""
    base = alt.Chart(curves).encode(
        x=alt.X("train_flops:Q", title="training FLOPs (estimated, log scale)", scale=alt.Scale(type="log"),
                axis=alt.Axis(format=".0e")),
        y=alt.Y(f"{y}:Q", title=f"test {components.label(y)} {components.arrow(y)}",
                scale=alt.Scale(zero=False, padding=16)),
        color=alt.Color("strategy:N", legend=alt.Legend(orient="bottom")),
    )
    lines = base.mark_line(point=alt.OverlayMarkDef(size=90, filled=True))
    spread = base.mark_errorbar().encode(y=alt.Y("low:Q", title=f"test {components.label(y)} {components.arrow(y)}"),
                                         y2="high:Q")
    tooltip = base.mark_circle(size=90, opacity=0).encode(tooltip=[
        "strategy", alt.Tooltip("train_flops:Q", format=".3g"), alt.Tooltip(f"{y}:Q", format=".1f"),
        alt.Tooltip("budget:N"), "seeds:Q", "run_id:N"])
    layers = [spread, lines, tooltip]
    if not untrained.empty:
        layers.append(alt.Chart(untrained).mark_rule(strokeDash=[6, 4]).encode(
            y=f"{y}:Q", color=alt.Color("strategy:N"), tooltip=["strategy", alt.Tooltip(f"{y}:Q", format=".1f")]))
    return alt.layer(*layers).properties(height=420)


def body(path: str) -> None:
    st.title("Quality at equal compute")
    st.caption("Test quality against the training FLOPs each strategy spent (estimated from parameter counts "
               "and tokens: forward 2·N, backward 4·N per token), one line per strategy; each point is one "
               "budget (`harness grid --budgets`), the mean over its seeds, bars ± one std.")
    filters = components.filter_bar(path, "compute", single_dataset=True)
    y = st.radio("Quality", list(data.QUALITY), format_func=components.label, horizontal=True, key="compute_y")
    curves = data.compute_curves(path, filters, y)
    if curves.empty:
        st.info("No finished run with training FLOPs matches these filters: `harness grid --plugin S "
                "--budgets 1e13,3e13,1e14` makes runs at several budgets.")
        return
    curves["low"] = curves[y] - curves[f"{y}_std"].fillna(0)
    curves["high"] = curves[y] + curves[f"{y}_std"].fillna(0)
    curves["budget"] = curves["budget"].map(lambda b: "full" if b == float("inf") else f"{b:.3g}")
    trained = curves["train_flops"] > 0
    st.altair_chart(chart(curves[trained], curves[~trained], y), key="compute_chart")
    if (~trained).any():
        st.caption(f"Dashed: {', '.join(sorted(curves[~trained]['strategy']))}, which trained nothing (0 FLOPs "
                   "has no place on a log axis).")
    st.dataframe(curves[["strategy", "budget", "train_flops", y, f"{y}_std", "seeds", "run_id"]], hide_index=True,
                 column_config={"train_flops": st.column_config.NumberColumn("training FLOPs", format="scientific"),
                                y: components.metric_column(y), f"{y}_std": st.column_config.NumberColumn("± std",
                                                                                                        format="%.1f")})


components.render(body)
