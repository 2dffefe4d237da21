"""Training compute, estimated machine-independently from parameter counts and tokens (docs/architecture.md §6).

For every forward of a watched model (the query tower, the passage tower, the generator) on T tokens:

    forward  FLOPs = 2 · N · T
    backward FLOPs = 4 · N · T      when the forward ran with grad into trainable parameters

N = the model's matmul parameters: every unique parameter outside embedding lookups (an output layer
tied to the input embedding counts, as it is a matmul); 4-bit weights count as the values they hold.
T = the real (unpadded) tokens of the forward: the attention mask's sum. A backward through a model costs
activation gradients (2·N·T) plus weight gradients (2·N·T); the estimate charges both even when only LoRA
adapters are trained (the weight-gradient half is then an upper bound), the convention behind the usual
C ≈ 6·N·T. Attention's context-length term and optimizer updates are left out. Forwards without grad
(retrieving candidates, the E-step's scoring, re-encoding the corpus or a re-ranked candidate set) cost the
forward only: every policy of harness/retrieval/refresh.py is charged what it encodes.

Used for: the per-step `train_flops` in the step log, the run's total `train_flops` cost metric, and
`--max-train-flops`. On GPUs, model FLOPs utilisation = per-step FLOPs / step seconds / device peak
(`step_flops` below is the number to divide).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping

import torch

FORWARD_FLOPS_PER_PARAM_TOKEN = 2
BACKWARD_FLOPS_PER_PARAM_TOKEN = 4


def matmul_parameter_count(module: torch.nn.Module) -> int:
    """N: unique parameters outside nn.Embedding lookups (a Linear sharing an embedding's weight counts)."""
    seen: set[int] = set()
    total = 0
    for sub in module.modules():
        if isinstance(sub, torch.nn.Embedding):
            continue
        for p in sub.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                total += _values_held(p)
    return total


def _values_held(p: torch.Tensor) -> int:
    quant_state = getattr(p, "quant_state", None)  # bitsandbytes 4-bit: packed storage, original shape here
    shape = getattr(quant_state, "shape", None)
    if shape is not None:
        return int(torch.Size(shape).numel())
    return p.numel()


def step_flops(n_params: int, tokens: int, backward: bool) -> float:
    """FLOPs of one forward (and its backward when `backward`) of a model with `n_params` on `tokens`."""
    per_token = FORWARD_FLOPS_PER_PARAM_TOKEN + (BACKWARD_FLOPS_PER_PARAM_TOKEN if backward else 0)
    return float(per_token) * n_params * tokens


def _tokens_in(args: tuple, kwargs: dict) -> int:
    """Real tokens of a forward call: the attention mask's sum, else the input ids' count.

    The features may come as a plain dict or a tokenizer's BatchEncoding (a Mapping, not a dict: what
    sentence-transformers' `encode` passes, so it would otherwise count 0 tokens)."""
    features = kwargs if kwargs else (args[0] if args and isinstance(args[0], Mapping) else {})
    mask = features.get("attention_mask")
    if isinstance(mask, torch.Tensor):
        return int(mask.sum())
    ids = features.get("input_ids", args[0] if args and isinstance(args[0], torch.Tensor) else None)
    return int(ids.numel()) if isinstance(ids, torch.Tensor) else 0


class FlopCounter:
    """Counts the estimated FLOPs of every forward of the models it watches (forward pre-hooks).

    A watched model running inside another watched model's forward is not counted twice. `take()` returns
    the FLOPs since the last take (one training step's), `total` everything counted.
    """

    def __init__(self) -> None:
        self.total = 0.0
        self._since_take = 0.0
        self._watched: dict[int, int] = {}  # id(module) -> N
        self._depth = threading.local()
        self._lock = threading.Lock()

    def __deepcopy__(self, memo: dict) -> "FlopCounter":
        """A deep copy of a watched model (a snapshot tower, a posterior retriever) keeps counting into this
        counter: its hooks hold this object, which cannot be copied anyway (a lock, a thread-local)."""
        return self

    def watch(self, module: torch.nn.Module | None) -> None:
        if module is None or id(module) in self._watched:
            return
        self._watched[id(module)] = matmul_parameter_count(module)
        module.register_forward_pre_hook(self._before, with_kwargs=True)
        module.register_forward_hook(self._after, with_kwargs=True, always_call=True)

    def _before(self, module, args, kwargs):
        depth = getattr(self._depth, "value", 0)
        self._depth.value = depth + 1
        if depth == 0 and not getattr(self._depth, "paused", False):
            n = self._watched.get(id(module)) or matmul_parameter_count(module)
            backward = torch.is_grad_enabled() and any(p.requires_grad for p in module.parameters())
            self.add(step_flops(n, _tokens_in(args, kwargs), backward))

    def _after(self, module, args, kwargs, output):
        self._depth.value = max(0, getattr(self._depth, "value", 1) - 1)

    def add(self, flops: float) -> None:
        with self._lock:
            self.total += flops
            self._since_take += flops

    @contextlib.contextmanager
    def uncounted(self):
        """This thread's forwards inside are not counted (a sharded generator's zero-weight calls that keep
        the processes in step: they compute nothing the run uses)."""
        self._depth.paused = True
        try:
            yield
        finally:
            self._depth.paused = False

    def take(self) -> float:
        with self._lock:
            flops, self._since_take = self._since_take, 0.0
        return flops
