"""Learning-rate grids: parsing, planning (one rate, staged, product, reused), selection on dev reported on
test, one grid id for every stored cell, resuming, and every bad input as one line with exit code 2."""

import json
import os

import pytest

from harness import plugins
from harness.config import PAPER_GRID
from harness.errors import UserError
from harness.grid.plan import parse_lr_list, plan_grid
from harness.hookspecs import hookimpl
from harness.store.db import Store
from tests.conftest import run_cli, tiny_run_args


def grid_args(data_dir, strategy, *extra):
    return ["grid", *tiny_run_args(data_dir, strategy)[1:], *extra]


def db() -> Store:
    return Store(os.environ["HARNESS_DB"])


def strategy(name):
    plugins.load_plugins()
    return plugins.strategies().get(name)


# -- parsing and planning -------------------------------------------------------------------------
def test_parse_lr_list_keeps_order_and_drops_repeats():
    assert parse_lr_list("1e-5, 3e-6,1e-5", "--gen-lr") == [1e-5, 3e-6]
    assert parse_lr_list(None, "--gen-lr") is None


@pytest.mark.parametrize("text, needle", [("", "no values"), (" , ", "no values"), ("abc", "not a number"),
                                          ("0", "> 0"), ("-1e-5", "> 0"), ("1e-5,nan", "> 0"), ("inf", "> 0")])
def test_parse_lr_list_rejects_bad_input(text, needle):
    with pytest.raises(UserError, match=needle):
        parse_lr_list(text, "--embed-lr")


def test_single_rate_strategies_search_their_own_rate():
    plan = plan_grid(strategy("ft_gen"), "paper")
    assert plan.values == {"gen_lr": list(PAPER_GRID)} and plan.n_cells() == 9
    plan = plan_grid(strategy("ft_embed"), None, {"embed_lr": [1e-6, 1e-5]})
    assert plan.values == {"embed_lr": [1e-6, 1e-5]} and plan.n_cells() == 2


def test_two_phase_searches_each_phase_on_its_own():
    plan = plan_grid(strategy("two_phase"), "paper")
    assert [(s.searched, s.options) for s in plan.stages] == [(["gen_lr"], {"phases": "1"}), (["embed_lr"], {})]
    assert plan.n_cells() == 18  # 9 + 9, not 81


def test_joint_strategies_grid_both_or_reuse_fixed_rates():
    plan = plan_grid(strategy("rag_token"), "paper")
    assert plan.n_cells() == 81 and [s.searched for s in plan.stages] == [["embed_lr", "gen_lr"]]
    plan = plan_grid(strategy("rag_token"), None, None, {"embed_lr": 3e-8, "gen_lr": 1e-5}, "two_phase")
    assert plan.n_cells() == 1 and plan.fixed == {"embed_lr": 3e-8, "gen_lr": 1e-5}
    plan = plan_grid(strategy("rag_token"), None, {"gen_lr": [1e-4, 1e-3]}, {"embed_lr": 3e-8, "gen_lr": 1e-5}, "two_phase")
    assert plan.values == {"gen_lr": [1e-4, 1e-3]} and plan.fixed == {"embed_lr": 3e-8}


def test_a_rate_given_only_for_one_phase_runs_whole_cells():
    plan = plan_grid(strategy("two_phase"), None, {"gen_lr": [1e-4, 1e-3]})
    assert [(s.searched, s.options) for s in plan.stages] == [(["gen_lr"], {})]
    assert plan.fixed == {"embed_lr": None}


@pytest.mark.parametrize("name, args, needle", [
    ("no_ft", ("paper",), "no learning rate"),
    ("ft_embed", (None, {"gen_lr": [1e-5]}), "no gen learning rate"),
    ("ft_gen", (None,), "nothing to search"),
    ("rag_token", ("paper", None, {"embed_lr": 1e-7, "gen_lr": 1e-5}, "two_phase"), "give one of the two"),
])
def test_plans_that_cannot_work_are_refused(name, args, needle):
    with pytest.raises(UserError, match=needle):
        plan_grid(strategy(name), *args)


