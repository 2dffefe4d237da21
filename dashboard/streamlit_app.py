"""rag-harness dashboard: navigation only; each page lives in app_pages/, data access in data.py.

    harness dashboard                      # the store ./harness.duckdb (or $HARNESS_DB) on 127.0.0.1:8501
    harness dashboard --db runs.duckdb --port 8600
"""

import streamlit as st

st.set_page_config(page_title="rag-harness leaderboard", page_icon=":material/leaderboard:", layout="wide")

PAGES = [
    st.Page("app_pages/leaderboard.py", title="Leaderboard", icon=":material/leaderboard:", default=True),
    st.Page("app_pages/quality_vs_cost.py", title="Quality vs cost", icon=":material/scatter_plot:"),
    st.Page("app_pages/equal_compute.py", title="Equal compute", icon=":material/show_chart:"),
    st.Page("app_pages/run.py", title="Run", icon=":material/description:"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("app_pages/learning_rates.py", title="Learning rates", icon=":material/tune:"),
    st.Page("app_pages/published.py", title="Published", icon=":material/menu_book:"),
    st.Page("app_pages/studies.py", title="Studies", icon=":material/science:"),
]

st.navigation(PAGES).run()
