from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from explorer.audio.io import write_audio


def write_tracks(
    root: Path, count: int = 4, seconds: float = 1.0, stems: tuple[str, ...] = ("vocals", "drums")
) -> Path:
    """A folder of track folders with noise stems (vocals louder at high frequencies)."""
    for index in range(count):
        rng = np.random.default_rng(index)
        folder = root / f"track {index}"
        folder.mkdir(parents=True)
        signals = {
            stem: (0.1 * rng.standard_normal((2, int(seconds * 44100)))).astype(np.float32)
            for stem in stems
        }
        if "vocals" in signals:
            signals["vocals"] = np.diff(signals["vocals"], prepend=0.0, axis=1).astype(np.float32)
        for stem, samples in signals.items():
            write_audio(folder / f"{stem}.wav", samples, 44100)
        write_audio(folder / "mixture.wav", np.sum(list(signals.values()), axis=0), 44100)
    return root


@pytest.fixture
def track_folder(tmp_path: Path) -> Path:
    return write_tracks(tmp_path / "data")
