"""What several pages show the same way: the store's state, the busy notice, filters, metric columns."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from harness.dashboard import data
from harness.metrics import metric_info
from harness.store.migrations import latest_migration

RETRY_SECONDS = 2.0
RUN_PAGE = "app_pages/run.py"

LABELS = {
    "em": "EM", "f1": "F1", "recall@5": "recall@5", "answer_recall@5": "answer recall@5",
    "fit_seconds": "fit time (s)", "gpu_hours": "GPU-hours", "peak_memory_mb": "peak memory (MB)",
    "eval_seconds": "eval time (s)", "seeds": "seeds",
}


def label(name: str) -> str:
    return LABELS.get(name, name)


def direction(name: str) -> str:
    return "higher is better" if metric_info(name).higher_is_better else "lower is better"


def arrow(name: str) -> str:
    return "↑" if metric_info(name).higher_is_better else "↓"


def describe(name: str) -> str:
    """The metric's one-line description, with its unit."""
    info = metric_info(name)
    return f"{info.description}" + (f" ({info.unit})" if info.unit else "")


def metric_help(name: str) -> str:
    return f"{describe(name)}. {direction(name).capitalize()}."


def metric_column(name: str, title: str | None = None, fmt: str = "%.1f", width: int | str | None = None):
    """A number column titled with the metric and its direction, its description in the header's help."""
    return st.column_config.NumberColumn(f"{title or label(name)} {arrow(name)}", help=metric_help(name), format=fmt,
                                         width=width)


# -- the store's state -------------------------------------------------------------------------------
def render(body: Callable[[str], None]) -> None:
    """Run a page's `body(path)` when the store holds finished runs; otherwise say why not and how to fix it."""
    path = data.db_path()
    store_caption(path)
    try:
        state = data.store_state(path)
        if state.kind != "ok":
            show_state(state, path)
            return
        body(path)
    except data.StoreBusy:
        busy_notice(path)
    except data.StoreUnreadable as exc:
        st.error(f"Cannot read the store: {exc}")


def store_caption(path: str) -> None:
    st.sidebar.caption(f"store: `{path}` (read-only)")


def show_state(state: data.StoreState, path: str) -> None:
    if state.kind == "missing":
        st.info(f"No store at `{path}` yet. Run `harness run` first (for example `harness run --plugin no_ft`), "
                "then reload this page. `harness dashboard --db PATH` opens another file.", icon=":material/inbox:")
    elif state.kind == "empty":
        runs = f" ({state.detail})" if state.detail else ""
        st.info(f"The store `{path}` has no finished runs yet{runs}. Run `harness run` first, then reload.",
                icon=":material/inbox:")
    elif state.kind == "outdated":
        st.warning(f"The store `{path}` has an older schema (last migration: {state.detail}) than this code "
                   f"({latest_migration()}). Run `harness --db {path} migrate`, then reload.", icon=":material/build:")
    elif state.kind == "too_new":
        st.error(f"The store `{path}` was written by a newer rag-harness (migrations {state.detail} are unknown "
                 "here). Upgrade rag-harness to read it.", icon=":material/build:")
    else:
        st.error(f"`{path}` is a DuckDB file but not a rag-harness store (it has no `_migrations` table).")


def busy_notice(path: str) -> None:
    st.warning(f"Store busy, retrying: another process (a `harness run`?) is writing to `{path}`. "
               f"This page reloads by itself when the store is free (checked every {RETRY_SECONDS:.0f} s).",
               icon=":material/hourglass_top:")
    _reload_when_free(path)


@st.fragment(run_every=RETRY_SECONDS)
def _reload_when_free(path: str) -> None:
    if data.store_is_free(path):
        st.rerun(scope="app")


# -- filters and links -------------------------------------------------------------------------------
def filter_bar(path: str, key: str, single_dataset: bool = False) -> data.Filters:
    """One multiselect per allowlisted filter column (the dataset a selectbox when `single_dataset`)."""
    options = data.filter_options(path)
    chosen = []
    for column, slot in zip(data.FILTER_COLUMNS, st.columns(len(data.FILTER_COLUMNS))):
        if single_dataset and column == "dataset":
            value = slot.selectbox(column, options[column], key=f"{key}_{column}")
            chosen.append((column, (value,) if value else ()))
        else:
            values = slot.multiselect(column, options[column], key=f"{key}_{column}", placeholder="all")
            chosen.append((column, tuple(values)))
    return tuple(chosen)


def run_label(row) -> str:
    em = row.get("em")
    score = f" · test EM {em:.1f}" if em is not None and em == em else ""
    status = "" if row.get("status", "finished") == "finished" else f" · {row['status']}"
    return (f"{row['id']} · {row['strategy']} · {row['dataset']} · {row['embedder']} + {row['generator']} "
            f"· seed {row['seed']}{score}{status}")


def run_link(run_id: str, text: str | None = None) -> None:
    st.page_link(RUN_PAGE, label=text or f"Open run {run_id}", icon=":material/open_in_new:", query_params={"run": run_id})
