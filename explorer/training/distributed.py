"""Distributed data parallel training under torchrun, on PyTorch's own engine.

`explorer train` runs unchanged under `torchrun --nproc_per_node=N` (or across nodes with
torchrun's rendezvous): torchrun sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous address,
and `session(args)` then

- starts the process group: NCCL when the device is CUDA (one GPU per process, `cuda:LOCAL_RANK`),
  gloo on CPU;
- checks that every rank runs the same configuration (kind, model config, training config, data,
  world size), and that the world size divides the batch;
- on an elastic restart (torchrun `--max-restarts`, after any rank died), makes every rank resume
  from the last checkpoint that rank 0 wrote;
- prefixes every input error with the rank that found it.

`DistributedTask` wraps a family's `TrainingTask` for the generic loop (no other change to it):

- the loss runs through `DistributedDataParallel` (wrapping a module whose forward is the task's
  loss, so any family's loss works), which averages gradients across ranks in backward;
- batches: each rank keeps its `batch_size / world_size` slice of every global batch the task
  yields (the task shuffles with a generator seeded by `(seed, epoch)`, the same on every rank,
  which is what a DistributedSampler's `set_epoch` gives); a streaming task (`--stream`) already
  yields its shard from a torch `DistributedSampler`;
- validation batches are dealt round-robin to the ranks, and the loop's loss sums are reduced
  with `all_reduce` (then broadcast from rank 0, so every rank holds the same bits): the plateau
  schedule, and so the learning-rate halving and early stopping, is decided identically on
  every rank;
- only rank 0 writes checkpoints and shows progress.

With mean losses and equal shards, the averaged gradient is the gradient of the mean loss over
the global batch, so N processes with batch B train the same weights as one process with batch
B (to rounding).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from explorer.errors import InputError
from explorer.training.loop import TaskWrapper

DEFAULT_TIMEOUT_S = 1800


@dataclass(frozen=True)
class Session:
    """This process's place in a distributed run."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_SESSION: Session | None = None


def launched() -> bool:
    """True under torchrun (or any launcher that sets WORLD_SIZE > 1)."""
    return _environment_int("WORLD_SIZE", 1) > 1


def current() -> Session | None:
    return _SESSION


def is_main() -> bool:
    return _SESSION is None or _SESSION.is_main


def rank_and_world() -> tuple[int, int]:
    return (0, 1) if _SESSION is None else (_SESSION.rank, _SESSION.world_size)


def _environment_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InputError(f"environment variable {name} must be an integer, got '{value}'") from None


@contextlib.contextmanager
def session(args: argparse.Namespace) -> Iterator[torch.device]:
    """The device to train on; under torchrun, also the process group for the whole block.
    Input errors raised inside name the rank that raised them."""
    from explorer.device import resolve_device

    global _SESSION
    if not launched():
        yield resolve_device(args.device)
        return
    rank, world = _environment_int("RANK", 0), _environment_int("WORLD_SIZE", 1)
    try:
        started = _start(args.device, rank, world)
        _SESSION = started
        _resume_after_restart(args)
        yield started.device
    except InputError as error:
        raise InputError(f"rank {rank} of {world}: {error}") from None
    except RuntimeError as error:
        if not any(word in str(error) for word in ("gloo", "NCCL", "nccl", "Connection")):
            raise
        # A peer died or hung; torchrun stops this rank too (and restarts all of them with
        # --max-restarts, which then resume from the last checkpoint).
        first = str(error).strip().splitlines()[0][:200]
        raise RuntimeError(
            f"rank {rank} of {world}: lost contact with another rank ({first})"
        ) from None
    finally:
        _SESSION = None
        _release_engines()
        if dist.is_initialized():
            dist.destroy_process_group()


