"""Studies: the built-in ones as data, a study file, the plan's counts and costs, the MFU it reads, and every
built-in study at smoke scale end to end through the local executor (run, report, re-run runs nothing new)."""

import json
import os
from pathlib import Path

import pytest

from harness import plugins
from harness.errors import UserError
from harness.store.db import Store
from harness.study.file import get_study, load_study_file
from harness.study.plan import ASSUMED_MFU, compute_on, measured_mfu, plan_study
from harness.study.report import Value, verdict
from harness.study.spec import parse_only, study_cells
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "studies" / "my_study.toml"


def db() -> Store:
    return Store(os.environ["HARNESS_DB"])


def test_lawton_full_plan_counts_every_run_with_its_stages_and_costs():
    plan = plan_study(get_study("lawton2025"), None, "a10").as_dict()
    cells = {c["cell"]: c for c in plan["cells"]}
    assert plan["totals"]["cells"] == 56  # 7 strategies × 4 pipelines × 2 datasets
    # per dataset and pipeline: no_ft 1, ft_embed 9, ft_gen 9, indp 1 (reuses), two_phase 9 + 9, joint 1 + 1
    assert plan["totals"]["runs"] == 8 * (1 + 9 + 9 + 1 + 18 + 1 + 1)
    two_phase = cells["hotpotqa/MiniLM + LLaMA3-8b/two_phase"]
    assert two_phase["runs"] == 18 and "phases=1" in two_phase["stages"]
    assert cells["hotpotqa/MiniLM + LLaMA3-8b/rag_token"]["stages"].endswith("rates from two_phase")
    assert cells["hotpotqa/MiniLM + LLaMA3-8b/no_ft"]["flops"] == 0
    # the generator dominates: a grid of Ft. Gen. costs more than one of Ft. Embed. by orders of magnitude
    assert cells["popqa/MPNet + Mistral-7b/ft_gen"]["flops"] > 100 * cells["popqa/MPNet + Mistral-7b/ft_embed"]["flops"]
    assert two_phase["paper_hours"] == 35.2 and two_phase["paper_gpu_hours"] == 35.2 * 8
    assert plan["totals"]["paper_hours"] == pytest.approx(sum(c["paper_hours"] for c in plan["cells"]))


def test_gpu_hours_follow_the_device_peak_and_the_mfu(tmp_path):
    study = get_study("siriwardhana2021")
    a10, h100 = (plan_study(study, None, d, results=tmp_path / "none.md").totals() for d in ("a10", "h100"))
    assert a10["flops"] == h100["flops"] > 0
    assert a10["gpu_hours"] / h100["gpu_hours"] == pytest.approx(989.4 / 125.0)
    with pytest.raises(UserError, match="--device must be one of"):
        compute_on("b200")


def test_the_mfu_comes_from_the_gpu_check_where_one_is_recorded(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("## The GPU path on a GPU\nno run yet\n")
    assert measured_mfu(results) is None
    compute = compute_on("h100", results)
    assert compute.mfu == ASSUMED_MFU and "assumed" in compute.mfu_source
    results.write_text("## The GPU path on a GPU\nmeasured MFU: 0.41 · device: NVIDIA H100 80GB HBM3 · date: 2026-12-07\n")
    compute = compute_on("a10", results)
    assert compute.mfu == 0.41 and "NVIDIA H100 80GB HBM3" in compute.mfu_source and "2026-12-07" in compute.mfu_source


def test_a_study_file_loads_with_run_config_keys_and_bad_keys_are_one_line(tmp_path):
    study = load_study_file(EXAMPLE)
    assert [s.strategy for s in study.strategies] == ["no_ft", "ft_gen"] and study.seeds == (0, 1)
    assert study.search_seeds == (0,) and study.searched_seeds == (0,)
    assert study.protocol.config["limit"] == 100 and study.strategy("ft_gen").grid == {"gen_lr": [1e-5, 1e-4]}
    smoke = study.at_scale("smoke")
    assert smoke.pipelines[0].generator == "tiny-llama" and smoke.seeds == (0,) and smoke.protocol.config["limit"] == 4
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE.read_text().replace("epochs = 1", "epoch = 1"))
    with pytest.raises(UserError, match="unknown key 'epoch'.*did you mean 'epochs'"):
        load_study_file(bad)


