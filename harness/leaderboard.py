"""Leaderboard rows from the store: one per finished run (or the latest per configuration)."""

from __future__ import annotations

import json

from harness.store import Store


def leaderboard_rows(store: Store, split: str = "test", latest_only: bool = True) -> list[dict]:
    rows = []
    seen: set[str] = set()
    for run in reversed(store.finished_runs()):  # newest first
        config = json.loads(run["config"]) if isinstance(run["config"], str) else run["config"]
        identity = json.dumps({k: v for k, v in config.items()}, sort_keys=True)
        if latest_only and identity in seen:
            continue
        seen.add(identity)
        row = {key: run[key] for key in ("id", "strategy", "dataset", "embedder", "generator", "seed", "grid_id")}
        for key, value in run.items():
            if key.startswith(f"{split}/"):
                row[key.split("/", 1)[1]] = value
            elif key.startswith("cost/"):
                row[key.split("/", 1)[1]] = value
        rows.append(row)
    return sorted(rows, key=lambda r: -(r.get("em") or 0.0))
