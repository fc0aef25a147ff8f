"""Test signals for the playback tests (import as tests.playback.playback_helpers)."""

from __future__ import annotations

import numpy as np

RATE = 44100


def tone(
    frequency: float, seconds: float, amplitude: float = 0.1, rate: int = RATE, phase: float = 0.0
) -> np.ndarray:
    """A stereo sine `(2, samples)` float32, the right channel a little quieter (so channel
    mix-ups show)."""
    time = np.arange(round(seconds * rate)) / rate
    wave = amplitude * np.sin(2 * np.pi * frequency * time + phase)
    return np.stack([wave, 0.8 * wave]).astype(np.float32)


def noise(seconds: float, amplitude: float = 0.05, seed: int = 0, rate: int = RATE) -> np.ndarray:
    generator = np.random.default_rng(seed)
    return (amplitude * generator.standard_normal((2, round(seconds * rate)))).astype(np.float32)
