"""One run on N processes through accelerate: who writes, which part of a batch is mine, gradients summed.

    accelerate launch --num_processes 8 -m harness run --plugin rag_token      # 8 GPUs (NCCL)
    torchrun --standalone --nproc_per_node 2 -m harness run --plugin rag_token # CPU (gloo): what tests run
    harness run --plugin rag_token --processes 2                                # launches one of the above

A plain `harness run` never creates an Accelerator: every helper here is the identity for one process.

How a step stays the step of one process (docs/scaling.md has the long form):
- every process loads the same models with the same seed, reads every global batch in the same order, and
  works on its shard of it: contiguous rows, the first processes taking one more when the batch does not
  divide (the split of accelerate's `split_between_processes`);
- each process back-propagates its share of the batch's loss (a mean over its shard times |shard|/|batch|,
  so the shares add up to the batch mean), and before every optimizer step the gradients are summed over
  the processes in one all-reduce of one flat buffer (accelerate's `reduce`), which is what DDP's buckets do;
- so every process applies the update one process would apply to the whole batch; the models stay equal
  and the step count and learning-rate schedule are those of one process.

Why not torch's DistributedDataParallel wrapper (`accelerator.prepare(model)`)? It all-reduces inside every
backward and needs every process to run the same number of backward passes over the same parameters. The
strategies back-propagate one step in pieces whose number depends on the shard (micro-batches, GradCache
chunks, JSA's M-step chunks), several towers of which a step may leave some untouched, and a last batch
that may leave a process nothing; summing the gradients once per step is exact in all those cases.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Sequence
from typing import Any

import torch

from harness import env
from harness.errors import UserError


def launched_processes() -> int:
    """How many processes this run was launched with (accelerate launch / torchrun set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def start_accelerator():
    """An Accelerator when launched on several processes, else None: one process stays plain PyTorch."""
    if launched_processes() <= 1:
        return None
    from accelerate import Accelerator

    # without a GPU, accelerate sets up its gloo process group only when told the run is on the CPU; left
    # alone it sees one process (DistributedType.NO) and every process would train the whole batch alone
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    # left to the interpreter's teardown, the process group's C++ threads may outlive Python and abort the
    # process on its way out: torch asks for destroy_process_group (a no-op once destroyed)
    atexit.register(accelerator.state.destroy_process_group)
    if accelerator.distributed_type.value in ("DEEPSPEED", "MEGATRON_LM"):
        raise UserError(f"accelerate config asks for {accelerator.distributed_type.value}: the harness runs data "
                        "parallel, with the generator's weights sharded by FSDP for generators too large for one "
                        "device (an FSDP accelerate config, docs/scaling.md)")
    if accelerator.mixed_precision == "fp16":
        raise UserError("fp16 mixed precision is not supported (its loss scaler would need prepared optimizers); "
                        "use --mixed_precision bf16 or no")
    return accelerator


def main_process_first(accelerator):
    """A context in which the main process goes first and the others follow: a model built or converted into
    the cache once, not by every process at once (a plain context with one process)."""
    import contextlib

    return accelerator.main_process_first() if accelerator is not None else contextlib.nullcontext()


# -- the generator sharded (FSDP) ---------------------------------------------------------------------
def generator_sharding(accelerator) -> bool:
    """Whether this launched run shards the generator's frozen weights: an FSDP accelerate config (GPUs), or
    HARNESS_FSDP=1 (any launch, the CPU included, where accelerate has no FSDP)."""
    if accelerator is None:
        return False
    return accelerator.distributed_type.value == "FSDP" or env.fsdp()


def shard_generator(model: torch.nn.Module, accelerator) -> torch.nn.Module:
    """FSDP2 (`fully_shard`) over every process: each decoder layer, then the whole model; each process keeps
    1/N of the weights and gathers a layer's only while it computes. Call before LoRA: the adapters added
    after stay whole on every process and train through the per-step gradient sum, as in data parallel."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    layer_classes = set(getattr(model, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in layer_classes]
    if not layers:
        raise UserError(f"cannot shard generator {type(model).__name__}: it names no decoder layer class "
                        "(_no_split_modules); run it without FSDP")
    mesh = init_device_mesh(accelerator.device.type, (accelerator.num_processes,))
    for p in model.parameters():
        p.requires_grad_(False)  # the base stays frozen (LoRA trains); nothing sharded needs a gradient
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def held_fraction(model: torch.nn.Module) -> float:
    """The share of `model`'s weights stored on this process (1.0 unsharded, about 1/N under FSDP)."""
    held = total = 0
    for p in model.parameters():
        total += p.numel()  # a DTensor's numel is the whole tensor's
        held += p.to_local().numel() if hasattr(p, "to_local") else p.numel()
    return held / max(total, 1)


def lockstep_calls(accelerator, batch_size: int, chunk: int) -> int:
    """How many chunk calls every process makes for one global batch when the generator is sharded: those
    of the largest shard (`chunk` examples at a time, 0 = a whole shard at once). Its sharded layers gather
    their weights from every process in each forward and backward, so every process must call it as often."""
    largest = -(-batch_size // accelerator.num_processes)
    return -(-largest // (chunk or largest)) if largest else 0


# -- sharding -------------------------------------------------------------------------------------
def shard(accelerator, items: Sequence) -> list:
    """This process's contiguous part of `items` (all of it without an accelerator)."""
    if accelerator is None:
        return list(items)
    start, stop = shard_bounds(len(items), accelerator.num_processes, accelerator.process_index)
    return list(items[start:stop])


def shard_bounds(n: int, processes: int, index: int) -> tuple[int, int]:
    """[start, stop) of process `index` in `n` rows: the split of accelerate's `split_between_processes`
    (contiguous, the first n % processes processes take one more)."""
    base, extra = divmod(n, processes)
    start = index * base + min(index, extra)
    return start, start + base + (1 if index < extra else 0)


def gather_in_order(accelerator, items: list) -> list:
    """Every process's list, concatenated in process order (the order of the shards): picklable items."""
    if accelerator is None:
        return items
    from accelerate.utils import gather_object

    return list(gather_object(items))


def broadcast_from_main(accelerator, value: Any) -> Any:
    """The main process's `value` on every process (picklable)."""
    if accelerator is None:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value], from_process=0)[0]


def broadcast_array(accelerator, array, shape: tuple[int, ...]):
    """The main process's float32 array (given only there) on every process, as a NumPy array."""
    if accelerator is None:
        return array
    from accelerate.utils import broadcast

    tensor = torch.from_numpy(array).contiguous() if accelerator.is_main_process else torch.empty(shape)
    return broadcast(tensor.to(accelerator.device), from_process=0).cpu().numpy()


def sum_over_processes(accelerator, value: float | list[float]) -> float | list[float]:
    """A number (or a list of numbers, in one all-reduce) summed over the processes."""
    if accelerator is None:
        return value
    values = [value] if not isinstance(value, list) else value
    summed = accelerator.reduce(torch.tensor(values, dtype=torch.float64, device=accelerator.device), reduction="sum")
    out = [float(v) for v in summed.cpu()]
    return out if isinstance(value, list) else out[0]


def all_rows(accelerator, local: torch.Tensor, local_count: int | None = None) -> torch.Tensor:
    """The rows of every process's `local` (B_r, D), in process order; this process's rows keep their grad.

    What in-batch negatives need: each process encodes its shard with grad, every process scores the whole
    batch. Summing the gradients over the processes then gives exactly the one-process gradient, since each
    process back-propagates the whole loss into its own rows.
    """
    if accelerator is None:
        return local
    sizes = [int(n) for n in accelerator.gather(torch.tensor([local.shape[0]], device=accelerator.device)).tolist()]
    padded = torch.zeros(max(sizes), *local.shape[1:], dtype=local.dtype, device=accelerator.device)
    padded[: local.shape[0]] = local.detach()
    everything = accelerator.gather(padded).view(len(sizes), max(sizes), *local.shape[1:])
    parts = [everything[i, :n] for i, n in enumerate(sizes)]
    parts[accelerator.process_index] = local
    return torch.cat(parts)


# -- gradients ------------------------------------------------------------------------------------
def sum_gradients(accelerator, optimizer: torch.optim.Optimizer) -> None:
    """Sum every trained parameter's gradient over the processes: one all-reduce of one flat buffer.

    A parameter with no gradient on any process keeps none (AdamW then skips it, as with one process).
    """
    if accelerator is None:
        return
    params = [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
    if not params:
        return
    device = params[0].device
    grads = [p.grad.reshape(-1).float() if p.grad is not None else torch.zeros(p.numel(), device=device)
             for p in params]
    present = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=device)
    flat = accelerator.reduce(torch.cat([*grads, present]), reduction="sum")
    offset = 0
    for p in params:
        p.grad = flat[offset : offset + p.numel()].view_as(p).to(p.dtype).clone()
        offset += p.numel()
    for p, any_grad in zip(params, flat[offset:].tolist()):
        if not any_grad:
            p.grad = None


# -- launching ------------------------------------------------------------------------------------
def launch_command(processes: int, argv: list[str]) -> list[str]:
    """The command that runs `python -m harness ARGV` on `processes` processes: `accelerate launch` on GPUs
    (one process per GPU, NCCL), torchrun on the CPU (gloo). accelerate's own CPU launch starts one process
    unless MPI is installed (`--cpu --num_processes N` without `--mpirun_hostfile` runs a single process)."""
    import sys

    module = ["-m", "harness", *without_processes_option(argv)]
    if not torch.cuda.is_available():
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
                *module]
    if processes > torch.cuda.device_count():
        raise UserError(f"--processes {processes}: only {torch.cuda.device_count()} GPU(s) visible; "
                        f"use at most {torch.cuda.device_count()}")
    return [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", *module]


def without_processes_option(argv: list[str]) -> list[str]:
    """ARGV minus `--processes N` / `--processes=N` (the launched processes must not launch again)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--processes":
            skip = True
        elif not arg.startswith("--processes="):
            out.append(arg)
    return out


def launch(processes: int, argv: list[str]) -> int:
    """Run `harness ARGV` on `processes` processes through accelerate; returns its exit code."""
    import subprocess

    return subprocess.call(launch_command(processes, argv))
