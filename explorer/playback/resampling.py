"""Resample only the part of a signal that an edit changed.

When the output device needs another sample rate, the material is resampled once. A later
edit of `[start, stop)` must not resample the whole stem again (that would take longer than a
block), so we resample a window around the range and keep only the part of it that the
window's edges cannot reach.

This matches a full `scipy.signal.resample_poly` of the whole stem: that is an FIR filter
whose output `j` depends only on the inputs within `half_length` of position `j * down / up`.
The window starts at a multiple of `down`, so its outputs fall on the same grid as the full
signal's.
"""

from __future__ import annotations

import math

import numpy as np

from explorer.audio.io import resample
from explorer.playback.buffers import ChunkedAudio

RESAMPLE_POLY_HALF_TAPS = 10  # scipy's resample_poly: half_len = 10 * max(up, down)


def resample_range(
    buffer: ChunkedAudio, start: int, stop: int, from_rate: int, to_rate: int
) -> tuple[int, np.ndarray]:
    """The resampled version of `buffer` around the changed range `[start, stop)`.

    Returns `(target_start, samples)`, `samples` shaped `(2, samples')` at `to_rate`: the
    outputs of a full resampling of `buffer` whose filters touch the changed range.
    """
    divisor = math.gcd(from_rate, to_rate)
    up, down = to_rate // divisor, from_rate // divisor
    reach = math.ceil(RESAMPLE_POLY_HALF_TAPS * max(up, down) / up) + 1  # in source samples
    target_frames = -(-buffer.frames * up // down)

    first = max(0, math.ceil((start - reach) * up / down))
    last = min(target_frames, math.floor((stop + reach) * up / down) + 1)
    margin = 2 * reach + down + 2
    window_start = max(0, (start - margin) // down * down)
    window_stop = min(buffer.frames, stop + margin)

    window = resample(buffer.to_array(window_start, window_stop), from_rate, to_rate)
    offset = window_start * up // down
    return first, np.ascontiguousarray(window[:, first - offset : last - offset])
