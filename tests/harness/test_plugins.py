"""Plugin discovery: built-ins, entry points, --plugins-dir, the allowlist, and loud failures."""

import textwrap

import pytest

from harness.errors import PluginError, UserError
from harness.hookspecs import hookimpl
from tests.conftest import run_cli

STRATEGY_SOURCE = '''
from harness.hookspecs import hookimpl

class {cls}:
    name = "{name}"
    citation = "test"
    needs_context_labels = False
    description = "test double"
    learning_rates = dict()
    def fit(self, ctx):
        pass

@hookimpl
def register_strategies(register):
    register({cls})
'''


def make_distribution(root, dist_name, ep_name, module_name, source):
    """A real installed distribution on sys.path: module + dist-info with an entry point."""
    (root / f"{module_name}.py").write_text(source)
    info = root / f"{dist_name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[harness]\n{ep_name} = {module_name}\n")


def test_builtins_register_through_the_manager(clean_plugins):
    names = {p["name"]: p for p in clean_plugins.plugin_info()}
    assert names["harness.builtins.strategies.no_ft"]["origin"] == "builtin"
    assert names["harness.builtins.strategies.no_ft"]["hooks"] == ["register_strategies"]
    assert "no_ft" in clean_plugins.strategies().items
    assert {"minilm", "tiny-embedder", "hf:"} <= set(clean_plugins.models()["embedder"].items)