# -- selection on dev ------------------------------------------------------------------------------
class LrOracle:
    """Answers dev right at gen_lr 1e-3 and test right at gen_lr 1e-4: a grid must pick 1e-3."""

    name = "lr_oracle"
    citation = "test double"
    needs_context_labels = False
    description = "test double"
    learning_rates = {"gen_lr": 1e-3}

    def fit(self, ctx):
        good = {"dev": 1e-3, "test": 1e-4}
        golds = {ex.question: ex.answers[0] for split, lr in good.items() if ctx.config.gen_lr == lr
                 for ex in ctx.dataset.split(split)}
        ctx.pipeline.generator.generate = lambda prompts, *a, **k: [
            next((answer for q, answer in golds.items() if q in p), "no idea") for p in prompts]


class SeedOneFails(LrOracle):
    """The oracle, except that every run on seed 1 raises."""

    name = "seed_one_fails"

    def fit(self, ctx):
        if ctx.config.seed == 1:
            raise RuntimeError("diverged on seed 1")
        super().fit(ctx)


class OraclePlugin:
    @hookimpl
    def register_strategies(self, register):
        register(LrOracle)
        register(SeedOneFails)


@pytest.fixture
def oracle(clean_plugins):
    clean_plugins.pm.register(OraclePlugin(), name="test-lr-oracle")
    yield


def test_a_two_cell_grid_selects_on_dev_and_reports_test(oracle, tiny_data, capsys):
    assert run_cli(grid_args(tiny_data, "lr_oracle", "--gen-lr", "1e-4,1e-3")) == 0
    out = capsys.readouterr().out
    runs = db().query("SELECT id, grid_id, config FROM runs WHERE status = 'finished'")
    assert len(runs) == 2 and len({r["grid_id"] for r in runs}) == 1 and runs[0]["grid_id"].startswith("grid-")
    by_lr = {json.loads(r["config"])["gen_lr"]: r["id"] for r in runs}
    assert db().run_metrics(by_lr[1e-3])["dev"]["em"] == 100 and db().run_metrics(by_lr[1e-4])["test"]["em"] == 100
    assert f"selected run {by_lr[1e-3]}" in out and "test EM 0.0" in out  # dev chooses; test is what it reports


def test_rerunning_a_grid_resumes_under_the_same_id(oracle, tiny_data, capsys):
    assert run_cli(grid_args(tiny_data, "lr_oracle", "--gen-lr", "1e-4,1e-3")) == 0
    assert run_cli(grid_args(tiny_data, "lr_oracle", "--gen-lr", "1e-4,1e-3")) == 0
    assert "skipped" in capsys.readouterr().out
    runs = db().query("SELECT grid_id FROM runs")
    assert len(runs) == 2 and len({r["grid_id"] for r in runs}) == 1


def test_search_seeds_select_on_one_seed_then_run_the_winner_on_the_others(oracle, tiny_data, capsys):
    args = grid_args(tiny_data, "lr_oracle", "--gen-lr", "1e-4,1e-3", "--seeds", "0,1", "--search-seeds", "0")
    assert run_cli(args) == 0
    out = capsys.readouterr().out
    runs = db().query("SELECT id, seed, grid_id, config FROM runs WHERE status = 'finished' ORDER BY seed")
    cells = sorted((json.loads(r["config"])["gen_lr"], r["seed"]) for r in runs)
    assert cells == [(1e-4, 0), (1e-3, 0), (1e-3, 1)]  # the loser on seed 0 only, the winner on both
    assert len({r["grid_id"] for r in runs}) == 1
    assert "on seed(s) [0], the selected cell on [0, 1]" in out and "selected run" in out
    assert run_cli(args) == 0 and len(db().query("SELECT id FROM runs")) == 3  # a re-run adds nothing


def test_a_winner_that_fails_on_a_further_seed_is_one_line(oracle, tiny_data, capsys):
    args = grid_args(tiny_data, "seed_one_fails", "--gen-lr", "1e-4,1e-3", "--seeds", "0,1", "--search-seeds", "0")
    assert run_cli(args) == 2
    err = capsys.readouterr().err
    said = [line for line in err.splitlines() if not line.startswith("[progress]")]
    assert said == [f"error: grid {said[0].split()[2]} the selected cell failed on seed(s) [1]: strategy "
                    "'seed_one_fails' (plugin test-lr-oracle) raised RuntimeError: diverged on seed 1"]
    statuses = sorted((r["seed"], r["status"]) for r in db().query("SELECT seed, status FROM runs"))
    assert statuses == [(0, "finished"), (0, "finished"), (1, "failed")]  # the search's runs are kept


