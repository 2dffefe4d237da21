"""`no_ft`: the baseline. Nothing is trained; the harness evaluates the base embedder and generator.

Lawton et al. (2025), Table 3 row "No Ft.".
"""

from harness import hookimpl


class NoFineTuning:
    name = "no_ft"
    citation = (
        "Lawton, Samuel, Kumar, Liu. A Comparison of Independent and Joint Fine-tuning Strategies for "
        "Retrieval-Augmented Generation. 2025."
    )
    needs_context_labels = False
    sharded_generator = True  # FSDP-safe: it calls the generator only in evaluation
    description = "baseline: base embedder and generator, no training"
    learning_rates = {}  # nothing trains: `harness grid` has nothing to search

    def fit(self, ctx) -> None:
        """Nothing to train: the pipeline is evaluated as loaded."""


@hookimpl
def register_strategies(register):
    register(NoFineTuning)
