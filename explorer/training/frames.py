"""Shuffled example batches from tracks, in bounded memory, for any model family.

A family turns one track into per-example arrays with a `features(track) -> tuple of arrays`
function (all arrays share their first axis: frames for the DAEs, segments for waveform models).
`ExamplePool` computes them per track, keeps them in memory while the total fits `budget_bytes`,
and otherwise recomputes them each epoch in pools of `pool_tracks` tracks. Each epoch shuffles the
track order and the examples within a pool with a generator seeded by `(seed, epoch)`, so an epoch
is the same whether or not the run was resumed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from explorer.data.track import Track
from explorer.training.data import TrackSource, TrainingData

Features = Callable[[Track], tuple[np.ndarray, ...]]
DEFAULT_BUDGET_BYTES = 2 << 30


class ExamplePool:
    def __init__(
        self,
        sources: Sequence[TrackSource],
        features: Features,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
        pool_tracks: int = 8,
    ):
        self.sources = list(sources)
        self.features = features
        self.budget_bytes = budget_bytes
        self.pool_tracks = max(1, pool_tracks)
        self._cache: dict[int, tuple[np.ndarray, ...]] = {}
        self._cached_bytes = 0
        self._counts: dict[int, int] = {}

    def track_examples(self, index: int) -> tuple[np.ndarray, ...]:
        """The examples of track `index`, from the cache when they fit in it."""
        if index in self._cache:
            return self._cache[index]
        arrays = self.features(self.sources[index].load())
        self._counts[index] = len(arrays[0])
        size = sum(array.nbytes for array in arrays)
        if self._cached_bytes + size <= self.budget_bytes:
            self._cache[index] = arrays
            self._cached_bytes += size
        return arrays

    def example_count(self) -> int:
        """Examples per epoch (computes every track once)."""
        for index in range(len(self.sources)):
            if index not in self._counts:
                self.track_examples(index)
        return sum(self._counts.values())

    def all_examples(self) -> Iterator[tuple[np.ndarray, ...]]:
        """Each track's examples, in order (fitting normalisers, validation)."""
        for index in range(len(self.sources)):
            yield self.track_examples(index)

    def ordered_batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, ...]]:
        """Each track's examples in order, cut into batches of at most `batch_size` (validation)."""
        for arrays in self.all_examples():
            for start in range(0, len(arrays[0]), batch_size):
                yield tuple(array[start : start + batch_size] for array in arrays)

    def batches(self, seed: int, epoch: int, batch_size: int) -> Iterator[tuple[np.ndarray, ...]]:
        """Shuffled batches `(batch, ...)` for one epoch; the last batch may be smaller."""
        # Computing every track first makes the pool size the same in every process, so a
        # resumed run shuffles exactly as an uninterrupted one.
        self.example_count()
        generator = np.random.default_rng([seed, epoch])
        order = generator.permutation(len(self.sources))
        pool_size = len(self.sources) if self._all_cached() else self.pool_tracks
        for start in range(0, len(order), pool_size):
            parts = [self.track_examples(int(index)) for index in order[start : start + pool_size]]
            arrays = tuple(np.concatenate(group) for group in zip(*parts, strict=True))
            permutation = generator.permutation(len(arrays[0]))
            for first in range(0, len(permutation), batch_size):
                chosen = permutation[first : first + batch_size]
                yield tuple(array[chosen] for array in arrays)

    def _all_cached(self) -> bool:
        return len(self._cache) == len(self.sources)


def band_scale(
    total: np.ndarray, squares: np.ndarray, count: int, floor: float = 1e-5
) -> torch.Tensor:
    """Per-band standard deviation `(bins,)` (unbiased) from running float64 sums of values and
    squared values over `count` frames, floored so silent bands do not divide by zero."""
    variance = np.maximum(squares / count - (total / count) ** 2, 0.0) * count / max(count - 1, 1)
    return torch.from_numpy(np.sqrt(variance)).float().clamp_min(floor)


class PooledTask:
    """The batching half of a training task whose examples are frames held in ExamplePools
    (DAE, DRDNN, naive AE): a subclass gives `features(track)` and `validation_batch`.
    `explorer train --stream` swaps both pools for cached ones, by attribute."""

    validation_batch = 1024

    def _make_pools(self, data: TrainingData) -> None:
        self.train_pool = ExamplePool(data.train, self.features)
        self.validation_pool = ExamplePool(data.validation, self.features)

    def examples_per_epoch(self) -> int:
        return self.train_pool.example_count()

    def train_batches(self, seed: int, epoch: int, batch_size: int) -> Iterator[tuple]:
        return self.train_pool.batches(seed, epoch, batch_size)

    def validation_batches(self) -> Iterator[tuple]:
        return self.validation_pool.ordered_batches(self.validation_batch)
