"""Grid cells, best-cell selection, the paired bootstrap and the Pareto front (harness.leaderboard)."""

import json

import numpy as np

from harness.results.leaderboard import (
    best_cells,
    earlier_stage_options,
    grid_cell,
    latest_per_seed,
    pareto_front,
    ranking,
)


def run(run_id, seed=0, gen_lr=1e-5, strategy="ft_gen", dev_em=None, dev_f1=None, options=None):
    config = {"strategy": strategy, "dataset": "d", "embedder": "e", "generator": "g", "seed": seed, "gen_lr": gen_lr,
              "strategy_options": options or {}}
    return {"id": run_id, "config": json.dumps(config), "seed": seed, "strategy": strategy, "dataset": "d",
            "embedder": "e", "generator": "g", "dev/em": dev_em, "dev/f1": dev_f1}


def test_a_cell_is_the_config_without_its_seed():
    assert grid_cell(run("a", seed=0)) == grid_cell(run("b", seed=1))
    assert grid_cell(run("a", gen_lr=1e-5)) != grid_cell(run("b", gen_lr=3e-5))


def test_a_rerun_replaces_the_older_run_of_its_cell_and_seed():
    assert [r["id"] for r in latest_per_seed([run("old"), run("other", seed=1), run("new")])] == ["new", "other"]


def test_best_cell_by_mean_dev_over_seeds():
    runs = [run("a0", 0, 1e-5, dev_em=50), run("a1", 1, 1e-5, dev_em=10),  # mean 30
            run("b0", 0, 3e-5, dev_em=40), run("b1", 1, 3e-5, dev_em=36),  # mean 38
            run("c0", 0, 1e-5, strategy="no_ft", dev_em=5)]
    chosen = {cell[0]["strategy"]: [r["id"] for r in cell] for cell in best_cells(runs)}
    assert chosen == {"ft_gen": ["b0", "b1"], "no_ft": ["c0"]}


def test_best_cell_ties_go_to_more_seeds_then_newest():
    runs = [run("a0", 0, 1e-5, dev_em=30), run("b0", 0, 3e-5, dev_em=30), run("b1", 1, 3e-5, dev_em=30),
            run("c0", 0, 1e-4, dev_em=30), run("c1", 1, 1e-4, dev_em=30)]
    assert [r["id"] for r in best_cells(runs)[0]] == ["c0", "c1"]


def test_best_cell_ties_on_em_go_to_f1_as_the_grid_selects():
    runs = [run("a0", 0, 1e-5, dev_em=30, dev_f1=40), run("b0", 0, 3e-5, dev_em=30, dev_f1=45),
            run("c0", 0, 1e-4, dev_em=30, dev_f1=41)]
    assert [r["id"] for r in best_cells(runs)[0]] == ["b0"]


def test_earlier_stage_cells_never_stand_for_the_strategy():
    class TwoPhase:
        lr_stages = (("gen_lr", {"phases": "1"}), ("embed_lr", {}))

    earlier = earlier_stage_options({"two_phase": TwoPhase, "ft_gen": object})
    assert earlier == {"two_phase": [{"phases": "1"}], "ft_gen": []}
    runs = [run("stage1", 0, 1e-5, strategy="two_phase", dev_em=90, options={"phases": 1}),
            run("full", 0, 3e-5, strategy="two_phase", dev_em=40)]
    assert [r["id"] for r in best_cells(runs, earlier_options=earlier)[0]] == ["full"]
    assert [r["id"] for r in best_cells(runs)[0]] == ["stage1"]


def test_equal_scores_rank_the_same_whatever_order_the_runs_come_in():
    runs = [{**run(f"{name}0", strategy=name, dev_em=30), "test/em": 50.0, "test/f1": 60.0, "eval_set/test": "es"}
            for name in ("rag_token", "jsa_rag", "ft_gen")]
    scores = {r["id"]: {"q1": (100.0, 100.0), "q2": (0.0, 20.0)} for r in runs}
    forward, backward = ranking(runs, scores), ranking(runs[::-1], scores)
    assert [r["id"] for r in forward] == [r["id"] for r in backward] == ["ft_gen0", "jsa_rag0", "rag_token0"]
    assert [r["vs_best"] for r in forward] == [r["vs_best"] for r in backward]
    assert forward[0]["vs_best"] == "★ best" and forward[1]["vs_best"].startswith("≈ tied")


def test_paired_bootstrap():
    from harness.metrics import paired_bootstrap

    rng = np.random.default_rng(0)
    a = (rng.random(300) < 0.6).astype(float)
    assert paired_bootstrap(a, a) == 1.0
    assert paired_bootstrap(a, np.zeros(300)) < 0.001
    noisy = a.copy()
    noisy[:3] = 1 - noisy[:3]
    assert paired_bootstrap(a, noisy) > 0.2
    assert np.isnan(paired_bootstrap([], []))


def test_pareto_front():
    points = [(0, 10), (100, 60), (300, 50), (500, 54), (50, 60), (0, 5)]
    assert pareto_front(points) == [0, 4]
