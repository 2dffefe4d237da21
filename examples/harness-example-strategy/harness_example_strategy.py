"""`ft_gen_gold`: LoRA fine-tuning of the generator with the gold passage as its only context.

An example plugin for rag-harness (docs/writing-a-strategy.md). Needs context labels.

    pip install -e examples/harness-example-strategy
    harness run --plugin ft_gen_gold --gen-lr 1e-3

Objective, for pairs (x, y) with gold passage z*(x):

    L(θ) = −(1/B) Σ_b Σ_t log p_θ(y_t | prompt(x_b, [z*(x_b)]), y_<t)        (answer tokens only)

Evaluation is the harness's: top-k retrieved passages, concatenated, greedy decoding.
"""

from dataclasses import dataclass, field

from harness import hookimpl
from harness.models import prepare_generator_for_lora
from harness.training import (
    StepMeter,
    epoch_batches,
    generator_token_count,
    gold_answer,
    gold_passage,
    linear_schedule,
    save_adapter,
    steps_per_run,
    trainable,
)


class GoldContextGenerator:
    name = "ft_gen_gold"
    citation = "rag-harness example plugin (2025)."
    needs_context_labels = True
    description = "example plugin: LoRA on the generator with the gold passage as context"
    learning_rates = {"gen_lr": 1e-3}

    @dataclass
    class Options:
        max_examples: int = field(default=0, metadata={"help": "train on at most this many examples (0: all)"})

    def fit(self, ctx) -> None:
        cfg, corpus = ctx.config, ctx.pipeline.corpus
        examples = [ex for ex in ctx.train if gold_passage(ex, corpus) is not None]
        if ctx.options.max_examples:
            examples = examples[: ctx.options.max_examples]
        generator = prepare_generator_for_lora(ctx)  # LoRA r = --lora-rank (QLoRA with --quantize 4bit)
        total = steps_per_run(len(examples), cfg.batch_size, cfg.epochs)
        optimizer, scheduler = linear_schedule([(trainable(generator.model), cfg.gen_lr, "gen")], total)
        meter = StepMeter(ctx)  # logs loss, lr, tokens/s, peak memory; counts trained tokens
        generator.model.train()
        batches = epoch_batches(examples, cfg.batch_size, cfg.epochs, cfg.seed)
        for step, (_, batch) in enumerate(ctx.progress(batches, self.name, total), start=1):
            meter.start()
            # 1) prompts with the gold passage only
            prompts = [generator.format_prompt(ex.question, [gold_passage(ex, corpus)]) for ex in batch]
            answers = [gold_answer(ex) for ex in batch]
            # 2) answer-only NLL: token_lp, mask (B, T)
            token_lp, mask = generator.answer_log_probs(prompts, answers)
            loss = -(token_lp * mask).sum(-1).mean()
            # 3) update
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            meter.log(step, loss, optimizer, generator_token_count(generator, prompts, answers))
            scheduler.step()
        generator.model.eval()
        save_adapter(ctx, generator)


@hookimpl
def register_strategies(register):
    register(GoldContextGenerator)
