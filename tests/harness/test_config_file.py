"""Config files for `harness run` and `harness grid`, and `harness show --config`, through the real entry point."""

import json
import os
from pathlib import Path

import pytest

from harness.config import RunConfig
from harness.config_file import load_grid_file, load_run_file
from harness.store.db import Store
from tests.conftest import run_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "configs"


def db() -> Store:
    return Store(os.environ["HARNESS_DB"])


def tiny_toml(data_dir: Path, strategy: str = "ft_gen", extra: str = "") -> str:
    return (f'strategy = "{strategy}"\ndataset = "local"\ndata_dir = "{data_dir}"\nembedder = "tiny-embedder"\n'
            f'generator = "tiny-llama"\nmax_new_tokens = 4\n{extra}')


def assert_one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize("path", sorted(EXAMPLES.iterdir()), ids=lambda p: p.name)
def test_every_example_config_parses_and_validates(path):
    from harness import plugins
    from harness.grid.plan import plan_grid
    from harness.runner.assemble import resolve

    plugins.load_plugins()
    if path.name.startswith("grid_"):
        values, grid = load_grid_file(path)
        cfg = RunConfig(**values)
        plan = plan_grid(resolve(cfg).strategy_cls, grid.get("lr_grid"),
                         {k: grid.get(k) for k in ("embed_lr", "gen_lr")}, None, grid.get("lrs_from"))
        assert plan.n_cells() > 1
    else:
        cfg = RunConfig(**load_run_file(path))
        resolved = resolve(cfg)  # every name known, strategy options parsed into the strategy's Options
        assert resolved.strategy_cls.name == cfg.strategy == path.stem


