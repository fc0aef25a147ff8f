"""The generic training loop: a generator yielding Progress, for every model family.

A family supplies a `TrainingTask` (its module, its batches and its loss); the loop supplies the
rest of the protocol shared by the papers: Adam, the plateau schedule (halve, then stop), seeds,
the device, per-epoch atomic checkpoints with everything needed to resume, the best weights, and
provenance. Progress payloads carry the losses: `{"epoch", "step", "loss"}` during an epoch and
`{"epoch", "train_loss", "validation_loss", "learning_rate", "improved"}` after it.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from explorer.errors import InputError
from explorer.progress import Job, Progress
from explorer.training import checkpoints
from explorer.training.schedule import PlateauSchedule

Batch = tuple[torch.Tensor, ...]


@dataclass(frozen=True)
class TrainingConfig:
    """FACTS 1 defaults: Adam lr 1e-4, betas (0.9, 0.999), batch 16, halve after 2 epochs without
    improvement, stop after 4. `max_steps_per_epoch` 0 means whole epochs (quick runs cap it)."""

    epochs: int = 100
    batch_size: int = 16
    learning_rate: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    halve_patience: int = 2
    stop_patience: int = 4
    factor: float = 0.5
    seed: int = 0
    max_steps_per_epoch: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise InputError("epochs, batch size and learning rate must be positive")

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["betas"] = list(self.betas)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        known = {field.name for field in fields(cls)}
        chosen = {key: value for key, value in values.items() if key in known}
        if "betas" in chosen:
            chosen["betas"] = tuple(chosen["betas"])
        return cls(**chosen)


class TaskWrapper:
    """A task around another one (distributed, streaming): what it does not override is the
    wrapped task's."""

    task: Any

    def __getattr__(self, name: str) -> Any:
        if name == "task":  # not set yet (copying, unpickling)
            raise AttributeError(name)
        return getattr(self.task, name)

    def model_config(self) -> dict[str, Any]:
        return self.task.model_config()

    def module(self) -> nn.Module:
        return self.task.module()


class TrainingTask(Protocol):
    """What a model family provides. Batches are tuples of arrays or tensors with the example
    axis first; the loop moves them to the device."""

    kind: str
    data_description: str

    def model_config(self) -> dict[str, Any]: ...

    def module(self) -> nn.Module: ...

    def prepare(self) -> Job[None]:
        """Fit data-dependent state (normalisers) on a fresh run; not called when resuming."""
        ...

    def examples_per_epoch(self) -> int: ...

    def train_batches(self, seed: int, epoch: int, batch_size: int) -> Iterator[tuple]: ...

    def validation_batches(self) -> Iterator[tuple]: ...

    def loss(self, batch: Batch) -> torch.Tensor:
        """The mean loss over the batch (a scalar with grad)."""
        ...


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(
    task: TrainingTask,
    config: TrainingConfig,
    device: torch.device,
    checkpoint: Path | None = None,
    resume: dict[str, Any] | None = None,
    half: bool = False,
) -> Job[dict[str, Any]]:
    """Train `task` under `config`; `resume` is a payload from `checkpoints.read_resume`.

    Returns `{"kind", "checkpoint", "epochs", "best_epoch", "final_loss", "stopped", "history"}`."""
    module = task.module().to(device)
    optimizer = torch.optim.Adam(module.parameters(), lr=config.learning_rate, betas=config.betas)
    schedule = PlateauSchedule(config.halve_patience, config.stop_patience, config.factor)
    history: list[dict[str, Any]] = []
    best_state: dict[str, torch.Tensor] | None = None
    start_epoch = 0
    if resume is not None:
        start_epoch, best_state, history = _restore(resume, module, optimizer, schedule, device)
        yield Progress(0, 1, f"resumed after epoch {start_epoch}")
    else:
        seed_everything(config.seed)
        yield from task.prepare()
    steps = -(-task.examples_per_epoch() // config.batch_size)
    if config.max_steps_per_epoch:
        steps = min(steps, config.max_steps_per_epoch)
    if steps == 0:
        raise InputError(f"no training examples in {task.data_description}")
    total = config.epochs * steps
    stopped = "max-epochs"
    for epoch in range(start_epoch, config.epochs):
        if schedule.bad >= schedule.stop_patience:
            stopped = "early"
            break
        train_loss = yield from _epoch(task, module, optimizer, config, device, epoch, steps, total)
        validation_loss = evaluate(task, module, device)
        improved, halve, stop = schedule.step(validation_loss)
        if improved:
            best_state = {key: value.detach().clone() for key, value in module.state_dict().items()}
        if halve:
            for group in optimizer.param_groups:
                group["lr"] *= config.factor
        record = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "validation_loss": validation_loss,
            "learning_rate": optimizer.param_groups[0]["lr"],
            "improved": improved,
        }
        history.append(record)
        if checkpoint is not None:
            state = _training_state(epoch + 1, optimizer, schedule, best_state, history, config)
            checkpoints.save_progress(
                checkpoint,
                task.kind,
                task.model_config(),
                module.state_dict(),
                _provenance(task, config, schedule, "in-progress"),
                state,
            )
        yield Progress(
            (epoch + 1) * steps,
            total,
            f"epoch {epoch + 1}: train {train_loss:.4g}, validation {validation_loss:.4g}",
            record,
        )
        if stop:
            stopped = "early"
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    provenance = _provenance(task, config, schedule, stopped)
    if checkpoint is not None:
        checkpoints.save_final(
            checkpoint,
            task.kind,
            task.model_config(),
            module.state_dict(),
            provenance,
            history,
            half,
        )
    return {
        "kind": task.kind,
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "epochs": schedule.epochs,
        "best_epoch": schedule.best_epoch,
        "final_loss": provenance["final_loss"],
        "stopped": stopped,
        "history": history,
    }


