"""Training task for the DRDNN family (drdnn and its ablations, mlp, dcnn, drnn), FACTS 3.

Examples are the separator's own batches: each track (resampled to 44.1 kHz, stereo averaged to
mono as in the paper) goes through the `drdnn` STFT, and the magnitude spectrograms of the
mixture and of the four stems are cut into 50-frame batches with 30 % overlap
(`drdnn.split_batches`, zero-padding the last one). An example is
`(mixture (M, bins), stems (sources, M, bins))`, stored as float16 to halve the memory (the loss
runs in float32). A track shorter than one batch is zero-padded to one batch, and a warning
counts such tracks; a track without all four stems is skipped, with a warning that counts them
(InputError when no training or no validation track is complete).

The loss compares raw magnitudes divided by one number (`network.loss_scale`): the MSE summed
over sources, or the discriminative objective with the config's `beta`. `prepare` fits the
per-band input scale on every training mixture frame.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import torch
from torch import nn

from explorer.audio.frontends import make_frontend
from explorer.data.track import Track
from explorer.errors import InputError
from explorer.models import drdnn
from explorer.progress import Job, Progress
from explorer.training.data import TrainingData
from explorer.training.frames import PooledTask, band_scale
from explorer.training.tasks import register_task

VALIDATION_BATCH = 32


def warn(message: str) -> None:
    print(f"explorer: warning: {message}", file=sys.stderr)


class DRDNNTask(PooledTask):
    """The training task for every kind in `drdnn.KINDS` (ablations are config values)."""

    validation_batch = VALIDATION_BATCH

    def __init__(self, config: drdnn.DRDNNConfig, data: TrainingData):
        self.kind = config.kind
        self.config = config
        self.data_description = data.description
        self.network = drdnn.DRDNNNetwork(config)
        self.frontend = make_frontend(config.frontend)
        self._make_pools(data)
        self.incomplete: set[str] = set()
        self.padded: set[str] = set()
        self._checked = False

    def model_config(self) -> dict[str, Any]:
        return self.config.to_dict()

    def module(self) -> nn.Module:
        return self.network

    @torch.inference_mode()
    def features(self, track: Track) -> tuple[np.ndarray, np.ndarray]:
        """`(mixture (batches, M, bins), stems (batches, sources, M, bins))`, float16 raw
        magnitudes; no batches for a track without all four stems."""
        config = self.config
        if not track.has_stems(*drdnn.SOURCES):
            self.incomplete.add(track.name)
            bins = config.bins
            return (
                np.zeros((0, config.batch_frames, bins), np.float16),
                np.zeros((0, len(drdnn.SOURCES), config.batch_frames, bins), np.float16),
            )
        track = track.resampled(self.frontend.sample_rate).mono()
        signals = np.concatenate([track.mixture] + [track.stems[s] for s in drdnn.SOURCES])
        magnitude = self.frontend.encode(torch.from_numpy(signals)).abs().transpose(-2, -1)
        if magnitude.shape[1] < config.batch_frames:
            self.padded.add(track.name)
        batches = drdnn.split_batches(magnitude, config.batch_frames, config.batch_step)
        batches = batches.half().numpy()
        return np.ascontiguousarray(batches[:, 0]), np.ascontiguousarray(batches[:, 1:])

    def check_sources(self) -> None:
        """Read every track once; warn about skipped and padded tracks, fail when nothing is
        left to train or validate on."""
        if self._checked:
            return
        for label, pool in (("training", self.train_pool), ("validation", self.validation_pool)):
            count = pool.example_count()
            names = [source.name for source in pool.sources]
            skipped = [name for name in names if name in self.incomplete]
            if count == 0 and skipped:
                raise InputError(
                    f"none of the {len(names)} {label} tracks in {self.data_description} has all "
                    f"four stems ({', '.join(drdnn.SOURCES)}); the DRDNN family needs them"
                )
            if skipped:
                warn(
                    f"skipped {len(skipped)} of {len(names)} {label} tracks without all four stems "
                    f"({', '.join(skipped[:3])}{', ...' if len(skipped) > 3 else ''})"
                )
            padded = [name for name in names if name in self.padded]
            if padded:
                warn(
                    f"{len(padded)} {label} track(s) shorter than one batch of "
                    f"{self.config.batch_frames} frames were zero-padded to one batch"
                )
        self._checked = True

    def prepare(self) -> Job[None]:
        """Fit the per-band input scale (standard deviation over every training mixture frame)."""
        self.check_sources()
        bins = self.config.bins
        total, squares, count = np.zeros(bins), np.zeros(bins), 0
        sources = len(self.train_pool.sources)
        for index, (mixture, _stems) in enumerate(self.train_pool.all_examples()):
            frames = mixture.reshape(-1, bins).astype(np.float64)
            total += frames.sum(axis=0)
            squares += np.square(frames).sum(axis=0)
            count += len(frames)
            yield Progress(index + 1, sources, f"spectrograms {index + 1}/{sources}")
        self.network.scale.copy_(band_scale(total, squares, count))

    def examples_per_epoch(self) -> int:
        self.check_sources()
        return super().examples_per_epoch()

    def loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        mixture, stems = (part.float() for part in batch)
        return batch_loss(self.network, mixture, stems)


def batch_loss(
    network: drdnn.DRDNNNetwork, mixture: torch.Tensor, stems: torch.Tensor
) -> torch.Tensor:
    """The config's objective on raw magnitudes `mixture (batch, M, bins)`, `stems (batch,
    sources, M, bins)`, both divided by `network.loss_scale`."""
    estimates, _ = network.estimates(mixture)
    scale = network.loss_scale
    estimates, targets = estimates / scale, stems / scale
    if network.config.objective == "discriminative":
        return drdnn.discriminative_loss(estimates, targets, network.config.beta)
    return drdnn.mse_loss(estimates, targets)


def _task(model_config: dict[str, Any], data: TrainingData) -> DRDNNTask:
    return DRDNNTask(drdnn.DRDNNConfig.from_dict(model_config), data)


for _kind in drdnn.KINDS:
    register_task(_kind, _task, target=None)  # tracks lacking a stem are skipped, not fatal
