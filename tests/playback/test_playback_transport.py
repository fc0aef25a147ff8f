"""Moving through the material: loop rules and the block clock, without a device."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.playback.mixer import Mixer
from explorer.playback.transport import NO_LOOP, Clock, advance, render_span
from tests.playback.playback_helpers import RATE, noise


def expected_indices(position: int, frames: int, loop: tuple[int, int], length: int) -> np.ndarray:
    """Material index of each rendered frame (-1: silence), written independently of
    `advance`: step one frame at a time."""
    indices = []
    for _ in range(frames):
        if loop[0] >= 0 and position < loop[1]:
            indices.append(position)
            position = loop[0] if position + 1 == loop[1] else position + 1
        elif position < length:
            indices.append(position)
            position += 1
        else:
            indices.append(-1)
    return np.array(indices)


@pytest.fixture(scope="module")
def plan_and_signal():
    signal = noise(0.05, seed=2)
    mixer = Mixer()
    mixer.load(signal, RATE)
    return mixer.plan, signal


@pytest.mark.parametrize(
    ("position", "frames", "loop"),
    [
        (0, 512, NO_LOOP),
        (2000, 512, NO_LOOP),  # runs past the end: silence
        (2205, 100, NO_LOOP),  # starts at the end
        (100, 512, (200, 400)),  # enters the loop, wraps twice
        (350, 512, (200, 300)),  # after the loop: plays on, no wrap
        (0, 1000, (10, 45)),  # a loop much shorter than the block
        (250, 300, (200, 2205)),  # loop up to the very end
    ],
)
def test_render_span_and_advance_follow_the_loop_rules(plan_and_signal, position, frames, loop):
    plan, signal = plan_and_signal
    length = signal.shape[1]
    out = np.full((frames, 2), np.nan, dtype=np.float32)
    scratch = np.empty((frames, 2), dtype=np.float32)
    next_position = render_span(plan, position, frames, out, scratch, loop, length)
    indices = expected_indices(position, frames, loop, length)
    expected = np.where(indices >= 0, signal[:, np.maximum(indices, 0)], 0.0)
    assert np.allclose(out.T, expected, atol=1e-7)
    assert next_position == advance(position, frames, loop, length)
    for offset in (0, 1, frames // 3, frames - 1):
        index = expected_indices(position, offset + 1, loop, length)[-1]
        if index >= 0:
            assert advance(position, offset, loop, length) == index


def test_clock_maps_the_heard_frame_back_across_a_loop_wrap():
    clock = Clock()
    assert clock.heard(100) is None
    loop = (1000, 1300)
    position = 900
    for _ in range(10):  # ten blocks of 128 frames: wraps at 1300 several times
        clock.record(position, 128, loop, 5000)
        position = advance(position, 128, loop, 5000)
    assert clock.delivered == 1280
    for latency in (0, 1, 200, 700, 1279, 5000):
        stream_frame, material = clock.heard(latency)
        assert stream_frame == max(0, 1280 - latency)
        assert material == advance(900, stream_frame, loop, 5000)


def test_clock_ring_overwrites_old_blocks_without_losing_recent_ones():
    clock = Clock()
    for block in range(5000):
        clock.record(block * 64, 64, NO_LOOP, 10**9)
    stream_frame, material = clock.heard(640)
    assert stream_frame == material == 5000 * 64 - 640