def _epoch(
    task: TrainingTask,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TrainingConfig,
    device: torch.device,
    epoch: int,
    steps: int,
    total: int,
) -> Job[float]:
    module.train()
    loss_sum, count, last_report = 0.0, 0, time.monotonic()
    for step, batch in enumerate(task.train_batches(config.seed, epoch, config.batch_size)):
        if step >= steps:
            break
        tensors = _to_device(batch, device)
        optimizer.zero_grad(set_to_none=True)
        loss = task.loss(tensors)
        loss.backward()
        optimizer.step()
        size = tensors[0].shape[0]
        loss_sum += float(loss.detach()) * size
        count += size
        if time.monotonic() - last_report > 0.25 or step + 1 == steps:
            last_report = time.monotonic()
            yield Progress(
                epoch * steps + step + 1,
                total,
                f"epoch {epoch + 1} step {step + 1}/{steps}",
                {"epoch": epoch + 1, "step": step + 1, "loss": loss_sum / count},
            )
    loss_sum, count = _reduced(task, loss_sum, count)
    return loss_sum / max(count, 1)


@torch.no_grad()
def evaluate(task: TrainingTask, module: nn.Module, device: torch.device) -> float:
    """Mean validation loss over examples (batches weighted by their size)."""
    module.eval()
    total, count = 0.0, 0
    for batch in task.validation_batches():
        tensors = _to_device(batch, device)
        size = tensors[0].shape[0]
        total += float(task.loss(tensors)) * size
        count += size
    total, count = _reduced(task, total, count)
    return total / count if count else math.nan


def _reduced(task: TrainingTask, total: float, count: int) -> tuple[float, int]:
    """Loss sums over every rank of a distributed run (`explorer.training.distributed`)."""
    reduce = getattr(task, "reduce_sum", None)
    return (total, count) if reduce is None else reduce(total, count)


def _to_device(batch: tuple, device: torch.device) -> Batch:
    return tuple(
        (torch.from_numpy(part) if isinstance(part, np.ndarray) else part).to(device)
        for part in batch
    )


def _training_state(
    epoch: int,
    optimizer: torch.optim.Optimizer,
    schedule: PlateauSchedule,
    best_state: dict[str, torch.Tensor] | None,
    history: list[dict],
    config: TrainingConfig,
) -> dict:
    state = {
        "epoch": epoch,
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "rng": torch.get_rng_state(),
        "history": history,
        "config": config.to_dict(),
    }
    if best_state is not None:
        state["best_state_dict"] = {key: value.detach().cpu() for key, value in best_state.items()}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def _restore(
    payload: dict[str, Any],
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: PlateauSchedule,
    device: torch.device,
) -> tuple[int, dict | None, list[dict]]:
    state = payload["extra"]["training"]
    try:
        module.load_state_dict(payload["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
    except (KeyError, RuntimeError, ValueError) as error:
        raise InputError(
            f"cannot resume: the checkpoint's training state does not fit this model ({str(error)[:120]})"
        ) from None
    torch.set_rng_state(state["rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    best = state.get("best_state_dict")
    best = None if best is None else {key: value.to(device) for key, value in best.items()}
    return int(state["epoch"]), best, list(state.get("history", []))


def _provenance(
    task: TrainingTask, config: TrainingConfig, schedule: PlateauSchedule, stopped: str
) -> dict[str, Any]:
    final = None if math.isinf(schedule.best) else schedule.best
    return {
        "data": task.data_description,
        "epochs": schedule.epochs,
        "seed": config.seed,
        "final_loss": final,
        "best_epoch": schedule.best_epoch,
        "stopped": stopped,
        "training": config.to_dict(),
    }