def _start(device_spec: str, rank: int, world: int) -> Session:
    from explorer.device import resolve_device

    local_rank = _environment_int("LOCAL_RANK", 0)
    if not 0 <= rank < world:
        raise InputError(f"RANK {rank} is outside 0..{world - 1}")
    device = resolve_device(device_spec)
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise InputError(
                f"LOCAL_RANK {local_rank} but this node has {torch.cuda.device_count()} GPU(s); "
                "use --nproc_per_node at most the GPU count"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    timeout = timedelta(seconds=_environment_int("EXPLORER_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))
    try:
        store = _attempt_store(rank, world, timeout)
        dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=timeout)
    except (RuntimeError, ValueError) as error:
        raise InputError(f"cannot join the {backend} process group: {str(error)[:200]}") from None
    return Session(rank, world, local_rank, device, backend)


def _attempt_store(rank: int, world: int, timeout: timedelta) -> dist.Store | None:
    """Under torchrun, the rendezvous store with a prefix per restart attempt: the agent keeps
    one store across restarts, and without the prefix the restarted ranks would read the dead
    attempt's gloo addresses from it. None elsewhere (the default `env://` rendezvous)."""
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT")
    if attempt is None:
        return None
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    store = dist.TCPStore(
        os.environ.get("MASTER_ADDR", "127.0.0.1"),
        _environment_int("MASTER_PORT", 29500),
        world,
        is_master=not agent_store and rank == 0,
        timeout=timeout,
        multi_tenant=not agent_store,
    )
    return dist.PrefixStore(f"explorer/attempt-{attempt}", store)


def _resume_after_restart(args: argparse.Namespace) -> None:
    """After torchrun restarted the workers (a rank died), every rank continues from the last
    checkpoint rank 0 wrote, instead of starting over."""
    if _environment_int("TORCHELASTIC_RESTART_COUNT", 0) == 0 or args.resume:
        return
    if getattr(args, "seeds", 1) > 1 or not args.model:
        return
    from explorer.training import checkpoints

    path = Path(args.out or f"{args.model}.pt")
    if not path.exists():
        return
    try:
        checkpoints.read_resume(path, args.model)
    except InputError:
        return  # finished, or not ours: train from the start as asked
    args.resume = str(path)
    if is_main():
        print(f"explorer: restarted by torchrun: resuming every rank from {path}", file=sys.stderr)


_WRAPPED: list[DistributedTask] = []


def _release_engines() -> None:
    """Free every DDP engine while its process group still exists: a DDP object destroyed
    after `destroy_process_group` can hang in its destructor (seen with gloo)."""
    while _WRAPPED:
        _WRAPPED.pop()._engine = None
    gc.collect()


# ---------------------------------------------------------------- collectives
def agree(error: str | None) -> None:
    """A barrier that also shares failures: if any rank passes an error message, every rank
    raises an InputError naming the first failing rank (so no rank waits forever for one that
    gave up)."""
    if _SESSION is None:
        if error is not None:
            raise InputError(error)
        return
    errors: list[str | None] = [None] * _SESSION.world_size
    dist.all_gather_object(errors, error)
    for rank, message in enumerate(errors):
        if message is not None:
            raise InputError(f"rank {rank} failed: {message}" if rank != _SESSION.rank else message)


def check_same_configuration(description: dict[str, Any]) -> None:
    """InputError on every rank if any rank's configuration differs from rank 0's."""
    if _SESSION is None:
        return
    gathered: list[dict[str, Any] | None] = [None] * _SESSION.world_size
    dist.all_gather_object(gathered, description)
    reference = gathered[0] or {}
    for rank, other in enumerate(gathered[1:], start=1):
        differences = _differences(reference, other or {})
        if differences:
            shown = "; ".join(differences[:3])
            raise InputError(
                f"rank {rank}'s configuration differs from rank 0's ({shown}); every rank must "
                "run the same command"
            )


def _differences(first: Any, second: Any, prefix: str = "") -> list[str]:
    if isinstance(first, dict) and isinstance(second, dict):
        found: list[str] = []
        for key in sorted(set(first) | set(second), key=str):
            found += _differences(first.get(key), second.get(key), f"{prefix}{key}.")
        return found
    if first != second:
        return [f"{prefix.rstrip('.')}: {second!r} vs {first!r}"]
    return []


def all_sum(values: list[float]) -> list[float]:
    """Sums over ranks (float64), bitwise the same on every rank."""
    if _SESSION is None:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    dist.broadcast(tensor, src=0)
    return tensor.cpu().tolist()


def _collective_device() -> torch.device:
    assert _SESSION is not None
    return _SESSION.device if _SESSION.backend == "nccl" else torch.device("cpu")


# ---------------------------------------------------------------- the task wrapper
class _LossModule(nn.Module):
    """The task's network, with the task's loss as its forward: what DDP wraps, so that any
    family's loss (which calls its network however it likes) gets synchronised gradients."""

    def __init__(self, task: Any):
        super().__init__()
        self.network = task.module()
        self.task = task

    def forward(self, *batch: torch.Tensor) -> torch.Tensor:
        return self.task.loss(batch)


class DistributedTask(TaskWrapper):
    """A `TrainingTask` for one rank of a data-parallel run (see the module docstring)."""

    def __init__(self, task: Any, session: Session, find_unused_parameters: bool = False):
        self.task = task
        self.session = session
        self.kind, self.data_description = task.kind, task.data_description
        self.find_unused_parameters = find_unused_parameters
        self._engine: DistributedDataParallel | None = None
        _WRAPPED.append(self)

    def prepare(self):
        return self.task.prepare()

    def examples_per_epoch(self) -> int:
        return self.task.examples_per_epoch()

    def train_batches(self, seed: int, epoch: int, batch_size: int) -> Iterator[tuple]:
        if getattr(self.task, "sharded", False):
            yield from self.task.train_batches(seed, epoch, batch_size)
            return
        rank, world = self.session.rank, self.session.world_size
        for batch in self.task.train_batches(seed, epoch, batch_size):
            share = len(batch[0]) // world
            if share == 0:
                continue  # a last batch smaller than the world: skipped on every rank alike
            yield tuple(part[rank * share : (rank + 1) * share] for part in batch)

    def validation_batches(self) -> Iterator[tuple]:
        rank, world = self.session.rank, self.session.world_size
        for index, batch in enumerate(self.task.validation_batches()):
            if index % world == rank:
                yield batch

    def loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if not torch.is_grad_enabled():
            return self.task.loss(batch)  # validation: no collectives, shards may differ
        return self.engine()(*batch)

    def engine(self) -> DistributedDataParallel:
        """Built on the first training step, after `prepare` or a resume set the weights and
        the loop moved them to the device; DDP then broadcasts rank 0's state to every rank."""
        if self._engine is None:
            device = self.session.device
            self._engine = DistributedDataParallel(
                _LossModule(self.task),
                device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=self.find_unused_parameters,
                gradient_as_bucket_view=True,  # no extra copy of the gradients
            )
        return self._engine

    def reduce_sum(self, total: float, count: int) -> tuple[float, int]:
        """The loop's loss sums, summed over ranks."""
        total, count = all_sum([float(total), float(count)])
        return total, int(round(count))


def wrap(task: Any, config: Any, args: argparse.Namespace) -> Any:
    """The task to train in this process: streaming and/or distributed as asked; the task
    itself for a plain single-process run."""
    rank, world = rank_and_world()
    if config.batch_size % world:
        raise InputError(
            f"batch size {config.batch_size} is not divisible by the world size {world} "
            f"(each rank takes batch/{world} examples); use a multiple of {world}"
        )
    check_same_configuration(
        {
            "kind": task.kind,
            "model": task.model_config(),
            "training": config.to_dict(),
            "data": task.data_description,
            "stream": bool(getattr(args, "stream", False)),
            "world_size": world,
            "resume": bool(getattr(args, "resume", None)),
        }
    )
    if getattr(args, "stream", False):
        from explorer.training.cache import ArrayCache
        from explorer.training.streaming import StreamingTask

        task = StreamingTask(task, ArrayCache(args.cache), args.workers, rank, world, agree=agree)
    if _SESSION is None:
        return task
    return DistributedTask(task, _SESSION)