def test_entry_point_plugin_is_discovered(clean_plugins, tmp_path, monkeypatch, capsys):
    make_distribution(tmp_path, "harness_ep_demo", "ep_demo", "harness_ep_demo_mod",
                      STRATEGY_SOURCE.format(cls="EpDemo", name="ep_demo"))
    monkeypatch.syspath_prepend(str(tmp_path))
    clean_plugins._load_entry_points()
    assert "ep_demo" in clean_plugins.strategies().items
    assert run_cli(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "ep_demo" in out and "entry point of harness_ep_demo" in out


def test_allowlist_skips_unlisted_entry_points(clean_plugins, tmp_path, monkeypatch):
    make_distribution(tmp_path, "harness_ep_skip", "ep_skip", "harness_ep_skip_mod",
                      STRATEGY_SOURCE.format(cls="EpSkip", name="ep_skip"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("HARNESS_LOAD_PLUGINS", "")  # an empty allowlist: no installed plugin loads
    clean_plugins._load_entry_points()
    assert "ep_skip" not in clean_plugins.strategies().items
    monkeypatch.setenv("HARNESS_LOAD_PLUGINS", "something_else")  # not installed: said, with what is
    with pytest.raises(UserError, match="names 'something_else', not installed; installed plugins: .*ep_skip"):
        clean_plugins._load_entry_points()
    assert "ep_skip" not in clean_plugins.strategies().items
    monkeypatch.setenv("HARNESS_LOAD_PLUGINS", "ep_skip")
    clean_plugins._load_entry_points()
    assert "ep_skip" in clean_plugins.strategies().items


def test_plugins_dir_loads_loose_files(clean_plugins, tmp_path, capsys):
    (tmp_path / "my_dir_strategy.py").write_text(STRATEGY_SOURCE.format(cls="DirDemo", name="dir_demo"))
    assert run_cli(["--plugins-dir", str(tmp_path), "list", "strategies"]) == 0
    assert "dir_demo" in capsys.readouterr().out


def test_misspelt_hook_fails_loudly(clean_plugins, tmp_path):
    (tmp_path / "typo_plugin.py").write_text(textwrap.dedent('''
        from harness.hookspecs import hookimpl
        @hookimpl
        def register_strategys(register):
            pass
    '''))
    with pytest.raises(PluginError, match="typo_plugin"):
        clean_plugins.load_plugins_dir(str(tmp_path))


def test_plugin_that_raises_is_named(clean_plugins, tmp_path, capsys):
    (tmp_path / "raising_plugin.py").write_text(textwrap.dedent('''
        from harness.hookspecs import hookimpl
        @hookimpl
        def register_strategies(register):
            raise RuntimeError("broken on purpose")
    '''))
    code = run_cli(["--plugins-dir", str(tmp_path), "list", "strategies"])
    err = capsys.readouterr().err
    assert code == 2
    assert "harness_local_raising_plugin" in err and "broken on purpose" in err
    assert "Traceback" not in err


def test_duplicate_names_are_an_error(clean_plugins):
    class Dup:
        name = "no_ft"
        citation = ""

        def fit(self, ctx):
            pass

    class DupPlugin:
        @hookimpl
        def register_strategies(self, register):
            register(Dup)

    clean_plugins.pm.register(DupPlugin(), name="dup-plugin")
    with pytest.raises(PluginError, match="registered twice"):
        clean_plugins.strategies()


def test_hook_register_commands(clean_plugins, capsys):
    """A plugin adds a click command to `harness`."""
    import click

    class CommandPlugin:
        @hookimpl
        def register_commands(self, cli):
            @cli.command(name="hello-test")
            def hello():
                """Say hello."""
                click.echo("hello from a plugin")

    clean_plugins.pm.register(CommandPlugin(), name="command-plugin")
    try:
        assert run_cli(["hello-test"]) == 0
        assert "hello from a plugin" in capsys.readouterr().out
    finally:
        from harness.cli import cli

        cli.commands.pop("hello-test", None)


def test_hook_run_finished(clean_plugins, tiny_data):
    """An exporter receives the stored run (id, config, metrics) once it is finished."""
    seen = []

    class Exporter:
        @hookimpl
        def run_finished(self, run):
            seen.append(run)

    clean_plugins.pm.register(Exporter(), name="exporter")
    from tests.conftest import tiny_run_args

    assert run_cli(tiny_run_args(tiny_data)) == 0
    assert len(seen) == 1 and seen[0]["config"]["strategy"] == "no_ft"
    assert "em" in seen[0]["metrics"]["test"]


def test_hook_register_models(clean_plugins):
    """A plugin's embedder spec is registered under its name, owned by the plugin."""
    from harness.types import EmbedderSpec

    class ModelPlugin:
        @hookimpl
        def register_models(self, register):
            register(EmbedderSpec("fake-embedder", lambda opts: None, "a fake"))

    clean_plugins.pm.register(ModelPlugin(), name="model-plugin")
    assert clean_plugins.models()["embedder"].owners["fake-embedder"] == "model-plugin"


def test_hook_register_strategies(clean_plugins):
    """A plugin's strategy class is registered under its `name`, owned by the plugin, contract checked."""

    class Noop:
        name, citation, description, needs_context_labels, learning_rates = "noop_test", "c", "d", False, {}

        def fit(self, ctx):
            pass

    class StrategyPlugin:
        @hookimpl
        def register_strategies(self, register):
            register(Noop)

    clean_plugins.pm.register(StrategyPlugin(), name="strategy-plugin")
    reg = clean_plugins.strategies()
    assert reg.get("noop_test") is Noop and reg.owners["noop_test"] == "strategy-plugin"
    assert "noop_test" not in reg.problems


def test_hook_register_datasets(clean_plugins, tiny_data):
    """A plugin's dataset spec is registered under its name and loads."""
    from harness.builtins.datasets.local import load as load_local
    from harness.types import DatasetOptions, DatasetSpec

    class DataPlugin:
        @hookimpl
        def register_datasets(self, register):
            register(DatasetSpec("tiny-fixed", lambda opts: load_local(DatasetOptions(data_dir=str(tiny_data)))))

    clean_plugins.pm.register(DataPlugin(), name="data-plugin")
    dataset = clean_plugins.datasets().get("tiny-fixed").load(DatasetOptions())
    assert len(dataset.train) == 6 and len(dataset.corpus) == 10


def test_hook_register_executors(clean_plugins, tiny_data, capsys):
    """A plugin's executor is listed and used by `harness grid --executor NAME`: it gets every cell's run
    folder and runs it (here in this process), the driver imports what it yields. Its own flag (`options`)
    appears on `harness grid` and its value reaches `run`."""
    import click

    from harness.grid import run_cell_folder
    from harness.grid.executors import executors

    ran, tags = [], []

    class InProcess:
        name = "in_process"
        options = [click.Option(["--in-process-tag"], default="untagged", help="a tag for this test")]

        def run(self, folders, options):
            tags.append(options.value(self, "in_process_tag"))
            for folder in folders:
                ran.append(folder)
                run_cell_folder(folder, options.plugins_dir)
                yield folder, None

    class Plugin:
        @hookimpl
        def register_executors(self, register):
            register(InProcess)

    clean_plugins.pm.register(Plugin(), name="test-executor")
    assert {"local", "ray", "slurm", "in_process"} <= set(executors().items)
    args = ["grid", "--plugin", "ft_gen", "--dataset", "local", "--data-dir", str(tiny_data), "--embedder",
            "tiny-embedder", "--generator", "tiny-llama", "--max-new-tokens", "4", "--gen-lr", "1e-3,1e-2"]
    assert run_cli([*args, "--executor", "in_process", "--in-process-tag", "blue"]) == 0
    assert len(ran) == 2 and "selected run" in capsys.readouterr().out and tags == ["blue"]
