"""What a strategy's `fit(ctx)` gets: the pipeline, the data, the config, logging, artifacts, refresh."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import RunConfig
from harness.errors import UserError
from harness.pipeline import RagPipeline
from harness.progress import progress
from harness.retrieval import IndexParams, PassageIndex, encode_corpus
from harness.store import Store
from harness.timing import Timer
from harness.types import RagDataset

LOG_FLUSH_SECONDS = 10.0


@dataclass
class FitContext:
    pipeline: RagPipeline
    dataset: RagDataset
    config: RunConfig
    options: Any  # the strategy's Options dataclass instance (or None)
    device: str
    run_id: str
    store: Store
    artifact_dir: Path
    timer: Timer = field(default_factory=Timer)
    # counters the harness stores as cost metrics
    trained_tokens: int = 0
    index_refreshes: int = 0
    refresh_seconds: float = 0.0
    _log_buffer: list = field(default_factory=list)
    _last_flush: float = field(default_factory=time.monotonic)

    @property
    def train(self):
        return self.dataset.train

    @property
    def dev(self):
        return self.dataset.dev

    def log(self, step: int, **scalars: float) -> None:
        """Record training scalars (loss, lr, acceptance, ...) for `step`; written to the store in batches."""
        elapsed = self.timer.elapsed()
        self._log_buffer += [(step, name, float(value), elapsed) for name, value in scalars.items()]
        if time.monotonic() - self._last_flush > LOG_FLUSH_SECONDS:
            self.flush_log()

    def flush_log(self) -> None:
        rows, self._log_buffer = self._log_buffer, []
        self._last_flush = time.monotonic()
        self.store.log_steps(self.run_id, rows)

    def progress(self, iterable: Iterable, desc: str, total: int | None = None):
        """Training steps with a bar on a terminal, plain lines in a log (harness/progress.py)."""
        return progress(iterable, desc, total, unit="steps")

    def refresh_index(self, encoder=None) -> PassageIndex:
        """Re-encode the corpus with `encoder` (default: the passage tower) and swap the new index in."""
        start = time.perf_counter()
        vectors = encode_corpus(encoder or self.pipeline.passage_encoder, self.dataset.corpus, desc="re-indexing")
        self.pipeline.index = PassageIndex.build(vectors, IndexParams(kind=self.config.index))
        self.index_refreshes += 1
        self.refresh_seconds += time.perf_counter() - start
        return self.pipeline.index

    def save_artifact(self, kind: str, save: Callable[[Path], None]) -> Path:
        """Write an artifact with `save(folder)` into a temp dir, rename it into place, register its sha256."""
        self.artifact_dir.mkdir(parents=True, exist_ok=True)
        final = self.artifact_dir / kind
        tmp = Path(tempfile.mkdtemp(dir=self.artifact_dir, prefix=f".{kind}-"))
        save(tmp)
        digest = folder_sha256(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
        self.store.add_artifact(self.run_id, kind, str(final), digest)
        return final


def folder_sha256(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def parse_strategy_options(strategy_cls: Any, pairs: dict[str, Any]) -> Any:
    """Build the strategy's `Options` dataclass from `--set key=value` pairs, coercing to field types."""
    options_cls = getattr(strategy_cls, "Options", None)
    if options_cls is None:
        if pairs:
            raise UserError(f"strategy '{strategy_cls.name}' takes no options (--set); got {sorted(pairs)}")
        return None
    fields = {f.name: f for f in dataclasses.fields(options_cls)}
    values = {}
    for key, raw in pairs.items():
        if key not in fields:
            raise UserError(f"strategy '{strategy_cls.name}' has no option '{key}'; options: {', '.join(fields)}")
        values[key] = _coerce(raw, fields[key], strategy_cls.name)
    try:
        return options_cls(**values)
    except (TypeError, ValueError) as exc:
        raise UserError(f"strategy '{strategy_cls.name}' options: {exc}") from None


def _coerce(raw: Any, f: dataclasses.Field, strategy: str) -> Any:
    if not isinstance(raw, str):
        return raw
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    try:
        if kind.startswith("bool"):
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except ValueError:
        raise UserError(f"strategy '{strategy}' option '{f.name}' must be {kind}, got '{raw}'") from None
    return raw
