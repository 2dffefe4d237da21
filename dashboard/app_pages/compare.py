"""Compare: two runs on the same examples, where each is right and the other wrong, and a paired bootstrap."""

import streamlit as st

from harness.dashboard import components, data

OUTCOMES = ["only A right", "only B right", "both wrong", "both right"]


def finished(path: str):
    runs = data.run_choices(path)
    return runs[runs["status"] == "finished"].set_index("id", drop=False)


def pick_pair(runs) -> tuple[str, str]:
    """Two finished runs; by default the two best on test EM of the newest run's dataset."""
    labels = {row["id"]: components.run_label(row) for row in runs.to_dict("records")}
    ranked = runs[runs["dataset"] == runs.iloc[0]["dataset"]].sort_values("em", ascending=False).index.tolist()
    ids = list(labels)
    default_a = st.query_params.get("a", ranked[0])
    default_b = st.query_params.get("b", ranked[1] if len(ranked) > 1 else ids[-1])
    left, right = st.columns(2)
    a = left.selectbox("Run A", ids, index=_index(ids, default_a), format_func=labels.get, key="compare_a")
    b = right.selectbox("Run B", ids, index=_index(ids, default_b), format_func=labels.get, key="compare_b")
    return a, b


def _index(ids: list[str], wanted: str) -> int:
    return ids.index(wanted) if wanted in ids else 0


def show_summary(summary: dict) -> None:
    cols = st.columns(4)
    for slot, name in zip(cols[:2], ("em", "f1")):
        s = summary[name]
        slot.metric(f"{components.label(name)}: A − B", f"{s['diff']:+.1f}",
                    help=f"A {s['a']:.1f} vs B {s['b']:.1f}; paired bootstrap over the {summary['n']} shared examples")
        slot.caption(f"A {s['a']:.1f} · B {s['b']:.1f} · p = {s['p']:.3f}"
                     + (" (significant at 0.05)" if s["p"] < 0.05 else " (no significant difference)"))
    outcomes = summary["outcomes"]
    cols[2].metric("only A right", outcomes.get("only A right", 0))
    cols[3].metric("only B right", outcomes.get("only B right", 0))
    st.caption(f"both right: {outcomes.get('both right', 0)} · both wrong: {outcomes.get('both wrong', 0)} · "
               f"{summary['n']} shared examples")


def show_gain(path: str, a: str, b: str, split: str) -> None:
    """A's EM over B as retrieval + reading, when both were scored on the same questions."""
    if not data.same_questions(path, a, b, split):
        st.warning(f"A and B were not scored on the same {split} questions (another evaluation set: a --limit, "
                   "another data folder or corpus): their scores do not compare; only shared examples are paired below.")
        return
    parts = data.gain(path, a, b, split)
    if parts:
        st.markdown(f"**Where A − B comes from** ({split}): EM {parts['total']:+.1f} = retrieval "
                    f"**{parts['retrieval']:+.1f}** (more gold passages in the top-k) + reading "
                    f"**{parts['reading']:+.1f}** (better answers from what was retrieved) points.")
    metrics = {run: data.split_metrics(path, run).get(split, {}) for run in (a, b)}
    rows = [{"EM on": label, "A": metrics[a].get(name), "B": metrics[b].get(name)}
            for label, name in (("all questions", "em"), ("gold passage retrieved", "em_gold_retrieved"),
                                ("gold passage missed", "em_gold_missed"), ("closed-book", "closed_book_em"),
                                ("oracle", "oracle_em"), ("grounded (% of correct)", "grounded"))
            if name in metrics[a] or name in metrics[b]]
    if len(rows) > 1:
        st.dataframe(rows, hide_index=True, key="compare_sources",
                     column_config={k: st.column_config.NumberColumn(format="%.1f") for k in ("A", "B")})


def body(path: str) -> None:
    st.title("Compare two runs")
    st.caption("Exact match per example on the same split; the p-value is a two-sided paired bootstrap "
               "(resampling examples) of the difference in mean EM or F1.")
    runs = finished(path)
    a, b = pick_pair(runs)
    split = st.radio("Split", data.SPLITS, horizontal=True, key="compare_split")
    st.query_params.update({"a": a, "b": b})
    if a == b:
        st.info("Pick two different runs.")
        return
    if runs.loc[a, "dataset"] != runs.loc[b, "dataset"]:
        st.warning(f"Different datasets ({runs.loc[a, 'dataset']} vs {runs.loc[b, 'dataset']}): only examples "
                   "with the same id and question are compared.")
    paired = data.paired_predictions(path, a, b, split)
    if paired.empty:
        st.warning(f"These runs share no {split} examples (different datasets or no stored predictions).")
        return
    show_summary(data.paired_summary(paired))
    show_gain(path, a, b, split)
    shown = st.multiselect("Show", OUTCOMES, default=OUTCOMES[:2], key="compare_outcomes")
    table = paired[paired["outcome"].isin(shown)]
    st.dataframe(table, hide_index=True, column_config={
        "em_a": st.column_config.NumberColumn("EM A", format="%.0f"),
        "em_b": st.column_config.NumberColumn("EM B", format="%.0f"),
        "f1_a": st.column_config.NumberColumn("F1 A", format="%.2f"),
        "f1_b": st.column_config.NumberColumn("F1 B", format="%.2f")})
    st.download_button("Download CSV", data.to_csv(table), file_name=f"compare-{a}-{b}-{split}.csv",
                       mime="text/csv", icon=":material/download:")


components.render(body)
