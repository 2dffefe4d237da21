"""`harness study plan|run|report NAME`: a paper's experiment as one unit (harness/study/)."""

from __future__ import annotations

import json

import click
from rich.table import Table

from harness.cli.common import console, fmt, open_store, quiet_libraries

SCALE_HELP = "full (the paper's setting), or a scale the study defines: smoke (what runs on a CPU in minutes), reduced"


@click.group()
def study() -> None:
    """Plan, run and report a paper's experiment: its cells, grids and seeds, beside its published table.

    \b
    Examples:
      harness study list
      harness study plan lawton2025 --device h100          # every run, FLOPs, GPU-hours beside the paper's hours
      harness study run lawton2025 --scale smoke           # on this CPU, tiny models: checks the plumbing
      harness study run lawton2025 --executor ray --only dataset=popqa,pipeline="MiniLM + LLaMA3-8b"
      harness study report lawton2025 --scale smoke --format md
    Re-running `harness study run` runs only what is unfinished.
    """


@study.command("list")
def list_studies() -> None:
    """The registered studies and their scales."""
    from harness import plugins

    plugins.load_plugins()
    table = Table("study", "title", "cells", "scales", "plugin")
    registry = plugins.studies()
    for name, item in sorted(registry.items.items()):
        cells = len(item.strategies) * len(item.datasets) * len(item.pipelines)
        table.add_row(name, item.title, str(cells), ", ".join(["full", *item.scales]), registry.owners[name])
    console.print(table)


def _load(name: str, scale: str):
    from harness.study.file import get_study

    return get_study(name).at_scale(scale)


@study.command()
@click.argument("name")
@click.option("--scale", default="full", show_default=True, help=SCALE_HELP)
@click.option("--device", default=None, help="GPU for the GPU-hours: a10, l4, t4, v100, a100, l40s, h100, h200 "
                                             "(default: the paper's, else h100)")
@click.option("--mfu", type=click.FloatRange(0.001, 1.0), default=None,
              help="model FLOPs utilisation to assume (default: the GPU check's measured MFU in bench/RESULTS.md, "
                   "else 0.30)")
@click.option("--only", default=None, metavar="KEY=VALUE[,...]", help="a slice: dataset=..., pipeline=..., strategy=...")
@click.option("--json", "as_json", is_flag=True, help="print the plan as JSON")
@click.pass_context
def plan(ctx: click.Context, name: str, scale: str, device: str | None, mfu: float | None, only: str | None,
         as_json: bool) -> None:
    """Every run the study makes, what is stored and present, training FLOPs and GPU-hours beside the paper's.

    NAME is a registered study (`harness study list`) or a study file (.toml, see examples/studies/).
    """
    from harness.study.plan import plan_study
    from harness.study.spec import parse_only

    chosen = _load(name, scale)
    result = plan_study(chosen, open_store(ctx), device or chosen.paper_device or "h100", parse_only(only), mfu=mfu)
    data = result.as_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    print_plan(data)


def print_plan(data: dict) -> None:
    console.print(f"[bold]{data['title']}[/bold] · study id {data['study_id']} · scale {data['scale']}: "
                  f"{data['scale_note']}")
    table = Table("cell", "stages", "runs", "stored", "train FLOPs", f"GPU-h ({data['device']})",
                  "selected run GPU-h", "paper h", f"paper GPU-h (×{data['paper_gpus']})",
                  title=f"{data['study']}: {data['totals']['cells']} cells × seeds {data['seeds']}")
    for row in data["cells"]:
        table.add_row(row["cell"], row["stages"], str(row["runs"]), str(row["stored"]), f"{row['flops']:.3g}",
                      fmt(row["gpu_hours"]), fmt(row["selected_run_gpu_hours"]), fmt(row["paper_hours"]),
                      fmt(row["paper_gpu_hours"]))
    t = data["totals"]
    table.add_row("[bold]total[/bold]", "", str(t["runs"]), str(t["stored"]), f"{t['flops']:.3g}", fmt(t["gpu_hours"]),
                  fmt(t["selected_runs_gpu_hours"]), fmt(t["paper_hours"]), fmt(t["paper_gpu_hours"]))
    console.print(table)
    console.print(f"GPU-hours on one {data['device']} ({data['peak_tflops']:.0f} TFLOP/s bf16 peak) at "
                  f"{data['mfu_source']}. Paper: {data['paper_setting'] or 'hours not reported'}; its hours are "
                  "for the selected run of each cell only, compare them with 'selected run GPU-h'.")
    needs = Table("kind", "what", "here", "how to get it", title="what must be present locally")
    for item in data["requirements"]:
        here = {True: "yes", False: "[red]no[/red]", None: "–"}[item["present"]]
        needs.add_row(item["kind"], item["name"], here, item["how"])
    console.print(needs)


@study.command()
@click.argument("name")
@click.option("--scale", default="full", show_default=True, help=SCALE_HELP)
@click.option("--only", default=None, metavar="KEY=VALUE[,...]",
              help="a slice: dataset=..., pipeline=..., strategy=... (cells whose rates it reuses run too)")
