"""`ft_gen`: fine-tune the generator alone (LoRA, or QLoRA in 4 bits) on the top-k of the frozen retriever.

Lawton et al. (2025), §2.2 and Table 3 row "Ft. Gen."; LoRA: Hu et al. (2022); QLoRA: Dettmers et al. (2023).

    harness run --plugin ft_gen                       # offline defaults: MiniLM + SmolLM2-135M + fanoutqa_wiki
    harness run --plugin ft_gen --gen-lr 1e-5 --quantize 4bit   # the paper's setting (QLoRA r=16)

Objective. For each training pair (x, y), Z(x) = the top-k passages of the *frozen baseline* retriever
(retrieved once, before training), concatenated in the Appendix A prompt, exactly as at inference:

    L(θ) = −(1/B) Σ_b Σ_{t=1..T_b} log p_θ(y_t | prompt(x_b, Z(x_b)), y_<t)

Only the answer tokens y_1..y_T (and the EOS that ends the answer) are scored; prompt tokens never enter
the loss. θ = the LoRA adapters (rank r = cfg.lora_rank, alpha 2r, every linear layer); the base weights
are frozen (in 4-bit NF4 with `--quantize 4bit`, and by default on CUDA when bitsandbytes is installed).

Default learning rate 1e-3 (not the paper's 1e-5). The paper tunes 7-8B models on 10^4-10^5 questions,
i.e. thousands of steps. The offline default has 38 training questions: 1 epoch at batch 4 is 10 steps.
At 1e-3 those 10 steps teach SmolLM2-135M to answer in a few words, where its EM headroom is (measured:
dev EM 0.0 -> 66.7). Any other dataset or model should be grid-searched:
`harness grid --plugin ft_gen --lr-grid paper`.
"""

from __future__ import annotations

import torch

from harness import hookimpl
from harness.training import (
    StepMeter,
    backward_in_chunks,
    effective_k,
    epoch_batches,
    generator_token_count,
    gold_answer,
    linear_schedule,
    prepare_generator_for_lora,
    retrieve_rows,
    save_adapter,
    steps_per_run,
    trainable,
)

DEFAULT_GEN_LR = 1e-3
CITATION = """@article{lawton2025comparison,
  title={A Comparison of Independent and Joint Fine-tuning Strategies for Retrieval-Augmented Generation},
  author={Lawton, Neal and Samuel, Alfy and Kumar, Anoop and Liu, Daben}, year={2025}}
@inproceedings{dettmers2023qlora, title={QLoRA: Efficient Finetuning of Quantized LLMs},
  author={Dettmers, Tim and Pagnoni, Artidoro and Holtzman, Ari and Zettlemoyer, Luke}, booktitle={NeurIPS}, year={2023}}"""


def answer_nll(generator, prompts: list[str], answers: list[str]) -> torch.Tensor:
    """−(1/B) Σ_b Σ_t log p_θ(y_t | prompt_b, y_<t): answer tokens only, summed, averaged over the batch."""
    token_lp, mask = generator.answer_log_probs(prompts, answers)  # (B, T), (B, T); prompt never scored
    return -(token_lp * mask).sum(-1).mean()


def nll_of(generator, prompts: dict[str, str], batch) -> tuple[torch.Tensor, int]:
    """The batch's answer NLL under its baseline prompts, and the tokens read."""
    # 1) the prompts: question + top-k baseline passages, concatenated (Appendix A)
    batch_prompts = [prompts[ex.id] for ex in batch]
    answers = [gold_answer(ex) for ex in batch]
    # 2) the answer's negative log-likelihood, prompt masked: scalar
    return answer_nll(generator, batch_prompts, answers), generator_token_count(generator, batch_prompts, answers)


def baseline_prompts(pipeline, examples, k: int) -> dict[str, str]:
    """The inference prompt of every example under the *current* (not yet tuned) retriever: id -> prompt."""
    questions = [ex.question for ex in examples]
    rows = retrieve_rows(pipeline, questions, k)  # (N, k), one batched search
    return {ex.id: prompt for ex, prompt in zip(examples, pipeline.prompts(questions, rows))}


def train_generator(ctx, gen_lr: float, desc: str = "ft_gen", step_offset: int = 0) -> int:
    """The ft_gen loop on ctx.pipeline.generator (LoRA already added). Returns the number of steps run."""
    cfg, pipeline = ctx.config, ctx.pipeline
    generator = pipeline.generator
    prompts = baseline_prompts(pipeline, ctx.train, effective_k(pipeline, cfg.k))
    total = steps_per_run(len(ctx.train), cfg.batch_size, cfg.epochs)
    optimizer, scheduler = linear_schedule([(trainable(generator.model), gen_lr, "gen")], total)
    meter = StepMeter(ctx)
    generator.model.train()
    batches = epoch_batches(ctx.train, cfg.batch_size, cfg.epochs, cfg.seed)
    for step, (_, batch) in enumerate(ctx.progress(batches, desc, total), start=step_offset + 1):
        meter.start()
        optimizer.zero_grad(set_to_none=True)
        # 1-2) the answer's negative log-likelihood given the baseline prompt (this process's shard)
        loss, parts = backward_in_chunks(ctx, batch, 0, lambda shard: nll_of(generator, prompts, shard))
        # 3) update the adapters
        ctx.step(optimizer)  # gradients summed over the processes of a launched run
        meter.log(step, loss, optimizer, sum(tokens for _, tokens in parts))
        scheduler.step()
    generator.model.eval()
    return total


class FineTuneGenerator:
    name = "ft_gen"
    citation = CITATION
    needs_context_labels = False
    sharded_generator = True  # its generator calls go through backward_in_chunks (FSDP-safe)
    description = "generator only: LoRA/QLoRA r=16 on the frozen retriever's top-k (Lawton et al. 2025)"
    learning_rates = {"gen_lr": DEFAULT_GEN_LR}

    def fit(self, ctx) -> None:
        gen_lr = ctx.config.gen_lr
        generator = prepare_generator_for_lora(ctx)
        train_generator(ctx, gen_lr)
        save_adapter(ctx, generator)


@hookimpl
def register_strategies(register):
    register(FineTuneGenerator)
