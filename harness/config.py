"""The resolved configuration of one run, its key, the evaluation set it is scored on, and where caches live."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import subprocess
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import platformdirs

from harness.env import folder_from_env
from harness.errors import UserError
from harness.version import __version__

INDEX_KINDS = ("flat", "hnsw", "ivfpq")
INDEX_DEVICES = ("cpu", "cuda")
QUANTIZE_CHOICES = ("4bit", "none")
SPLITS = ("train", "dev", "test")
EVAL_MODES = ("closed_book", "oracle", "retention")  # harness/evaluation.py
MAX_SEED = 2**32 - 1  # numpy's legacy seeding takes 0..2**32-1
# the learning rates `harness grid --lr-grid NAME` searches (Lawton et al. 2025, §2.5: 1e-8 ... 1e-4)
PAPER_GRID = (1e-8, 3e-8, 1e-7, 3e-7, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4)
LR_GRIDS = {"paper": PAPER_GRID}
FLOAT_EXAMPLES = {"embed_lr": ", e.g. 1e-5", "gen_lr": ", e.g. 1e-5", "max_train_flops": " (e.g. 3e13)",
                  "peak_tflops": " (e.g. 989 for an H100's bf16)"}


def _option(name: str) -> str:
    return "-k" if name == "k" else f"--{name.replace('_', '-')}"


def _check_float(name: str, value: Any, allowed: str) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok:
        raise UserError(f"{_option(name)} must be {allowed}; got {value!r}")


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low and (high is None or value <= high)
    if not ok:
        allowed = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"
        raise UserError(f"{_option(name)} must be {allowed}; got {value!r}")


def _opt(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help}, **kw)
    return field(default=default, metadata={"help": help}, **kw)


@dataclass
class RunConfig:
    """Everything that decides a run's result. Stored whole with every run; its hash is the run key."""

    strategy: str = _opt("no_ft", "strategy plugin name (`harness list strategies`)")
    dataset: str = _opt("fanoutqa_wiki", "dataset plugin name (`harness list datasets`)")
    embedder: str = _opt("minilm", "embedder name, or hf:<hub id or local folder>")
    generator: str = _opt("smollm2-135m", "generator name, or hf:<hub id or local folder>")
    data_dir: str | None = _opt(None, "local copy of the dataset (for `local` and hub datasets)")
    limit: int | None = _opt(None, "use at most this many examples per split (quick runs)")
    corpus_limit: int | None = _opt(None, "keep only the first N passages plus every gold passage (quick runs)")
    seed: int = _opt(0, "random seed for training")
    k: int = _opt(5, "passages retrieved per question (top-k)")
    index: str = _opt("flat", "passage index: flat (exact), hnsw or ivfpq (approximate, for corpora of millions; "
                              "recall against exact search: bench/bench_index_recall.py)")
    index_device: str = _opt("cpu", "where the index is searched: cpu, or cuda (flat: exact torch matmul + top-k "
                                    "sharded over every visible GPU; ivfpq: faiss-gpu)")
    epochs: int = _opt(1, "training epochs")
    batch_size: int | None = _opt(None, "training batch size (questions per step; strategy default if unset, else 4)")
    embed_lr: float | None = _opt(None, "embedder learning rate (strategy default if unset)")
    gen_lr: float | None = _opt(None, "generator learning rate (strategy default if unset)")
    tau: float = _opt(0.05, "temperature of the retrieval softmax p(z|x) over cosine scores")
    lora_rank: int = _opt(16, "LoRA rank for generator fine-tuning")
    quantize: str | None = _opt(None, "generator weights while training: 4bit (QLoRA NF4, bf16 compute on GPUs; needs "
                                      "bitsandbytes) or none (LoRA on bf16 weights on GPUs, float32 on CPU); unset: "
                                      "4bit on CUDA when bitsandbytes is installed, else none")
    gradient_checkpointing: bool = _opt(False, "recompute the generator's activations in backward (less memory, "
                                               "about a third more compute)")
    peak_tflops: float | None = _opt(None, "the device's peak TFLOP/s for MFU (default: from a table of known GPUs)")
    max_new_tokens: int = _opt(24, "maximum answer length at evaluation, in tokens")
    eval_batch_size: int | None = _opt(None, "questions per generation batch at evaluation (default: 8 on CPU; on a "
                                             "GPU as many as fit in half its free memory)")
    eval_splits: list[str] = _opt(["dev", "test"], "splits the harness evaluates after fit")
    eval_modes: list[str] = _opt([], "extra evaluation on the same models, each one more generation pass: "
                                     "closed_book (no passages), oracle (the gold passages in place of retrieval), "
                                     "retention (the generator before and after fit on held-out data: perplexity "
                                     "and closed-book EM); comma-separated")
    retention_probe: str = _opt("fanoutqa_wiki", "dataset whose passages and questions probe the generator for "
                                                 "--eval-modes retention (those the run trains on are left out)")
    silver_labels: int | None = _opt(None, "DPR's silver context labels: the training questions' gold passages become "
                                           "the base retriever's top-N passages that contain a gold answer; "
                                           "questions with none are dropped from training (for datasets without labels)")
    max_train_flops: float | None = _opt(None, "stop training once this many estimated training FLOPs are spent "
                                               "(forward 2·N, backward 4·N per token; the LR schedule is set "
                                               "for the budget)")
    strategy_options: dict[str, Any] = _opt({}, "strategy-specific options (--set key=value)")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Every option checked before anything is stored: ints in range, floats finite and in range."""
        for name in ("embed_lr", "gen_lr", "max_train_flops", "peak_tflops"):
            if getattr(self, name) is not None:
                _check_float(name, getattr(self, name), "a finite number > 0" + FLOAT_EXAMPLES.get(name, ""))
        _check_float("tau", self.tau, "a finite number > 0, e.g. 0.05")
        for name in ("k", "epochs", "lora_rank", "max_new_tokens"):
            _check_int(name, getattr(self, name), 1)
        for name in ("limit", "corpus_limit", "batch_size", "eval_batch_size", "silver_labels"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1)
        _check_int("seed", self.seed, 0, MAX_SEED)
        if self.index not in INDEX_KINDS:
            raise UserError(f"--index must be one of {', '.join(INDEX_KINDS)}, got {self.index!r}")
        if self.quantize not in (None, *QUANTIZE_CHOICES):
            raise UserError(f"--quantize must be one of {', '.join(QUANTIZE_CHOICES)} (or unset), got {self.quantize!r}")
        if self.index_device not in INDEX_DEVICES:
            raise UserError(f"--index-device must be one of {', '.join(INDEX_DEVICES)}, got {self.index_device!r}")
        unknown = [m for m in self.eval_modes if m not in EVAL_MODES]
        if unknown:
            raise UserError(f"--eval-modes must name some of {', '.join(EVAL_MODES)} (comma-separated), "
                            f"got {','.join(map(str, unknown))}")
        bad = [s for s in self.eval_splits if s not in SPLITS]
        if bad or not self.eval_splits:
            raise UserError(f"--eval-splits must name one or more of {', '.join(SPLITS)} (comma-separated), "
                            f"got {','.join(map(str, self.eval_splits)) or 'none'}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_stored(cls, config: dict | str) -> RunConfig:
        """A stored config (a dict, or JSON as the store holds it) as a RunConfig; keys this version of the
        harness does not know are dropped."""
        config = json.loads(config) if isinstance(config, str) else dict(config)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in known})

    def run_key(self) -> str:
        """Same resolved config + same code version = same key (docs/architecture.md#4-configuration-and-run-keys)."""
        payload = json.dumps({"config": self.to_dict(), "code": code_version()}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:20]


# -- evaluation sets: which questions a split's scores are on ----------------------------------------------
EVALUATION_SET_KEYS = ("dataset", "limit", "corpus_limit")  # with the data's digest and the questions' ids
WHOLE_FILE_BYTES = 64 << 20  # files up to this size are hashed whole; larger ones by size and three 1 MiB samples
SAMPLE_BYTES = 1 << 20


def evaluation_set_id(config: dict, split: str, example_ids: Iterable[str], data: str | None, n: int | None = None) -> str:
    """The evaluation set a run's `split` scores are on: the dataset (with its options, `synthbio:people=500`),
    the digest of its data folder (`data_digest`; None for packaged or hub data), `--limit`, `--corpus-limit`
    (the passages retrieved from), the split and the ids of the questions scored (or, for a run stored without
    predictions, their number `n`). Two runs' scores on a split are comparable only when their ids are equal
    (docs/architecture.md §6)."""
    ids = sorted(str(i) for i in example_ids)
    payload = json.dumps({**{key: config.get(key) for key in EVALUATION_SET_KEYS}, "data": data, "split": split,
                          "ids": ids, **({} if ids else {"n": n})}, sort_keys=True, default=str)
    return "es-" + hashlib.sha256(payload.encode()).hexdigest()[:12]


def data_digest(data_dir: str | None) -> str | None:
    """The contents of a data folder (or file) as one sha256: every file's path relative to it and its bytes
    (files over 64 MiB: their size and the first, middle and last MiB, so a 13 GB passage file costs
    milliseconds; each file's digest is remembered while its size and mtime stay, so a large folder is read
    once). Where the folder lives does not count: two copies of the same data are one set.
    None without a data folder; `missing:<path>` for a folder that is not there (any more)."""
    if not data_dir:
        return None
    root = Path(data_dir).expanduser()
    if not root.exists():
        return f"missing:{data_dir}"
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    sizes = [path.stat().st_size for path in files]
    digest = hashlib.sha256()
    for path, size, file_digest in zip(files, sizes, _file_digests(files, sizes)):
        digest.update(f"{path.relative_to(root) if path != root else path.name}\0{size}\0".encode())
        digest.update(file_digest)
    return digest.hexdigest()[:16]


RACY_SECONDS = 3.0
REMEMBER_BYTES = 1 << 20  # smaller files are faster to hash than to look up


def _file_digests(files: list[Path], sizes: list[int]) -> list[bytes]:
    """Each file's digest. Those of files over REMEMBER_BYTES are remembered by path, size, inode and mtime
    (the cache folder's file-digests.json, read once and written once a call), so a folder of many large
    files is not read again; a file changed in the last few seconds is hashed and not remembered (its mtime
    could still move without a new one)."""
    known: dict[str, str] | None = None
    learned: dict[str, str] = {}
    out = []
    for path, size in zip(files, sizes):
        if size <= REMEMBER_BYTES:
            out.append(_hash_file(path, size))
            continue
        known = _digest_cache() if known is None else known
        stat = path.stat()
        key = f"{path.resolve()}\0{stat.st_size}\0{stat.st_ino}\0{stat.st_mtime_ns}"
        if key in known:
            out.append(bytes.fromhex(known[key]))
            continue
        file_digest = _hash_file(path, stat.st_size)
        if time.time() - stat.st_mtime > RACY_SECONDS:
            learned[key] = file_digest.hex()
        out.append(file_digest)
    if learned:
        _save_digest_cache({**(known or {}), **learned})
    return out


def _digest_cache_path() -> Path:
    return cache_dir() / "file-digests.json"


def _digest_cache() -> dict[str, str]:
    try:
        known = json.loads(_digest_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def _save_digest_cache(known: dict[str, str]) -> None:
    """Written whole to a temporary file and renamed over: a reader never sees half of it (last writer wins)."""
    path = _digest_cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(dict(list(known.items())[-10_000:])), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache folder: hash again next time


def _hash_file(path: Path, size: int) -> bytes:
    with path.open("rb") as handle:
        if size <= WHOLE_FILE_BYTES:
            return hashlib.sha256(handle.read()).digest()
        parts = []
        for offset in (0, size // 2, size - SAMPLE_BYTES):
            handle.seek(offset)
            parts.append(handle.read(SAMPLE_BYTES))
        return hashlib.sha256(b"".join(parts)).digest()


def option_help() -> dict[str, str]:
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(RunConfig)}


@cache
def git_sha() -> str | None:
    """The commit of this project's own source checkout the harness runs from (`-dirty` if its tree has
    changes); None for an installed wheel, even one inside some other git repository."""
    root = Path(__file__).resolve().parent.parent
    if not is_source_checkout(root):
        return None
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha.stdout.strip()[:12] + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def is_source_checkout(root: Path) -> bool:
    """`root` holds rag-harness's own pyproject.toml and a git checkout: not site-packages in a user's repo."""
    try:
        project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8")).get("project", {})
    except (OSError, ValueError):
        return False
    return project.get("name") == "rag-harness" and (root / ".git").exists()


def code_version() -> str:
    """The package version, plus the commit when running from the project's source checkout (run keys use it)."""
    sha = git_sha()
    return f"{__version__}+{sha}" if sha else __version__


def cache_dir() -> Path:
    """Converted models, corpus embeddings and indexes: $HARNESS_CACHE, else the platform's user cache
    folder (platformdirs: $XDG_CACHE_HOME/rag-harness, by default ~/.cache/rag-harness on Linux)."""
    return folder_from_env("HARNESS_CACHE", Path(platformdirs.user_cache_dir("rag-harness", appauthor=False)),
                           "cache folder")