def test_search_seeds_must_be_seeds_the_study_runs(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE.read_text().replace("search_seeds = [0]", "search_seeds = [5]"))
    with pytest.raises(UserError, match=r"search_seeds \[5\] are not among seeds \[0, 1\]"):
        load_study_file(bad)



def test_search_seeds_change_a_study_id_and_studies_without_them_keep_theirs():
    """A study id names the grids its runs are stored under, so a re-run resumes them: adding the field must
    not move the ids of studies that do not set it (these are the ids before `search_seeds` existed)."""
    import dataclasses

    lawton = get_study("lawton2025")
    assert lawton.study_id() == "lawton2025@full-e631592d"
    assert lawton.at_scale("smoke").study_id() == "lawton2025@smoke-16d330c9"
    assert get_study("siriwardhana2021").at_scale("smoke").study_id() == "siriwardhana2021@smoke-d9f50bf3"
    assert dataclasses.replace(lawton, search_seeds=(0,)).study_id() != lawton.study_id()


def test_a_study_searching_on_one_seed_runs_its_winners_on_every_seed(tmp_path, capsys):
    """Select on seed 0, report over seeds 0 and 1: the losing rate runs once, the winner twice, and the
    report's cell is the winner over both seeds; the plan counts exactly the runs made."""
    study_file = tmp_path / "seeds.toml"
    study_file.write_text(EXAMPLE.read_text().replace('seeds = [0]\nlr_values = [1e-3]',
                                                      'seeds = [0, 1]\nsearch_seeds = [0]\nlr_values = [1e-4, 1e-3]'))
    study = load_study_file(study_file).at_scale("smoke")
    assert study.seeds == (0, 1) and study.searched_seeds == (0,)
    assert run_cli(["study", "run", str(study_file), "--scale", "smoke"]) == 0
    runs = db().query("SELECT strategy, seed, config FROM runs WHERE status = 'finished'")
    ft_gen = sorted((json.loads(r["config"])["gen_lr"], r["seed"]) for r in runs if r["strategy"] == "ft_gen")
    assert len(ft_gen) == 3 and {lr for lr, seed in ft_gen if seed == 1} < {1e-4, 1e-3}  # one winner on seed 1
    assert sorted(r["seed"] for r in runs if r["strategy"] == "no_ft") == [0, 1]
    plan = json.loads(_plan_json(str(study_file), capsys))
    assert plan["totals"]["runs"] == plan["totals"]["stored"] == len(runs) == 5
    report = report_json(str(study_file), capsys)
    row = next(r for r in report["rows"] if r["strategy"] == "ft_gen" and r["metric"] == "em")
    assert row["seeds"] == 2 and row["runs"]


def test_only_slices_cells_and_refuses_what_matches_nothing():
    study = get_study("lawton2025")
    cells = study_cells(study, parse_only("dataset=popqa,pipeline=MiniLM + Mistral-7b"))
    assert len(cells) == 7 and {c.dataset.name for c in cells} == {"popqa"}
    with pytest.raises(UserError, match="matches no cell"):
        study_cells(study, parse_only("dataset=nq"))
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_only("popqa")


def test_verdicts():
    ours = Value(30.0, 27.0, 33.0, 1)
    assert [verdict(ours, p) for p in (28.0, 34.0, 20.0, None)] == ["within", "below", "above", "no published value"]
    assert verdict(None, 28.0) == "not run" and verdict(ours, 3.0, "hours") == "not compared"


