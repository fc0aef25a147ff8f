"""Training task for the mod-cos autoencoder and its variants (FACTS 2), for the shared loop.

Examples are mono segments of N samples (44100) with 50 % overlap, cut from the vocals and the
accompaniment of each track. Each epoch visits the training tracks in a seeded random order,
in sets of 4; within a set the vocal segments and the accompaniment segments are shuffled
independently, so every batch pairs a vocal segment with a random accompaniment segment (the
paper's re-pairing corruption). A batch is `(vocals, accompaniment, noise)` with Gaussian noise
of sigma 1e-4 drawn from the same seeded stream, so a loss is a pure function of its batch.
Validation pairs each track's own stems (the true mixture) with fixed noise.

The loss is `neg-SNR(v, D(E(v + n))) + 0.5 TV(E(m))` after removing the batch means
(`modcos.training_loss`). The sorting by kernel frequency happens at every forward pass (see
`explorer.models.modcos`), which is the paper's "sort after each update" without touching the
loop or Adam's state. A NaN or infinite loss stops the run with a `TrainingDiverged` message;
the loop has then not written anything for the epoch in flight, so the checkpoint on disk keeps
the last completed (good) epoch.

`paper_training_config()` gives the paper's optimisation: Adam lr 1e-4, batch 8, seed 218, a
fixed number of passes (10; the code's 8), no plateau schedule.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from explorer.audio.metrics import is_silent
from explorer.data.track import ACCOMPANIMENT
from explorer.errors import InputError
from explorer.models import modcos
from explorer.progress import Job
from explorer.training.data import TrackSource, TrainingData
from explorer.training.loop import TrainingConfig
from explorer.training.tasks import register_task

PAPER_EPOCHS = 10
PAPER_SEED = 218
PAPER_BATCH = 8
VALIDATION_NOISE_SEED = 12345
# Decoded training audio is kept in memory up to this many samples (about 0.8 GB of float32
# for vocals and accompaniment); beyond it tracks are reloaded set by set, as the authors do.
CACHE_SAMPLES = 100_000_000


class TrainingDiverged(InputError):
    """The loss became NaN or infinite: the run stops, keeping its last good checkpoint."""


def paper_training_config(**overrides: Any) -> TrainingConfig:
    """Adam lr 1e-4, batch 8, seed 218, 10 passes, no halving or early stop [paper, code]."""
    values: dict[str, Any] = {
        "epochs": PAPER_EPOCHS,
        "batch_size": PAPER_BATCH,
        "learning_rate": 1e-4,
        "seed": PAPER_SEED,
        "halve_patience": 10**6,
        "stop_patience": 10**6,
    }
    values.update(overrides)
    return TrainingConfig(**values)


def segment_starts(length: int, segment: int) -> range:
    """Starts of the segments of `segment` samples with 50 % overlap that fit in `length`."""
    hop = max(1, segment // 2)
    return range(0, max(0, length - segment) + 1, hop) if length >= segment else range(0)


class ModCosTask:
    """The training task for every kind in `modcos.VARIANTS`."""

    def __init__(self, config: modcos.ModCosConfig, data: TrainingData):
        self.kind = config.kind
        self.config = config
        self.data_description = data.description
        self.network = modcos.ModCosAutoencoder(config)
        self.train_sources = data.train
        self.validation_sources = data.validation
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._cached_samples = 0
        self._position = (0, 0)
        self._phase = "training"

    def model_config(self) -> dict[str, Any]:
        return self.config.to_dict()

    def module(self) -> nn.Module:
        return self.network

    def prepare(self) -> Job[None]:
        yield from ()

    # -- data
    def signals(self, source: TrackSource) -> tuple[np.ndarray, np.ndarray]:
        """Mono vocals and accompaniment of a track at the model's rate, `(samples,)` each."""
        if source.name in self._cache:
            return self._cache[source.name]
        track = source.load()
        track.require_stems("vocals", ACCOMPANIMENT)
        track = track.resampled(self.config.sample_rate).mono()
        pair = (
            np.ascontiguousarray(track.stems["vocals"][0], dtype=np.float32),
            np.ascontiguousarray(track.stems[ACCOMPANIMENT][0], dtype=np.float32),
        )
        if self._cached_samples + pair[0].size <= CACHE_SAMPLES:
            self._cache[source.name] = pair
            self._cached_samples += pair[0].size
        return pair

    def segments(self, signal: np.ndarray) -> np.ndarray:
        """`(segments, N)` with 50 % overlap (a view when possible)."""
        size = self.config.segment_samples
        starts = segment_starts(signal.size, size)
        if not starts:
            return np.zeros((0, size), dtype=np.float32)
        return np.stack([signal[start : start + size] for start in starts])

    def examples_per_epoch(self) -> int:
        size = self.config.segment_samples
        return sum(
            len(segment_starts(self.signals(source)[0].size, size)) for source in self.train_sources
        )

    def train_batches(self, seed: int, epoch: int, batch_size: int) -> Iterator[tuple]:
        """Sets of `set_size` tracks in a seeded order; within a set, vocal and accompaniment
        segments are shuffled independently (random re-pairing)."""
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(self.train_sources))
        self._phase, step = "training", 0
        for first in range(0, len(order), self.config.set_size):
            chosen = [
                self.train_sources[index] for index in order[first : first + self.config.set_size]
            ]
            pairs = [self.signals(source) for source in chosen]
            vocals = np.concatenate([self.segments(pair[0]) for pair in pairs])
            accompaniment = np.concatenate([self.segments(pair[1]) for pair in pairs])
            vocals = vocals[rng.permutation(len(vocals))]
            accompaniment = accompaniment[rng.permutation(len(accompaniment))]
            for start in range(0, len(vocals), batch_size):
                piece = slice(start, start + batch_size)
                noise = (
                    rng.standard_normal(vocals[piece].shape, dtype=np.float32)
                    * self.config.noise_std
                )
                step += 1
                self._position = (epoch + 1, step)
                yield vocals[piece], accompaniment[piece], noise

    def validation_batches(self) -> Iterator[tuple]:
        rng = np.random.default_rng(VALIDATION_NOISE_SEED)
        self._phase = "validation"
        for source in self.validation_sources:
            vocals, accompaniment = (self.segments(signal) for signal in self.signals(source))
            # Silent vocal segments (the evaluation's rule) would only add neg-SNR's constant.
            audible = [not is_silent(segment) for segment in vocals]
            vocals, accompaniment = vocals[audible], accompaniment[audible]
            for start in range(0, len(vocals), PAPER_BATCH):
                piece = slice(start, start + PAPER_BATCH)
                noise = (
                    rng.standard_normal(vocals[piece].shape, dtype=np.float32)
                    * self.config.noise_std
                )
                yield vocals[piece], accompaniment[piece], noise

    # -- loss
    def loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        vocals, accompaniment, noise = batch
        value = modcos.training_loss(self.network, vocals, accompaniment, noise)
        if not torch.isfinite(value):
            epoch, step = self._position
            where = (
                f"epoch {epoch}, batch {step}"
                if self._phase == "training"
                else f"validation after epoch {epoch}"
            )
            raise TrainingDiverged(
                f"training diverged: the {self.kind} loss became {float(value.detach())} at {where}; stopped, and the "
                "checkpoint keeps the last completed epoch (try a lower --learning-rate)"
            )
        return value


def _task(model_config: dict[str, Any], data: TrainingData) -> ModCosTask:
    config = modcos.ModCosConfig.from_dict(model_config)
    if not data.train:
        raise InputError(f"no training tracks in {data.description}")
    return ModCosTask(config, data)


for _kind in modcos.VARIANTS:
    register_task(_kind, _task)
