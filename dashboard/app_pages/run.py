"""Run: config, environment, training curves, artifacts and the searchable per-example table of one run."""

import altair as alt
import pandas as pd
import streamlit as st

from harness.dashboard import components, data


def pick_run(path: str) -> str | None:
    """The run named by `?run=` in the address, else the newest finished; the address follows the picker."""
    runs = data.run_choices(path)
    labels = {row["id"]: components.run_label(row) for row in runs.to_dict("records")}
    wanted = st.query_params.get("run")
    finished = runs.index[runs["status"] == "finished"]
    index = list(labels).index(wanted) if wanted in labels else int(finished[0]) if len(finished) else 0
    if wanted and wanted not in labels:
        st.warning(f"No run `{wanted}` in this store; showing the newest finished run.")
    chosen = st.selectbox("Run", list(labels), index=index, format_func=labels.get, key=f"run_pick_{wanted}")
    st.query_params["run"] = chosen
    return chosen


QUALITY_ROWS = ["em", "f1", "recall@5", "answer_recall@5", "eval_seconds"]


def interval_text(low, high) -> str:
    return "" if low is None or high is None or pd.isna(low) or pd.isna(high) else f"[{low:.1f}, {high:.1f}]"


def quality_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per quality metric: its value per split, the 95% interval where stored, its direction."""
    values = metrics.pivot(index="name", columns="split", values="value")
    rows = []
    for name in [n for n in QUALITY_ROWS if n in values.index]:
        row = {"metric": name}
        for split in [s for s in data.SPLITS[::-1] if s in values.columns]:
            row[split] = values.loc[name, split]
            row[f"{split} 95% CI"] = interval_text(values[split].get(f"{name}_low"), values[split].get(f"{name}_high"))
        rows.append(row | {"direction": components.direction(name), "description": components.describe(name)})
    return pd.DataFrame(rows)


def cost_text(value: float) -> str:
    """A cost as stored: counts (trained tokens, refreshes) whole and exact, other values to 4 digits."""
    if pd.isna(value):
        return "–"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.4g}"


def cost_table(metrics: pd.DataFrame) -> pd.DataFrame:
    cost = metrics[metrics["split"] == "cost"]
    return pd.DataFrame({"metric": cost["name"], "value": [cost_text(v) for v in cost["value"]],
                         "direction": [components.direction(n) for n in cost["name"]],
                         "description": [components.describe(n) for n in cost["name"]]})


def show_metrics(metrics: pd.DataFrame) -> None:
    st.subheader("Metrics")
    if metrics.empty:
        st.caption("No metrics stored (the run did not finish).")
        return
    sizes = metrics[metrics["name"] == "n"]
    st.caption("examples evaluated: " + " · ".join(f"{s} {n:.0f}" for s, n in zip(sizes["split"], sizes["value"])))
    st.dataframe(quality_table(metrics), hide_index=True, placeholder="–",
                 column_config={"dev": st.column_config.NumberColumn(format="%.1f"),
                                "test": st.column_config.NumberColumn(format="%.1f")})
    st.dataframe(cost_table(metrics), hide_index=True)


SOURCE_ROWS = (  # (label, metric, count): where a split's EM comes from (harness/evaluation.py)
    ("retrieved top-k (all questions)", "em", "n"),
    ("… gold passage in the top-k", "em_gold_retrieved", "n_gold_retrieved"),
    ("… gold passage missed", "em_gold_missed", "n_gold_missed"),
    ("closed-book (no passages)", "closed_book_em", "closed_book_n"),
    ("oracle (gold passages given)", "oracle_em", "oracle_n"),
)


def sources_table(metrics: dict[str, dict[str, float]]) -> pd.DataFrame:
    """EM per evaluation mode and per gold-retrieval group, with n and the 95% interval, for each split."""
    rows = []
    for split in [s for s in data.SPLITS[::-1] if s in metrics]:
        m = metrics[split]
        for label, name, count in SOURCE_ROWS:
            if name in m:
                rows.append({"split": split, "questions": label, "n": m.get(count), "EM": m[name],
                             "95% CI": interval_text(m.get(f"{name}_low"), m.get(f"{name}_high"))})
        if "grounded" in m:
            rows.append({"split": split, "questions": "correct answers inside a retrieved passage (grounded, %)",
                         "n": m.get("n_correct"), "EM": m["grounded"], "95% CI": ""})
    return pd.DataFrame(rows)


def retention_table(metrics: dict[str, dict[str, float]]) -> pd.DataFrame:
    r = metrics.get("retention", {})
    if not r:
        return pd.DataFrame()
    return pd.DataFrame([
        {"measure": "perplexity on held-out passages", "n": r.get("n_passages"), "before fit": r.get("perplexity_before"),
         "after fit": r.get("perplexity_after"), "change": f"{r.get('perplexity_change', float('nan')):+.1f}%"},
        {"measure": "closed-book EM on held-out questions", "n": r.get("n_questions"), "before fit": r.get("em_before"),
         "after fit": r.get("em_after"), "change": f"{r.get('em_change', float('nan')):+.1f} points "
                                                   + interval_text(r.get("em_change_low"), r.get("em_change_high"))},
    ])


def show_sources(path: str, run: dict) -> None:
    """Where the score comes from: retriever against reader, grounding, the gain over no_ft, retention."""
    metrics = data.split_metrics(path, run["id"])
    table = sources_table(metrics)
    if table.empty:
        return
    st.subheader("Where the score comes from")
    st.caption("EM on the same questions answered with the retrieved passages, split by whether the gold passage "
               "was among them, closed-book and with the gold passages (`--eval-modes closed_book,oracle`); "
               "grounded: the share of correct answers found inside a retrieved passage.")
    st.dataframe(table, hide_index=True, placeholder="–", key="sources_table",
                 column_config={"EM": st.column_config.NumberColumn(format="%.1f"),
                                "n": st.column_config.NumberColumn(format="%d")})
    base = data.baseline_run(path, run["id"])
    parts = data.gain(path, run["id"], base) if base else None
    if parts:
        st.markdown(f"Against `{data.BASELINE}` run `{base}` on the same test questions: EM **{parts['total']:+.1f}** "
                    f"= retrieval **{parts['retrieval']:+.1f}** + reading **{parts['reading']:+.1f}** points.")
    retention = retention_table(metrics)
    if not retention.empty:
        st.markdown("**Retention**: the generator before and after fit, on data the run never trained on")
        st.dataframe(retention, hide_index=True, placeholder="–", key="retention_table",
                     column_config={"before fit": st.column_config.NumberColumn(format="%.1f"),
                                    "after fit": st.column_config.NumberColumn(format="%.1f"),
                                    "n": st.column_config.NumberColumn(format="%d")})


def show_overview(run: dict) -> None:
    show_metrics(run["metrics"])
    left, right = st.columns(2)
    with left:
        st.subheader("Environment")
        st.dataframe(environment(run), hide_index=True)
    with right:
        st.subheader("Config")
        st.json(run["config"], expanded=True)


def environment(run: dict) -> pd.DataFrame:
    rows = [("git sha", run.get("git_sha")), ("harness version", run.get("harness_version")),
            ("device", run.get("device")), ("device count", run.get("device_count")),
            ("started", run.get("started_at")), ("finished", run.get("finished_at")), ("run key", run.get("run_key")),
            ("grid", run.get("grid_id"))]
    rows += [(f"package {name}", version) for name, version in sorted(run["packages"].items())]
    return pd.DataFrame([(k, "" if v is None or v != v else str(v)) for k, v in rows], columns=["what", "value"])


# what a training loop's StepMeter logs per step about its cost (harness/training/loop.py), in display order
STEP_COST = {"tokens_per_second": "tokens/s", "mfu": "MFU (model FLOP utilisation)", "peak_memory_mb": "peak memory (MB)",
             "step_seconds": "step seconds", "train_flops": "FLOPs per step (estimated)"}


def step_cost_table(log: pd.DataFrame) -> pd.DataFrame:
    """The per-step cost measures a run logged: median, min and max over its steps, and how many steps."""
    rows = []
    for name, label in STEP_COST.items():
        values = log.loc[log["name"] == name, "value"]
        if not values.empty:
            rows.append({"measure": label, "median": values.median(), "min": values.min(), "max": values.max(),
                         "steps": len(values)})
    return pd.DataFrame(rows)


def show_step_cost(log: pd.DataFrame) -> None:
    table = step_cost_table(log)
    if table.empty:
        return
    st.subheader("Cost per step")
    st.caption("MFU = a step's estimated FLOPs (harness/training/flops.py) / its seconds / the device's peak FLOP/s (the "
               "table in harness/runtime/gpu.py, or --peak-tflops); logged only where that peak is known, i.e. on GPUs. "
               "Peak memory: CUDA max allocated on a GPU, the process's peak RSS on the CPU.")
    st.dataframe(table, hide_index=True, column_config={
        name: st.column_config.NumberColumn(format="%.4g") for name in ("median", "min", "max")})


def show_training(run: dict) -> None:
    log = run["train_log"]
    if log.empty:
        st.caption("No training log: the strategy logged no steps (nothing trained, or it did not call ctx.log).")
        return
    show_step_cost(log)
    names = sorted(log["name"].unique())
    chosen = st.multiselect("Curves", names, default=names, key="run_curves")
    shown = log[log["name"].isin(chosen)]
    if shown.empty:
        return
    curves = alt.Chart(shown).mark_line(point=len(shown) < 120).encode(
        x=alt.X("step:Q", axis=alt.Axis(format="d", tickMinStep=1)),
        y=alt.Y("value:Q", title=None, axis=alt.Axis(format=".3~g")),
        color=alt.Color("name:N", legend=None),
        tooltip=["name", "step", alt.Tooltip("value", format=".4g"), alt.Tooltip("elapsed", format=".1f")],
    ).properties(width=460, height=220)
    # one panel per logged scalar, each on its own y scale (a loss and a learning rate share no scale)
    st.altair_chart(curves.facet(facet=alt.Facet("name:N", title=None), columns=2).resolve_scale(y="independent"))


def show_artifacts(run: dict) -> None:
    artifacts = run["artifacts"]
    if artifacts.empty:
        st.caption("No artifacts: this strategy saved no adapter or embedder.")
        return
    st.dataframe(artifacts, hide_index=True, column_config={
        "sha256": st.column_config.TextColumn("sha256", help="SHA-256 over the artifact's files, as registered")})


def show_predictions(path: str, run_id: str) -> None:
    left, middle, right = st.columns([1, 3, 1])
    split = left.selectbox("Split", data.SPLITS, key="run_split")
    search = middle.text_input("Search question, prediction or gold answer", key="run_search")
    only_wrong = right.toggle("only wrong (EM 0)", key="run_wrong")
    table = data.predictions(path, run_id, split, search.strip(), only_wrong)
    st.caption(f"{len(table)} examples · retrieved passages in rank order, ✓ = a gold passage")
    st.dataframe(table, hide_index=True, placeholder="–", column_config={
        "em": components.metric_column("em", "EM", fmt="%.0f"),
        "f1": components.metric_column("f1", "F1", fmt="%.2f"),
        "hit": st.column_config.NumberColumn("gold in top-k", format="%.0f"),
        "answer_hit": st.column_config.NumberColumn("answer in top-k", format="%.0f"),
    })
    st.download_button("Download CSV", data.to_csv(table), file_name=f"predictions-{run_id}-{split}.csv",
                       mime="text/csv", icon=":material/download:")


def body(path: str) -> None:
    st.title("Run")
    run_id = pick_run(path)
    run = data.run_detail(path, run_id)
    st.markdown(f"**{run['strategy']}** on **{run['dataset']}** · {run['embedder']} + {run['generator']} · "
                f"seed {run['seed']} · status `{run['status']}`")
    if run.get("error"):
        st.error(run["error"])
    overview, training, artifacts, examples = st.tabs(["Overview", "Training", "Artifacts", "Examples"])
    with overview:
        show_overview(run)
        show_sources(path, run)
    with training:
        show_training(run)
    with artifacts:
        show_artifacts(run)
    with examples:
        show_predictions(path, run_id)


components.render(body)