@pytest.mark.parametrize("extra, needle", [
    (("--search-seeds", "0"), "--search-seeds needs --seeds"),
    (("--seeds", "0,1", "--search-seeds", "2"), "--search-seeds 2: not among --seeds 0,1"),
])
def test_search_seeds_outside_seeds_are_refused(oracle, tiny_data, capsys, extra, needle):
    assert run_cli(grid_args(tiny_data, "lr_oracle", "--gen-lr", "1e-4,1e-3", *extra)) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert db().query("SELECT id FROM runs") == []


def test_two_phase_grid_then_rag_token_reuses_its_winners(tiny_data, capsys):
    args = grid_args(tiny_data, "two_phase", "--gen-lr", "1e-4,1e-3", "--embed-lr", "1e-5,1e-4")
    assert run_cli(args) == 0
    runs = db().query("SELECT id, grid_id, config FROM runs WHERE strategy = 'two_phase' ORDER BY started_at")
    configs = [json.loads(r["config"]) for r in runs]
    assert len(runs) == 4 and len({r["grid_id"] for r in runs}) == 1
    stage1, stage2 = configs[:2], configs[2:]
    # stage 1 searches gen_lr only; its cells store the embed_lr they ran with, two_phase's default
    from harness.builtins.strategies.two_phase import TwoPhase

    default_embed_lr = TwoPhase.learning_rates["embed_lr"]
    assert all(c["strategy_options"] == {"phases": "1"} and c["embed_lr"] == default_embed_lr for c in stage1)
    winner = max(zip(runs[:2], stage1), key=lambda rc: (db().run_metrics(rc[0]["id"])["dev"]["em"],
                                                         db().run_metrics(rc[0]["id"])["dev"]["f1"]))[1]["gen_lr"]
    assert [c["gen_lr"] for c in stage2] == [winner, winner] and [c["embed_lr"] for c in stage2] == [1e-5, 1e-4]
    assert all(c["strategy_options"] == {} for c in stage2)
    capsys.readouterr()
    assert run_cli(grid_args(tiny_data, "rag_token", "--lrs-from", "two_phase")) == 0
    [joint] = [json.loads(r["config"]) for r in db().query("SELECT config FROM runs WHERE strategy = 'rag_token'")]
    assert joint["gen_lr"] == winner and joint["embed_lr"] in (1e-5, 1e-4)


@pytest.mark.parametrize("extra, needle", [
    (("--embed-lr", "0"), "> 0"),
    (("--embed-lr", "-3e-7"), "> 0"),
    (("--gen-lr", "fast"), "not a number"),
    (("--gen-lr", ","), "no values"),
    (("--gen-lr", ""), "no values"),
    (("--lrs-from", "two_phase"), "no finished two_phase grid"),
    (("--lr-grid", "paper", "--lrs-from", "two_phase"), "give one of the two"),
    ((), "nothing to search"),
])
def test_bad_grids_are_one_line_exit_2_and_store_nothing(tiny_data, capsys, extra, needle):
    assert run_cli(grid_args(tiny_data, "rag_token", *extra)) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err, err
    assert db().query("SELECT id FROM runs") == []


def test_an_unknown_lr_grid_and_a_strategy_without_rates_are_refused(tiny_data, capsys):
    assert run_cli(grid_args(tiny_data, "ft_gen", "--lr-grid", "huge")) == 2
    assert run_cli(grid_args(tiny_data, "no_ft", "--lr-grid", "paper")) == 2
    assert "no learning rate" in capsys.readouterr().err
    assert db().query("SELECT id FROM runs") == []