def test_an_interval_widened_by_the_seeds_stays_a_percentage():
    from harness.study.report import interval

    questions = [{"example_id": f"q{i}", "v": v} for i, v in enumerate([0.0] * 18 + [100.0] * 2)]
    value = interval([0.0, 5.0, 25.0], questions)  # a wide spread over seeds around a mean of 10
    assert value.mean == 10.0 and value.low == 0.0 and 10.0 < value.high <= 100.0
    assert interval([95.0, 100.0, 100.0], [{"example_id": "q", "v": 100.0}]).high == 100.0


def test_dashboard_published_numbers_come_from_the_lawton_study():
    from harness.dashboard import published

    study = get_study("lawton2025")
    row = next(r for r in published.table3_rows() if r["method"] == "2-Phase" and r["dataset"] == "hotpotqa")
    assert study.published_value("two_phase", "hotpotqa", "*", "em").value == row["em"] == 30.0


PLUGIN_STUDY = """
from harness import hookimpl
from harness.study import DatasetAxis, Pipeline, StrategyAxis, Study

@hookimpl
def register_studies(register):
    register(Study("mine", "my study", "", (StrategyAxis("ft_gen", grid={"gen_lr": [1e-4, 1e-3]}),),
                   (DatasetAxis("synthbio", "synthbio:people=40", train_questions=100),),
                   (Pipeline("tiny", "tiny-embedder", "tiny-llama", 1e5, 1e5),), seeds=(0, 1)))
"""


