"""The shared example helpers: the band scale from running sums, and in-order batches."""

from __future__ import annotations

import numpy as np

from explorer.training.frames import ExamplePool, band_scale


def test_band_scale_is_numpys_unbiased_std_with_a_floor() -> None:
    frames = np.random.default_rng(0).normal(size=(500, 6)) * np.arange(6)
    scale = band_scale(frames.sum(axis=0), np.square(frames).sum(axis=0), len(frames))
    expected = np.maximum(frames.std(axis=0, ddof=1), 1e-5)
    assert np.allclose(scale.numpy(), expected, rtol=1e-5)
    assert float(scale[0]) == np.float32(1e-5)


class _Source:
    def __init__(self, length: int):
        self.length = length

    def load(self) -> int:
        return self.length


def test_ordered_batches_cover_every_example_in_order() -> None:
    pool = ExamplePool(
        [_Source(7), _Source(3)], lambda length: (np.arange(length), -np.arange(length))
    )
    batches = list(pool.ordered_batches(4))
    assert [len(batch[0]) for batch in batches] == [4, 3, 3]
    assert np.array_equal(
        np.concatenate([batch[0] for batch in batches]), np.r_[np.arange(7), np.arange(3)]
    )
    assert all(np.array_equal(first, -second) for first, second in batches)
