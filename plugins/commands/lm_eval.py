"""`harness lm-eval RUN_ID --tasks T[,T]`: what a run's LoRA adapter did to standard benchmarks (retention).

The run's base generator is loaded through the harness (its generator spec, the local weights the run trained
on), scored by lm-evaluation-harness (its Python API: `lm_eval.simple_evaluate` on an `HFLM` that wraps the
loaded model), then the run's adapter (sha256-checked) is put on it and the same tasks are scored again. The
numbers become metrics of the run in the split `lm_eval`: `<task>/<metric>_base`, `<task>/<metric>_tuned`
and `<task>/n`, the examples scored.

    pip install 'rag-harness[lm-eval]'
    harness lm-eval 3f2a9c --tasks arc_easy,hellaswag --limit 200
    harness lm-eval 3f2a9c --tasks my_task --include-path my_tasks/     # a task YAML of your own
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path

import click

from harness import UserError, hookimpl

SPLIT = "lm_eval"
NO_FILTER = "none"
# no standard errors: lm-eval bootstraps them in a pool of one process per CPU (slow, and noisy when it ends)
BOOTSTRAP_ITERS = 0


def metric_values(task_results: dict) -> dict[str, float]:
    """lm-eval's `{"acc,none": 0.5, "acc_stderr,none": 0.1, "alias": ...}` as `{"acc": 0.5, "acc_stderr": 0.1}`;
    a metric under a filter other than `none` keeps it (`exact_match_strict-match`); non-numbers are dropped."""
    values = {}
    for key, value in task_results.items():
        if "," not in key or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        metric, filter_name = key.split(",", 1)
        values[metric if filter_name == NO_FILTER else f"{metric}_{filter_name}"] = float(value)
    return values


def check_task_names(task_manager, tasks: list[str]) -> None:
    """One line naming an unknown task (and a close match) before any model loads."""
    known = task_manager.all_tasks
    for name in tasks:
        if not task_manager.match_tasks([name]):
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else " (give --include-path DIR for your own task YAML)"
            raise UserError(f"unknown lm-eval task '{name}'{hint}")


def score(model, tokenizer, tasks: list[str], task_manager, options: dict) -> tuple[dict, dict]:
    """(task -> metric -> value, task -> examples scored) of `model` on `tasks`."""
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=options["batch_size"])
    out = lm_eval.simple_evaluate(model=lm, tasks=tasks, task_manager=task_manager, limit=options["limit"],
                                  num_fewshot=options["num_fewshot"], log_samples=False, bootstrap_iters=BOOTSTRAP_ITERS)
    results = {task: metric_values(values) for task, values in out["results"].items()}
    counts = {task: float(n.get("effective", n.get("original", 0))) for task, n in out.get("n-samples", {}).items()}
    return results, counts


def load_base_generator(config: dict):
    """(model, tokenizer) of the run's base generator, loaded as the run loaded it (its spec, device, quantization)."""
    from harness import ModelOptions, RunConfig
    from harness.runner import configure_torch, resolve
    from harness.runtime import pick_device

    cfg = RunConfig.from_stored(config)
    configure_torch(cfg.seed)
    spec = resolve(cfg).generator_spec
    model, tokenizer = spec.load(ModelOptions(device=pick_device(), quantize="4bit" if cfg.quantize == "4bit" else None))
    model.eval()
    return model, tokenizer


def metric_rows(base: dict, tuned: dict, counts: dict) -> list[tuple[str, str, float]]:
    """(split, name, value) rows: every metric before and after the adapter, and each task's example count."""
    rows = []
    for task in sorted(base.keys() | tuned.keys()):
        for metric in sorted(base.get(task, {}).keys() | tuned.get(task, {}).keys()):
            for when, scores in (("base", base), ("tuned", tuned)):
                value = scores.get(task, {}).get(metric)
                if value is not None and math.isfinite(value):
                    rows.append((SPLIT, f"{task}/{metric}_{when}", value))
        if task in counts:
            rows.append((SPLIT, f"{task}/n", counts[task]))
    return rows