# -- seeds and FLOP budgets ---------------------------------------------------------------------------
def test_run_with_seeds_stores_one_run_per_seed_and_prints_mean_and_std(tiny_data, capsys):
    assert run_cli(tiny_run_args(tiny_data, "ft_gen", "--seeds", "0,1", "--eval-splits", "dev")) == 0
    out = capsys.readouterr().out
    store = Store(os.environ["HARNESS_DB"])
    runs = store.query("SELECT seed, config FROM runs WHERE status = 'finished' ORDER BY seed")
    assert [r["seed"] for r in runs] == [0, 1] and "mean ± std over 2 seeds" in out
    assert run_cli(tiny_run_args(tiny_data, "ft_gen", "--seeds", "0,x")) == 2
    assert "--seeds takes comma-separated integers" in capsys.readouterr().err
    assert run_cli(tiny_run_args(tiny_data, "ft_gen", "--seeds", "0,1", "--seed", "3")) == 2
    assert "give --seed or --seeds, not both" in capsys.readouterr().err


def test_grid_over_seeds_and_budgets_runs_every_cell_per_seed_and_budget(tiny_data, capsys):
    args = ["grid", "--plugin", "ft_gen", "--dataset", "local", "--data-dir", str(tiny_data), "--embedder",
            "tiny-embedder", "--generator", "tiny-llama", "--max-new-tokens", "2", "--batch-size", "2",
            "--eval-splits", "dev", "--seeds", "0,1", "--budgets", "1e20,1e8"]
    assert run_cli(args) == 0
    out = capsys.readouterr().out
    runs = Store(os.environ["HARNESS_DB"]).query("SELECT id, seed, grid_id, config FROM runs WHERE status = 'finished'")
    budgets = sorted({json.loads(r["config"])["max_train_flops"] for r in runs})
    assert budgets == [1e8, 1e20] and len(runs) == 4 and sorted(r["seed"] for r in runs) == [0, 0, 1, 1]
    assert len({r["grid_id"] for r in runs}) == 2  # one grid per budget
    steps = {r["id"]: Store(os.environ["HARNESS_DB"]).query(
        "SELECT count(DISTINCT step) AS n FROM train_log WHERE run_id = ? AND name = 'loss'", [r["id"]])[0]["n"]
        for r in runs}
    # 6 questions in batches of 2: the small budget (above the setup's retrieval, ~2e6 on the tiny models, below
    # it plus one step) stops after one step, the large one runs all 3
    for r in runs:
        assert steps[r["id"]] == (1 if json.loads(r["config"])["max_train_flops"] == 1e8 else 3)
    assert "budget 1e+08 FLOPs" in out and "× 2 seeds × 2 FLOP budgets" in out


def test_cell_metrics_are_the_mean_over_seeds():
    from harness.grid.plan import mean_metrics

    merged = mean_metrics([{"dev": {"em": 10.0, "f1": 20.0}}, {"dev": {"em": 30.0}}])
    assert merged == {"dev": {"em": 20.0, "f1": 20.0}}


def test_selection_compares_cells_only_within_one_evaluation_set():
    """A cell reused from a store where the data changed under the same folder (another dev set) never wins,
    however high its dev EM: selection is within the set most cells were scored on."""
    from harness.grid.plan import Cell, select_best

    def cell(em: float, eval_set: str) -> Cell:
        return Cell(0, {"gen_lr": em}, status="finished", metrics={"dev": {"em": em, "f1": em}}, eval_set=eval_set)

    other = cell(90.0, "es-other")
    cells = [cell(40.0, "es-a"), other, cell(55.0, "es-a"), cell(50.0, "es-a")]
    assert select_best(cells).metrics["dev"]["em"] == 55.0
    assert select_best([other]) is other


def test_selection_is_the_same_in_any_order_when_scores_tie():
    """Two readers that list a grid's cells in different orders (the driver in grid order, `--lrs-from` by
    finish time) select the same run."""
    from harness.grid.plan import Cell, select_best

    tied = {"dev": {"em": 50.0, "f1": 60.0}}
    cells = [Cell(1, {"gen_lr": lr}, run_id, "finished", tied) for lr, run_id in
             ((1e-3, "0000000000aa"), (1e-4, "ffffffffff00"), (1e-2, "000000000001"))]
    cells.append(Cell(1, {"gen_lr": 1e-1}, "0000000000bb", "finished", {"dev": {"em": 50.0, "f1": 10.0}}))
    picks = {select_best(order).run_id for order in (cells, cells[::-1], cells[1:] + cells[:1])}
    assert picks == {"ffffffffff00"}  # the smallest rate among the best (EM, F1)
