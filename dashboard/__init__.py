"""The Streamlit leaderboard over the DuckDB store: `harness dashboard` starts it (read-only)."""