@click.option("--executor", default="local", show_default=True, help="where runs go: local, ray, slurm, or a plugin's")
@click.option("--cell-cpus", type=click.FloatRange(0.01, 1024), default=1.0, show_default=True, help="CPUs per run (ray, slurm)")
@click.option("--cell-gpus", type=click.FloatRange(0, 64), default=0.0, show_default=True, help="GPUs per run (ray, slurm)")
@click.option("--max-retries", type=click.IntRange(0, 20), default=2, show_default=True,
              help="a worker that dies is retried this often, then its run is stored failed (ray, slurm)")
@click.option("--force", is_flag=True, help="re-run runs already stored")
@click.pass_context
def run(ctx: click.Context, name: str, scale: str, only: str | None, executor: str, cell_cpus: float,
        cell_gpus: float, max_retries: int, force: bool) -> None:
    """Run the study through the grid machinery, one study id on every run; re-running resumes it."""
    from harness.cli.grid import executor_options
    from harness.grid.executors import get_executor
    from harness.study.run import run_study
    from harness.study.spec import parse_only

    chosen = _load(name, scale)
    store = open_store(ctx)
    runner = None if executor == "local" else get_executor(executor)
    options = executor_options(ctx, store, cell_cpus, cell_gpus, max_retries)
    quiet_libraries()
    console.print(f"study {chosen.study_id()} · {chosen.scale_note}")
    outcome = run_study(
        chosen, store, parse_only(only), runner, options, force,
        on_cell=lambda cell, c: console.print(f"  {cell.key} {c.lrs} -> {c.status} {', '.join(c.run_ids) or c.error or ''}"),
        on_start=lambda cell, n: console.print(f"[bold]{cell.key}[/bold]: {n} runs"))
    for key, why in outcome.failed.items():
        console.print(f"[red]{key} failed:[/red] {why}")
    console.print(f"done: {len(outcome.results)} cells, {len(outcome.failed)} failed · "
                  f"`harness study report {name}" + (f" --scale {scale}" if scale != "full" else "") + "`")
    if outcome.failed:
        ctx.exit(1)


@study.command()
@click.argument("name")
@click.option("--scale", default="full", show_default=True, help=SCALE_HELP)
@click.option("--only", default=None, metavar="KEY=VALUE[,...]", help="a slice: dataset=..., pipeline=..., strategy=...")
@click.option("--format", "out_format", type=click.Choice(["table", "md", "csv", "json"]), default="table",
              show_default=True)
@click.pass_context
def report(ctx: click.Context, name: str, scale: str, only: str | None, out_format: str) -> None:
    """Our values with 95% intervals beside the published ones, a verdict per cell, the claims checked."""
    from harness.study.report import study_report
    from harness.study.spec import parse_only

    data = study_report(_load(name, scale), open_store(ctx), parse_only(only))
    if out_format == "json":
        click.echo(json.dumps(data, indent=2, default=str))
    elif out_format == "csv":
        from harness.results import rows_as_text

        click.echo(rows_as_text(data["rows"], REPORT_COLUMNS, "csv"), nl=False)
    elif out_format == "md":
        click.echo(report_markdown(data), nl=False)
    else:
        print_report(data)


REPORT_COLUMNS = ("dataset", "pipeline", "label", "metric", "ours", "low", "high", "seeds", "published", "source",
                  "difference", "verdict", "runs")


def _num(value, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def report_header(data: dict) -> list[str]:
    return [f"# {data['title']}", "", f"Study id `{data['study_id']}` · scale **{data['scale']}**: {data['scale_note']}",
            "", f"{data['citation']}", "", f"Reported on the {data['report_split']} split; {data['finished']} of "
            f"{data['runs']} stored runs finished. Paper: {data['setting']}.", "",
            *(f"- {metric}: {note}" for metric, note in data["metric_notes"].items()), ""]


def report_markdown(data: dict) -> str:
    lines = report_header(data)
    lines += ["| dataset | pipeline | method | metric | ours [95%] | published | diff | verdict |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in data["rows"]:
        ours = "–" if r["ours"] is None else f"{r['ours']:.1f} [{r['low']:.1f}, {r['high']:.1f}]"
        lines.append(f"| {r['dataset']} | {r['pipeline']} | {r['label']} | {r['metric']} | {ours} | "
                     f"{_num(r['published'])} | {_num(r['difference'])} | {r['verdict']} |")
    lines += ["", "| claim | verdict | evidence |", "| --- | --- | --- |"]
    lines += [f"| {c['claim']} | {c['verdict']} | {c['evidence']} |" for c in data["claims"]]
    return "\n".join(lines) + "\n"


def print_report(data: dict) -> None:
    console.print("\n".join(report_header(data)[:5]))
    table = Table("dataset", "pipeline", "method", "metric", "ours [95%]", "published", "diff", "verdict",
                  title=f"{data['study']} · {data['scale']}")
    colour = {"within": "green", "below": "red", "above": "yellow", "not run": "dim"}
    for r in data["rows"]:
        ours = "–" if r["ours"] is None else f"{r['ours']:.1f} [{r['low']:.1f}, {r['high']:.1f}]"
        c = colour.get(r["verdict"], "white")
        table.add_row(r["dataset"], r["pipeline"], r["label"], r["metric"], ours, _num(r["published"]),
                      _num(r["difference"]), f"[{c}]{r['verdict']}[/{c}]")
    console.print(table)
    claims = Table("claim", "verdict", "evidence", title="the paper's claims")
    for c in data["claims"]:
        claims.add_row(c["claim"], c["verdict"], c["evidence"])
    console.print(claims)
