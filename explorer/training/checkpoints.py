"""Training checkpoints: the registry's atomic checkpoint plus the state needed to resume.

While a run is in progress its checkpoint (rewritten atomically after every epoch) carries, in
`extra["training"]`: the completed epoch count, the optimiser, the plateau schedule, the torch RNG
state, the best weights so far, the loss history and the training config. A run killed at any
moment (SIGKILL included) resumes from the last completed epoch and loses only the epoch in
flight. The finished checkpoint keeps only the best weights (optionally fp16), the config, the
provenance and the history, so it is small enough to ship.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from explorer.errors import InputError
from explorer.models.registry import load_checkpoint, save_checkpoint


def save_progress(
    path: Path,
    kind: str,
    model_config: dict,
    state_dict: dict[str, torch.Tensor],
    provenance: dict[str, Any],
    training_state: dict[str, Any],
) -> Path:
    """An in-progress checkpoint that `--resume` can continue."""
    return save_checkpoint(
        path, kind, model_config, state_dict, provenance, {"training": training_state}
    )


def save_final(
    path: Path,
    kind: str,
    model_config: dict,
    state_dict: dict[str, torch.Tensor],
    provenance: dict[str, Any],
    history: list[dict],
    half: bool = False,
) -> Path:
    """The finished model; `half` stores floating-point weights as fp16 (shipped demo weights)."""
    if half:
        state_dict = {
            key: value.half() if value.is_floating_point() else value
            for key, value in state_dict.items()
        }
    return save_checkpoint(
        path, kind, model_config, state_dict, provenance, {"history": history, "finished": True}
    )


def read_resume(path: str | Path, kinds: str | tuple[str, ...] | None = None) -> dict[str, Any]:
    """A checkpoint that can be resumed: InputError if it is of another kind, corrupt, or holds
    no training state (a finished run or shipped weights)."""
    payload = load_checkpoint(path, kinds)
    training = (payload.get("extra") or {}).get("training")
    if not isinstance(training, dict) or not {"epoch", "optimizer", "schedule", "config"} <= set(
        training
    ):
        finished = bool((payload.get("extra") or {}).get("finished"))
        reason = "its run already finished" if finished else "it holds no training state"
        raise InputError(f"cannot resume from {Path(path).name}: {reason}")
    return payload
