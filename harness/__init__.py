"""rag-harness: compare ways of fine-tuning a retrieval-augmented generation pipeline.

The core is small: hook specifications, the plugin manager, the CLI, typed config and data, retrieval,
generation, evaluation, metrics and the DuckDB store. Strategies, models and datasets are plugins,
the built-in ones included.
"""

__version__ = "0.1.0"
