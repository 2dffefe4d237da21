"""The strategy toolkit: what `fit(ctx)` gets and the pieces its loop is built from.

    context.py      FitContext: the pipeline, data, config, step log, artifacts and index refreshes of a run
    loop.py         batches and schedules, `backward_in_chunks` (micro-batches, processes in step), StepMeter
    likelihoods.py  log p(z|x) over the retrieved passages and log p(y|x,z) per passage, with grad
    flops.py        the training-FLOPs model every run's compute is charged by
    silver.py       DPR-style silver context labels (answer-bearing passages) for data without gold ids
    saving.py       saving the tuned adapter, query tower and passage tower as the run's artifacts

Public (strategies import these from `harness.training`): the names in `__all__`, with the LoRA helpers of
harness/models/lora.py and the refresh machinery of harness/retrieval/refresh.py that strategies use.
"""

from harness._exports import exports

__all__, __getattr__ = exports(__name__, {
    "context": ("FitContext",),
    "loop": ("StepMeter", "backward_in_chunks", "budget_horizon", "effective_k", "encoder_token_count", "epoch_batches",
             "freeze", "generator_token_count", "gold_answer", "gold_passage", "linear_schedule", "snapshot",
             "steps_per_run", "trainable", "unfreeze"),
    "likelihoods": ("candidate_answer_log_probs", "candidate_count", "check_retriever_candidates", "indexed_passage_vectors",
                    "passage_answer_log_probs", "passage_vectors_with_grad", "rerank_rows", "retrieval_log_probs",
                    "retrieve_rows"),
    "flops": ("FlopCounter",),
    "saving": ("ARTIFACT_NOTE", "save_adapter", "save_embedder", "save_passage_tower"),
    "harness.models.lora": ("add_lora", "prepare_generator_for_lora"),
    "harness.retrieval.index": ("encode_with_grad",),
    "harness.retrieval.refresh": ("REFRESH_MODES", "REFRESH_POLICIES", "IndexRefresher", "check_refresh_policy",
                                   "refresh_schedule", "separate_passage_tower"),
})