def test_config_file_run_and_show_config_round_trip(tiny_data, tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text(tiny_toml(tiny_data, extra="gen_lr = 3e-3\neval_splits = [\"test\"]\n"))
    assert run_cli(["run", "--config", str(config)]) == 0
    [run] = db().query("SELECT * FROM runs")
    stored = json.loads(run["config"])
    assert (stored["strategy"], stored["gen_lr"], stored["eval_splits"]) == ("ft_gen", 3e-3, ["test"])
    capsys.readouterr()

    assert run_cli(["show", run["id"][:6], "--config"]) == 0
    shown = capsys.readouterr().out
    again = tmp_path / "again.toml"
    again.write_text(shown)
    assert RunConfig(**load_run_file(again)).to_dict() == stored
    assert run_cli(["run", "--config", str(again)]) == 0  # the same config and code: the same run key
    assert "already stored" in capsys.readouterr().out
    assert len(db().query("SELECT id FROM runs")) == 1


def test_flags_given_override_the_file_and_options_merge(tiny_data, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(f"strategy: rag_token\ndataset: local\ndata_dir: {tiny_data}\nembedder: tiny-embedder\n"
                      "generator: tiny-llama\nmax_new_tokens: 4\ngen_lr: 1e-4\nepochs: 2\nlimit: 2\n"
                      "strategy_options:\n  micro_batch: 2\n")
    assert run_cli(["run", "--config", str(config), "--epochs", "1", "--gen-lr", "2e-4", "--seed", "3"]) == 0
    stored = json.loads(db().query("SELECT config FROM runs")[0]["config"])
    # given flags win; the file wins over flags left at their defaults (max_new_tokens, limit, options)
    assert (stored["epochs"], stored["gen_lr"], stored["seed"]) == (1, 2e-4, 3)
    assert (stored["max_new_tokens"], stored["limit"], stored["strategy_options"]) == (4, 2, {"micro_batch": 2})
    assert run_cli(["run", "--config", str(config), "--epochs", "1", "--set", "micro_batch=0"]) == 0
    latest = db().query("SELECT config FROM runs ORDER BY started_at DESC LIMIT 1")[0]["config"]
    assert json.loads(latest)["strategy_options"] == {"micro_batch": "0"}


def test_yaml_reads_exponents_without_a_dot_as_numbers(tmp_path):
    config = tmp_path / "run.yml"
    config.write_text("strategy: ft_gen\ngen_lr: 1e-5\n")  # YAML 1.1 alone would read '1e-5' as a string
    assert load_run_file(config)["gen_lr"] == 1e-5


@pytest.mark.parametrize("name, text, needles", [
    ("a.toml", 'strategy = "ft_gen"\ngen_lrr = 1e-5\n', ["a.toml", "unknown key 'gen_lrr'", "did you mean 'gen_lr'"]),
    ("b.yaml", "strategy: ft_gen\nepochs: two\n", ["b.yaml", "key 'epochs' must be an integer", '"two"']),
    ("c.toml", "epochs = 1.5\n", ["c.toml", "key 'epochs' must be an integer"]),
    ("d.toml", "gen_lr = true\n", ["d.toml", "key 'gen_lr' must be a finite number"]),
    ("e.toml", 'eval_splits = "test"\n', ["e.toml", "key 'eval_splits' must be a list of strings"]),
    ("f.toml", 'strategy = "jsa_rag"\n[strategy_options]\nproposalz = 8\n',
     ["f.toml", "has no option 'proposalz'", "strategy_options.proposalz", "proposals"]),
    ("g.toml", 'strategy = "jsa_rag"\n[strategy_options]\nproposals = 2.5\n',
     ["g.toml", "key 'strategy_options.proposals' must be an integer"]),
    ("h.toml", 'strategy = "ft_gen\n', ["h.toml", "invalid TOML", "line 1"]),
    ("i.yaml", "strategy: [ft_gen\n", ["i.yaml", "invalid YAML at line"]),
    ("j.yaml", "- ft_gen\n", ["j.yaml", "a config file is a table"]),
    ("k.json", "{}", ["k.json", ".toml, .yaml or .yml"]),
    ("l.toml", "gen_lr = -1e-5\n", ["--gen-lr must be a finite number > 0"]),
])
def test_bad_config_files_are_one_line_naming_file_and_key(tmp_path, capsys, name, text, needles):
    path = tmp_path / name
    path.write_text(text)
    assert run_cli(["run", "--config", str(path)]) == 2
    assert_one_line_error(capsys, *needles)
    assert db().query("SELECT id FROM runs") == []


def test_missing_config_file(tmp_path, capsys):
    assert run_cli(["run", "--config", str(tmp_path / "nope.toml")]) == 2
    assert_one_line_error(capsys, "nope.toml: config file not found")


def test_grid_config_file_runs_its_cells(tiny_data, tmp_path, capsys):
    config = tmp_path / "grid.toml"
    config.write_text(tiny_toml(tiny_data, extra="gen_lr = [1e-4, 1e-3]\neval_splits = [\"dev\"]\n"))
    assert run_cli(["grid", "--config", str(config)]) == 0
    rates = sorted(json.loads(r["config"])["gen_lr"] for r in db().query("SELECT config FROM runs"))
    assert rates == [1e-4, 1e-3]
    out = capsys.readouterr().out
    assert "grid of 2 cells for ft_gen" in out
    assert out.strip().splitlines()[-1].startswith("next: harness show ")  # the selected run, then where to look
    assert run_cli(["grid", "--config", str(config), "--gen-lr", "3e-4"]) == 0  # the flag replaces the file's list
    assert "grid of 1 cells" in capsys.readouterr().out


def test_bad_grid_file_names_file_and_key(tmp_path, capsys):
    path = tmp_path / "grid.yaml"
    path.write_text("strategy: ft_gen\ngen_lr: [1e-4, -1]\n")
    assert run_cli(["grid", "--config", str(path)]) == 2
    assert_one_line_error(capsys, "grid.yaml: key 'gen_lr' must list learning rates > 0")
    path.write_text("strategy: ft_gen\nlr_grid: papers\n")
    assert run_cli(["grid", "--config", str(path)]) == 2
    assert_one_line_error(capsys, "grid.yaml: key 'lr_grid' must be one of paper")