def test_hook_register_studies(clean_plugins, tmp_path, capsys):
    from harness.hookspecs import hookimpl

    assert {"lawton2025", "siriwardhana2021"} <= set(plugins.studies().items)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "my_study.py").write_text(PLUGIN_STUDY)
    capsys.readouterr()
    assert run_cli(["--plugins-dir", str(tmp_path / "plugins"), "study", "plan", "mine", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["totals"]["runs"] == 4 and plan["cells"][0]["cell"] == "synthbio/tiny/ft_gen"
    lawton = get_study("lawton2025")

    class Again:
        @hookimpl
        def register_studies(self, register):
            register(lawton)

    plugins.pm.register(Again(), name="again")
    with pytest.raises(Exception, match="registered twice"):
        plugins.studies()


def report_json(name: str, capsys, *extra: str) -> dict:
    capsys.readouterr()
    assert run_cli(["study", "report", name, "--scale", "smoke", "--format", "json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name", ["lawton2025", "siriwardhana2021", str(EXAMPLE)])
def test_every_study_runs_at_smoke_scale_reports_and_resumes_nothing(name, capsys):
    assert run_cli(["study", "run", name, "--scale", "smoke"]) == 0
    runs = db().query("SELECT id, status, grid_id FROM runs")
    study = get_study(name).at_scale("smoke")
    assert runs and all(r["status"] == "finished" and r["grid_id"].startswith(study.study_id() + "/") for r in runs)
    data = report_json(name, capsys)
    assert "SMOKE SCALE" in data["scale_note"] and data["finished"] == len(runs)
    quality = [r for r in data["rows"] if r["metric"] != "hours"]
    assert quality and all(r["verdict"] != "not run" and r["runs"] for r in quality)
    assert all(c["verdict"] != "not run" for c in data["claims"])
    capsys.readouterr()
    assert run_cli(["study", "report", name, "--scale", "smoke", "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert "SMOKE SCALE" in md and "| claim | verdict | evidence |" in md
    plan = json.loads(_plan_json(name, capsys))
    assert plan["totals"]["stored"] == plan["totals"]["runs"] == len(runs)
    assert run_cli(["study", "run", name, "--scale", "smoke"]) == 0  # again: nothing new runs
    assert len(db().query("SELECT id FROM runs")) == len(runs)


def _plan_json(name: str, capsys) -> str:
    capsys.readouterr()
    assert run_cli(["study", "plan", name, "--scale", "smoke", "--json"]) == 0
    return capsys.readouterr().out


def test_a_slice_runs_its_cells_and_the_cells_whose_rates_they_reuse(capsys):
    assert run_cli(["study", "run", "lawton2025", "--scale", "smoke", "--only", "dataset=popqa,strategy=rag_token"]) == 0
    strategies = sorted({r["strategy"] for r in db().query("SELECT strategy FROM runs")})
    assert strategies == ["rag_token", "two_phase"]
    data = report_json("lawton2025", capsys, "--only", "dataset=popqa")
    ran = {r["strategy"] for r in data["rows"] if r["verdict"] != "not run"}
    assert ran == {"rag_token", "two_phase"}


def test_bad_study_commands_are_one_line_exit_2(capsys):
    for args, needle in ((["study", "plan", "nope"], "unknown study"), (["study", "plan", "lawton2025", "--scale", "huge"],
                         "has no scale 'huge'"), (["study", "plan", "lawton2025", "--device", "b200"], "--device")):
        capsys.readouterr()
        assert run_cli(args) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, err


def test_claims_are_checked_on_the_pipeline_means_with_their_intervals():
    from harness.study.report import CellResult, check_claim
    from harness.study.spec import Claim

    study = get_study("siriwardhana2021")

    def cell(strategy, em, half, hours=1.0):
        c = CellResult("k", strategy, strategy, "squad", "p", ["r"])
        c.values = {"em": Value(em, em - half, em + half, 1), "hours": Value(hours, hours, hours, 1)}
        return c

    beats = Claim("a beats b", "beats", ("rag_end2end", "rag_token"))
    assert check_claim(study, beats, [cell("rag_end2end", 40, 2), cell("rag_token", 28, 2)])["verdict"] == "holds"
    assert check_claim(study, beats, [cell("rag_end2end", 30, 3), cell("rag_token", 28, 3)])["verdict"] == "within noise"
    assert check_claim(study, beats, [cell("rag_end2end", 20, 2), cell("rag_token", 28, 2)])["verdict"] == "fails"
    assert check_claim(study, beats, [cell("rag_end2end", 40, 2)])["verdict"] == "not run"
    matches = Claim("a matches b", "matches", ("rag_token", "rag_end2end"))
    assert check_claim(study, matches, [cell("rag_end2end", 30, 3), cell("rag_token", 28, 3)])["verdict"] == "holds"
    best = Claim("b is best", "best", ("rag_token",))
    result = check_claim(study, best, [cell("rag_end2end", 40, 2), cell("rag_token", 28, 2)])
    assert result["verdict"] == "fails" and "RAG-end2end 40.0" in result["evidence"]
    cheaper = Claim("a is cheaper", "cheaper", ("rag_token", "rag_end2end"))
    assert check_claim(study, cheaper, [cell("rag_end2end", 1, 1, 2.0), cell("rag_token", 1, 1, 1.0)])["verdict"] == "holds"


def test_a_limit_caps_the_training_questions_of_the_flops_estimate():
    from harness.study.plan import run_flops

    study = get_study("lawton2025").at_scale("reduced")
    reduced = plan_study(study, None, "h100").as_dict()
    # a 3-value grid searched on seed 0, each grid's winner then on seeds 1 and 2
    assert reduced["totals"]["runs"] == (1 + 3 + 3 + 1 + 6 + 1 + 1) + 7 * 2 == 30
    cell = next(c for c in study_cells(study) if c.strategy.strategy == "ft_gen")
    assert cell.dataset.train_questions == 1000 and study.protocol.config["limit"] == 20
    one_run = run_flops(cell, {}, 5, 1, 4, limit=20)
    assert run_flops(cell, {}, 5, 1, 4) == pytest.approx(50 * one_run)  # 1000 questions without the limit
    ft_gen = next(c for c in reduced["cells"] if c["strategy"] == "ft_gen")
    assert ft_gen["flops"] == pytest.approx(5 * one_run) and ft_gen["runs"] == 5  # 3 rates on seed 0 + 2 seeds
    full = plan_study(get_study("lawton2025"), None, "h100").totals()
    assert full["flops"] > 1e4 * reduced["totals"]["flops"]
