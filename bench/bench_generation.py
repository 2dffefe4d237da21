"""Evaluation: the harness's batched generation vs a naive per-question `generate` loop (side by side).

    python bench/bench_generation.py [--questions 16] [--batch-size 8]

Same model (packaged SmolLM2-135M), same prompts (top-5 MiniLM passages, Appendix A prompt), greedy decoding;
the predictions must be identical, and the script fails if they are not.
"""

import argparse
import time

import torch
from _machine import header

from harness.models.generation import Generator, first_line
from harness.pipeline import RagPipeline
from harness.plugins import datasets, load_plugins, models
from harness.retrieval.index import build_or_load_index
from harness.types import DatasetOptions, ModelOptions


def naive_generate(generator: Generator, prompts, max_new_tokens):
    """What a first script does: one prompt at a time, no padding, no batching."""
    answers = []
    with torch.no_grad():
        for prompt in prompts:
            ids = generator.tokenizer(prompt, return_tensors="pt", add_special_tokens=not generator.chat)
            out = generator.model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                                           pad_token_id=generator.tokenizer.pad_token_id)
            answers.append(first_line(generator.tokenizer.decode(out[0, ids.input_ids.shape[1]:], skip_special_tokens=True)))
    return answers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=24)
    args = parser.parse_args()
    torch.set_num_threads(2)
    header("evaluation: batched generation vs per-question generate")
    load_plugins()
    dataset = datasets().get("fanoutqa_wiki").load(DatasetOptions())
    embedder = models()["embedder"].get("minilm").load(ModelOptions())
    model, tokenizer = models()["generator"].get("smollm2-135m").load(ModelOptions())
    pipeline = RagPipeline(embedder, embedder, build_or_load_index(embedder, dataset.corpus), dataset.corpus,
                           Generator(model, tokenizer), 5)
    questions = [ex.question for ex in (dataset.test + dataset.dev)][: args.questions]
    rows, _ = pipeline.retrieve(questions)
    prompts = pipeline.prompts(questions, rows)
    n_tokens = sum(len(ids) for ids in tokenizer(prompts)["input_ids"])
    start = time.perf_counter()
    batched = pipeline.generator.generate(prompts, args.max_new_tokens, args.batch_size)
    t_batched = time.perf_counter() - start
    start = time.perf_counter()
    naive = naive_generate(pipeline.generator, prompts, args.max_new_tokens)
    t_naive = time.perf_counter() - start
    same = sum(a == b for a, b in zip(batched, naive))
    print(f"{len(prompts)} questions, {n_tokens / len(prompts):.0f} prompt tokens on average, "
          f"max_new_tokens={args.max_new_tokens}, batch size {args.batch_size}")
    print(f"batched: {t_batched:.1f}s   per-question: {t_naive:.1f}s   ratio {t_naive / t_batched:.2f}x   "
          f"identical predictions: {same}/{len(prompts)}")
    for q, a, b in zip(questions, batched, naive):
        if a != b:
            print(f"  differs: {q!r}: batched={a!r} naive={b!r}")
    assert same == len(prompts), "batched and per-question predictions differ"


if __name__ == "__main__":
    main()
