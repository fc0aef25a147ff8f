"""Shared fixtures: the real music in ../shared/data, and small generated signals."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# One torch thread for the whole run, set once: the test matrices are small, CI has 2 busy
# cores, and changing the count mid-run breaks oneMKL's batched LU in torch 2.13's CPU build.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data`, or a skip with the reason when this checkout has none beside it."""
    if not (SHARED_DATA / "README.md").exists():
        pytest.skip(f"real test music not available: {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def rock_folder(shared_data: Path) -> Path:
    return shared_data / "musdb18-preview" / "Music Delta - 80s Rock"


@pytest.fixture(scope="session")
def rock_stem_mp4(shared_data: Path) -> Path:
    return shared_data / "stems-mp4" / "Music Delta - 80s Rock.stem.mp4"


def sine(
    frequency: float, seconds: float, sample_rate: int, channels: int = 1, amplitude: float = 0.5
) -> np.ndarray:
    """`(channels, samples)` float32 sine."""
    time = np.arange(int(round(seconds * sample_rate))) / sample_rate
    wave = (amplitude * np.sin(2 * np.pi * frequency * time)).astype(np.float32)
    return np.repeat(wave[None], channels, axis=0)
