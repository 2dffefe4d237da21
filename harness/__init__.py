"""rag-harness: compare ways of fine-tuning a retrieval-augmented generation pipeline.

This package's top level holds the contracts a plugin author reads first; its machinery lives in packages by
concern (docs/architecture.md#1-layers-and-packages). The names here are the plugin API's core:

    from harness import hookimpl, UserError, RunConfig, Passage, RagExample, RagDataset, DatasetSpec

Everything else a plugin needs comes from a package's `__init__` (`harness.training` for strategies,
`harness.models`, `harness.data`, `harness.cli.common`, ...): docs/writing-a-strategy.md lists them.
"""

# ruff: noqa: E402 - the `harness` command holds Ctrl-C/SIGTERM before anything else is imported
from harness.errors import hold_signals_while_starting

hold_signals_while_starting()

from harness._exports import install_old_module_finder
from harness.config import RunConfig, cache_dir
from harness.errors import UserError
from harness.hookspecs import hookimpl
from harness.strategy import DEFAULT_BATCH_SIZE, Strategy
from harness.types import (
    Corpus,
    DatasetOptions,
    DatasetSpec,
    EmbedderSpec,
    GeneratorSpec,
    ModelOptions,
    Passage,
    RagDataset,
    RagExample,
)
from harness.version import __version__  # first: the modules below may read it

__all__ = ["__version__", "hookimpl", "UserError", "RunConfig", "cache_dir", "Strategy", "DEFAULT_BATCH_SIZE",
           "Corpus", "DatasetOptions", "DatasetSpec", "EmbedderSpec", "GeneratorSpec", "ModelOptions", "Passage",
           "RagDataset", "RagExample"]

install_old_module_finder()  # `import harness.lora` and the other paths of the flat layout, for one more release