def table_lines(base: dict, tuned: dict) -> list[str]:
    """task, metric, base, tuned, change; numbers to 5 significant digits (a perplexity can be huge)."""
    lines = [f"{'task':<28} {'metric':<20} {'base':>11} {'tuned':>11} {'change':>11}"]
    for task in sorted(base.keys() | tuned.keys()):
        for metric in sorted(base.get(task, {}).keys() | tuned.get(task, {}).keys()):
            before, after = base.get(task, {}).get(metric, math.nan), tuned.get(task, {}).get(metric, math.nan)
            lines.append(f"{task:<28} {metric:<20} {before:>11.5g} {after:>11.5g} {after - before:>+11.5g}")
    return lines


def run_lm_eval(store, record, tasks: list[str], include_path: str | None, options: dict) -> list[str]:
    """Score the run's generator without and with its adapter; store the metrics; the table's lines."""
    from lm_eval.tasks import TaskManager
    from peft import PeftModel

    if record.run["status"] != "finished":
        raise UserError(f"run {record.id} is {record.run['status']}, not finished: it has no adapter to score")
    if "adapter" not in record.artifacts:
        raise UserError(f"run {record.id} ({record.run['strategy']}) has no LoRA adapter: its generator is the base "
                        "model, so there is nothing to compare on lm-eval tasks")
    if include_path and not Path(include_path).is_dir():
        raise UserError(f"--include-path {include_path} is not a folder")
    task_manager = TaskManager(include_path=include_path)
    check_task_names(task_manager, tasks)
    model, tokenizer = load_base_generator(record.config)
    click.echo(f"lm-eval: base generator {record.config.get('generator')} on {', '.join(tasks)}", err=True)
    base, counts = score(model, tokenizer, tasks, task_manager, options)
    tuned_model = PeftModel.from_pretrained(model, str(record.artifacts["adapter"]))
    tuned_model.eval()
    click.echo(f"lm-eval: with the adapter of run {record.id}", err=True)
    tuned, _ = score(tuned_model, tokenizer, tasks, task_manager, options)
    rows = metric_rows(base, tuned, counts)
    if not rows:
        raise UserError(f"lm-eval returned no numeric metrics for {', '.join(tasks)}")
    store.add_metrics(record.id, rows)
    return table_lines(base, tuned) + [f"stored {len(rows)} metrics of run {record.id} in split '{SPLIT}'"]


@hookimpl
def register_commands(cli):
    @cli.command("lm-eval")
    @click.argument("run_id")
    @click.option("--tasks", required=True, metavar="TASK[,TASK]",
                  help="lm-evaluation-harness task names, comma-separated (arc_easy,hellaswag or your own)")
    @click.option("--include-path", type=click.Path(file_okay=False), default=None,
                  help="a folder of task YAML files of your own (lm-eval's include_path)")
    @click.option("--limit", type=click.IntRange(min=1), default=None, help="score at most N examples per task")
    @click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True)
    @click.option("--num-fewshot", type=click.IntRange(min=0), default=None,
                  help="few-shot examples per prompt (default: each task's own)")
    @click.pass_context
    def lm_eval_command(ctx: click.Context, run_id: str, tasks: str, include_path: str | None, limit: int | None,
                        batch_size: int, num_fewshot: int | None) -> None:
        """Score a run's generator on lm-evaluation-harness tasks without and with its LoRA adapter.

        Prints task, metric, base, tuned and change, and stores them as metrics of the run in the split
        `lm_eval` (`<task>/<metric>_base`, `<task>/<metric>_tuned`, `<task>/n`): what fine-tuning kept of
        the generator's general ability. Standard tasks download their data (internet); a local task YAML
        (--include-path) runs offline. RUN_ID may be a prefix.

        \b
        Examples:
          harness lm-eval 3f2a9c --tasks arc_easy,hellaswag --limit 200
          harness lm-eval 3f2a9c --tasks my_task --include-path my_tasks/ --num-fewshot 0
        """
        from harness.cli.common import open_store, require_installed
        from harness.results import load_run_record

        require_installed("lm_eval", "harness lm-eval", extra="lm-eval")
        names = [name.strip() for name in tasks.split(",") if name.strip()]
        if not names:
            raise UserError("--tasks needs at least one task name")
        store = open_store(ctx)
        record = load_run_record(store, run_id)
        options = {"limit": limit, "batch_size": batch_size, "num_fewshot": num_fewshot}
        for line in run_lm_eval(store, record, names, include_path, options):
            click.echo(line)
