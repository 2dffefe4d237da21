"""The hooks a plugin can implement. Each receives a `register` callback (or the CLI group)."""

import pluggy

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def register_strategies(register):
    """Register strategy classes: ``register(StrategyClass)``; each has ``name``, ``citation``, ``fit(ctx)``."""


@hookspec
def register_models(register):
    """Register embedder and generator specs: ``register(EmbedderSpec(...))`` or ``register(GeneratorSpec(...))``."""


@hookspec
def register_datasets(register):
    """Register dataset specs: ``register(DatasetSpec(name, load, ...))``; ``load(options)`` returns a RagDataset."""


@hookspec
def register_commands(cli):
    """Add click commands to the ``harness`` CLI group ``cli``."""


@hookspec
def run_finished(run):
    """Called after a run is stored, with a dict: id, config, metrics, db (the store; `harness.export.load_run_record`
    reads the step log, predictions and artifacts from it). Exporters live here (plugins/trackers/)."""


@hookspec
def register_executors(register):
    """Register grid executors: ``register(ExecutorClass)`` with ``name`` and ``run(folders, options)`` (harness/executors)."""


@hookspec
def register_studies(register):
    """Register studies: ``register(Study(...))`` (harness/study/spec.py), a paper's experiment as data that
    ``harness study plan|run|report NAME`` plans, runs and sets beside the published numbers."""
