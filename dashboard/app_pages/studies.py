"""Studies: a paper's table reproduced (`harness study run`) beside the published one, each cell coloured by
its verdict and linked to its runs; the paper's claims with their verdicts. Same data as `harness study report`."""

import pandas as pd
import streamlit as st

from harness.dashboard import components, data

COLOURS = {"within": "#c8e6c9", "below": "#ffcdd2", "above": "#fff3c4", "not run": "#eeeeee",
           "holds": "#c8e6c9", "fails": "#ffcdd2", "within noise": "#fff3c4"}
NUMBERS = {
    "ours": st.column_config.NumberColumn("ours", format="%.1f"),
    "low": st.column_config.NumberColumn("95% low", format="%.1f"),
    "high": st.column_config.NumberColumn("95% high", format="%.1f"),
    "published": st.column_config.NumberColumn("published", format="%.2f"),
    "difference": st.column_config.NumberColumn("diff", format="%+.1f"),
    "run": st.column_config.LinkColumn("run", display_text=r"run=(\w+)",
                                       help="the selected cell's first run (the others are in `runs`)"),
}


def coloured(frame: pd.DataFrame, column: str):
    return frame.style.map(lambda v: f"background-color: {COLOURS.get(v, 'white')}", subset=[column])


def body() -> None:
    st.title("Studies")
    path = data.db_path()
    components.store_caption(path)
    choices = data.studies()
    names = list(choices)
    wanted = st.query_params.get("study", names[0])
    name = st.selectbox("Study", names, index=names.index(wanted) if wanted in names else 0, key="study_name")
    scales = choices[name]
    wanted_scale = st.query_params.get("scale", "full")
    scale = st.radio("Scale", scales, index=scales.index(wanted_scale) if wanted_scale in scales else 0,
                     horizontal=True, key="study_scale")
    st.query_params.update({"study": name, "scale": scale})
    try:
        report = data.study_report(path, name, scale) if data.store_state(path).kind == "ok" else None
    except (data.StoreBusy, data.StoreUnreadable):
        st.caption("The store is busy or unreadable: try again in a moment.")
        return
    if report is None:
        st.info(f"No runs in this store yet: `harness study run {name} --scale {scale}`.")
        return
    (st.warning if scale != "full" else st.info)(f"**{report['title']}** · scale **{scale}**: {report['scale_note']}",
                                                icon=":material/science:")
    st.caption(f"{report['citation']} Study id `{report['study_id']}`: {report['finished']} of {report['runs']} "
               f"stored runs finished; reported on the {report['report_split']} split.")
    rows = pd.DataFrame(report["rows"])
    rows["run"] = rows["runs"].map(lambda ids: f"/run?run={ids.split()[0]}" if ids else None)
    table = rows[["dataset", "pipeline", "label", "metric", "ours", "low", "high", "published", "difference",
                  "verdict", "run", "runs"]]
    st.dataframe(coloured(table, "verdict"), hide_index=True, column_config=NUMBERS, placeholder="–")
    ran = rows[rows["runs"].astype(bool)].drop_duplicates(["dataset", "pipeline", "label"])
    if not ran.empty:
        keys = [f"{r.label} · {r.dataset} · {r.pipeline}" for r in ran.itertuples()]
        picked = st.selectbox("Open the runs of a cell", range(len(keys)), format_func=keys.__getitem__,
                              key="study_cell")
        for run_id in ran.iloc[picked]["runs"].split():
            components.run_link(run_id)
    st.subheader("The paper's claims")
    st.dataframe(coloured(pd.DataFrame(report["claims"])[["claim", "verdict", "evidence"]], "verdict"),
                 hide_index=True)
    for metric, note in report["metric_notes"].items():
        st.caption(f"{metric}: {note}")


body()
