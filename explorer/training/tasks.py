"""Model families' training tasks, by kind. A family registers a factory
`(model_config dict, TrainingData) -> TrainingTask`; `build_task` looks it up.

The DAE family (dae, mss-dae, sf) is registered here: examples are magnitude frames of the mono
mixture and vocals in the model's front-end; the loss is the MSE between the output and the
true vocal magnitude, both divided by the per-band scale fitted on the training mixtures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from explorer.audio.frontends import make_frontend
from explorer.data.track import Track
from explorer.errors import InputError
from explorer.models import dae
from explorer.progress import Job, Progress
from explorer.training.data import TrainingData
from explorer.training.frames import PooledTask, band_scale

TaskFactory = Callable[[dict[str, Any], TrainingData], Any]
_FACTORIES: dict[str, TaskFactory] = {}
VALIDATION_BATCH = 4096


_TARGETS: dict[str, str | None] = {}


def register_task(kind: str, factory: TaskFactory, target: str | None = "vocals") -> None:
    """`target`: the stem every training track must have, checked up front by `resolve_data`;
    None for families that check (and skip) tracks themselves."""
    _FACTORIES[kind] = factory
    _TARGETS[kind] = target


def data_target(kind: str) -> str | None:
    _import_family_tasks()
    return _TARGETS.get(kind, "vocals")


def _import_family_tasks() -> None:
    """Family task modules `explorer/training/*_task.py` register themselves on import."""
    import importlib
    import pkgutil

    from explorer import training

    for info in pkgutil.iter_modules(training.__path__):
        if info.name.endswith("_task"):
            importlib.import_module(f"explorer.training.{info.name}")


def trainable_kinds() -> list[str]:
    _import_family_tasks()
    return sorted(_FACTORIES)


def build_task(kind: str, model_config: dict[str, Any], data: TrainingData):
    _import_family_tasks()
    if kind not in _FACTORIES:
        raise InputError(
            f"cannot train model kind '{kind}' (trainable: {', '.join(trainable_kinds())})"
        )
    return _FACTORIES[kind](model_config, data)


class DAETask(PooledTask):
    """Training task for `dae`, `mss-dae` and `sf` (FACTS 1)."""

    validation_batch = VALIDATION_BATCH

    def __init__(self, config: dae.DAEConfig, data: TrainingData):
        self.kind = config.kind
        self.config = config
        self.data_description = data.description
        self.network = dae.MappingNetwork(config)
        self.frontend = make_frontend(config.frontend)
        self._make_pools(data)

    def model_config(self) -> dict[str, Any]:
        return self.config.to_dict()

    def module(self) -> nn.Module:
        return self.network

    @torch.inference_mode()
    def features(self, track: Track) -> tuple[np.ndarray, np.ndarray]:
        """Mono mixture and vocal magnitudes, `(frames, bins)` each, float32, not normalised."""
        track.require_stems("vocals")
        track = track.resampled(self.frontend.sample_rate).mono()
        signals = torch.from_numpy(np.concatenate([track.mixture, track.stems["vocals"]]))
        magnitude = self.frontend.encode(signals).abs().transpose(-2, -1).contiguous().numpy()
        return magnitude[0], magnitude[1]

    def prepare(self) -> Job[None]:
        """Fit the per-band scale on every training mixture frame (one pass, float64 sums)."""
        bins = self.config.bins
        total, squares, count = np.zeros(bins), np.zeros(bins), 0
        for index, (mixture, _vocals) in enumerate(self.train_pool.all_examples()):
            total += mixture.sum(axis=0, dtype=np.float64)
            squares += np.square(mixture, dtype=np.float64).sum(axis=0)
            count += len(mixture)
            yield Progress(
                index + 1,
                len(self.train_pool.sources),
                f"spectrograms {index + 1}/{len(self.train_pool.sources)}",
            )
        if count < 2:
            raise InputError(f"too little training audio in {self.data_description}")
        self.network.normalizer.scale.copy_(band_scale(total, squares, count))

    def loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        mixture, vocals = batch
        scale = self.network.normalizer.scale
        return nn.functional.mse_loss(self.network(mixture / scale), vocals / scale)


def _dae_task(model_config: dict[str, Any], data: TrainingData) -> DAETask:
    return DAETask(dae.DAEConfig.from_dict(model_config), data)


for _kind in dae.KINDS:
    register_task(_kind, _dae_task)
