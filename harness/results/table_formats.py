"""Rows as text for machines and documents: CSV, JSON and Markdown (`harness leaderboard --format`).

Every format gets the same rows and columns as the terminal table; numbers stay full precision in CSV and
JSON (a spreadsheet or a script rounds as it likes) and one decimal in Markdown (a document shows them).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence

FORMATS = ("table", "csv", "json", "markdown")


def rows_as_text(rows: Sequence[dict], columns: Sequence[str], fmt: str, integers: Sequence[str] = ()) -> str:
    """`rows` (dicts) restricted to `columns`, as csv, json or markdown text ending in a newline; the
    `integers` columns (counts) as whole numbers."""
    rows = [{**row, **{c: round(row[c]) for c in integers if _plain(row.get(c)) is not None}} for row in rows]
    if fmt == "csv":
        return _csv(rows, columns)
    if fmt == "json":
        return json.dumps([{c: _plain(row.get(c)) for c in columns} for row in rows], indent=1, default=str) + "\n"
    if fmt == "markdown":
        return _markdown(rows, columns)
    raise ValueError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")


def _plain(value):
    """None for missing or NaN values (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _csv(rows: Sequence[dict], columns: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if _plain(row.get(c)) is None else row.get(c) for c in columns])
    return out.getvalue()


def _markdown(rows: Sequence[dict], columns: Sequence[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    value = _plain(value)
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value).replace("|", "\\|")
