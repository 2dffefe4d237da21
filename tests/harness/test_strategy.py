"""The strategy contract (harness/strategy.py): checked at registration, defaults resolved into the stored config."""

import json
import textwrap

import pytest

from harness.config import RunConfig
from harness.strategy import contract_problems, resolve_defaults
from tests.conftest import run_cli, tiny_run_args

BROKEN = '''
from harness.hookspecs import hookimpl

class HalfDone:
    name = "half_done"
    needs_context_labels = False
    learning_rates = ("gen_lr",)  # the old form: names without defaults
    def fit(self, ctx):
        pass

@hookimpl
def register_strategies(register):
    register(HalfDone)
'''


def test_every_builtin_strategy_satisfies_the_contract(clean_plugins):
    reg = clean_plugins.strategies()
    assert len(reg.items) >= 10
    assert reg.problems == {}
    for cls in reg.items.values():
        assert contract_problems(cls) == []


def test_contract_problems_name_what_is_missing():
    class Nothing:
        pass

    problems = contract_problems(Nothing)
    for attr in ("name", "citation", "description", "needs_context_labels", "learning_rates", "fit(ctx)"):
        assert any(f"`{attr}" in p for p in problems), (attr, problems)

    class BadRate:
        name, citation, description, needs_context_labels = "x", "c", "d", False
        learning_rates = {"lora_lr": 1e-3}

        def fit(self, ctx):
            pass

    assert contract_problems(BadRate) == ["`learning_rates` keys among embed_lr, gen_lr with defaults > 0"]


def test_defaults_fill_only_what_the_user_left_unset():
    class Joint:
        learning_rates = {"embed_lr": 1e-6, "gen_lr": 1e-3}

        @staticmethod
        def run_defaults(options):
            return {"batch_size": 8}

    resolved = resolve_defaults(RunConfig(gen_lr=5e-4), Joint, None)
    assert (resolved.embed_lr, resolved.gen_lr, resolved.batch_size) == (1e-6, 5e-4, 8)
    resolved = resolve_defaults(RunConfig(batch_size=2), Joint, None)
    assert resolved.batch_size == 2

    class GenOnly:
        learning_rates = {"gen_lr": 1e-3}

    resolved = resolve_defaults(RunConfig(), GenOnly, None)
    assert (resolved.embed_lr, resolved.gen_lr, resolved.batch_size) == (None, 1e-3, 4)  # a rate it does not take


def test_a_run_on_defaults_stores_the_learning_rates_it_used(clean_plugins, tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DB", str(tmp_path / "h.duckdb"))
    from harness.builtins.strategies.rag_token import DEFAULT_EMBED_LR, DEFAULT_GEN_LR
    from harness.store.db import Store

    assert run_cli(tiny_run_args(tiny_data, "rag_token", "--limit", "2")) == 0
    [run] = Store(str(tmp_path / "h.duckdb")).query("SELECT config FROM runs")
    config = json.loads(run["config"])
    assert (config["embed_lr"], config["gen_lr"], config["batch_size"]) == (DEFAULT_EMBED_LR, DEFAULT_GEN_LR, 4)


def test_plugins_reports_a_third_party_strategy_that_breaks_the_contract(clean_plugins, tmp_path, capsys,
                                                                          tiny_data, monkeypatch):
    monkeypatch.setenv("HARNESS_DB", str(tmp_path / "h.duckdb"))
    folder = tmp_path / "local_plugins"
    folder.mkdir()
    (folder / "half_done.py").write_text(textwrap.dedent(BROKEN))
    assert run_cli(["--plugins-dir", str(folder), "plugins"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "break the contract" in out and "half_done" in out
    for missing in ("`citation`", "`description`", "`learning_rates` (a dict"):
        assert missing in out, out

    with pytest.raises(SystemExit) as exit_info:
        from harness.cli import main

        main(["--plugins-dir", str(folder), *tiny_run_args(tiny_data, "half_done")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not satisfy the strategy contract" in err[0] and "`citation`" in err[0]
