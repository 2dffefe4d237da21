"""`harness export RUN_ID`: a run's files (--to), its trained adapter and embedders (--adapter), or a tracker (--track)."""

from __future__ import annotations

from pathlib import Path

import click

from harness import UserError, hookimpl


def export_to_trackers(record, names: list[str]) -> list[str]:
    """Log `record` to each named tracker now (errors are raised, not warned); lines saying where it went."""
    from harness.results import enable_trackers

    enable_trackers(names)
    lines = []
    for name in names:
        if name == "mlflow":
            from harness.builtins.trackers.mlflow_tracker import log_to_mlflow

            lines.append(f"mlflow: run {log_to_mlflow(record)}")
        else:
            from harness.builtins.trackers.wandb_tracker import log_to_wandb

            lines.append(f"wandb: {log_to_wandb(record)}")
    return lines


def write_corpus(config: dict, path: Path) -> int:
    """The run's corpus, as its config loads it (dataset, data folder, --corpus-limit), one JSON line per
    passage; written aside and renamed, so a partial file is never left."""
    import json
    import os

    from harness import RunConfig
    from harness.runner import load_dataset, resolve

    cfg = RunConfig.from_stored(config)
    corpus = load_dataset(cfg, resolve(cfg)).corpus
    if path.exists():
        raise UserError(f"{path} already exists; give a new file for --corpus")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as fh:
        for row in range(len(corpus)):
            p = corpus[row]
            fh.write(json.dumps({"id": p.id, "title": p.title, "text": p.text}, ensure_ascii=False) + "\n")
    os.replace(partial, path)
    return len(corpus)


@hookimpl
def register_commands(cli):
    @cli.command()
    @click.argument("run_id")
    @click.option("--to", "to_dir", type=click.Path(file_okay=False), default=None,
                  help="write config.toml/json, run.json, metrics.json, predictions.jsonl, steps.jsonl into DIR")
    @click.option("--adapter", "adapter_dir", type=click.Path(file_okay=False), default=None,
                  help="copy the trained adapter / embedder folders (hub-ready, with model cards) into DIR/<kind>/")
    @click.option("--corpus", "corpus_file", type=click.Path(dir_okay=False), default=None,
                  help="write the passages the run retrieved from (after --corpus-limit) as JSON lines "
                       "{id, title, text}: what an exported adapter's model card script reads")
    @click.option("--track", multiple=True, metavar="TRACKER", help="log the run to mlflow or wandb now (repeatable)")
    @click.pass_context
    def export(ctx: click.Context, run_id: str, to_dir: str | None, adapter_dir: str | None, corpus_file: str | None,
               track: tuple[str, ...]) -> None:
        """Export one run (RUN_ID may be a prefix): its files, its trained models, or to a tracker.

        \b
        Examples:
          harness export 3f2a9c --to results/3f2a9c
          harness export 3f2a9c --adapter hub/3f2a9c --corpus hub/3f2a9c/adapter/corpus.jsonl
          huggingface-cli upload my-name/smollm2-ft-gen hub/3f2a9c/adapter .
          harness export 3f2a9c --track mlflow --track wandb
        """
        from harness.cli.common import open_store
        from harness.results import copy_artifacts, load_run_record, write_run_files

        if not (to_dir or adapter_dir or corpus_file or track):
            raise UserError("export needs --to DIR, --adapter DIR, --corpus FILE or --track TRACKER "
                            "(see `harness export --help`)")
        record = load_run_record(open_store(ctx), run_id)
        if to_dir:
            files = write_run_files(record, Path(to_dir))
            click.echo(f"run {record.id}: {', '.join(f.name for f in files)} in {Path(to_dir).resolve()}")
        if adapter_dir:
            for kind, folder in copy_artifacts(record, Path(adapter_dir)).items():
                click.echo(f"{kind}: {folder.resolve()}")
            click.echo(f"upload one: huggingface-cli upload YOUR_NAME/REPO {Path(adapter_dir) / next(iter(record.artifacts))} .")
        if corpus_file:
            count = write_corpus(record.config, Path(corpus_file))
            click.echo(f"corpus: {count} passages in {Path(corpus_file).resolve()}")
        for line in export_to_trackers(record, list(track)) if track else []:
            click.echo(line)
