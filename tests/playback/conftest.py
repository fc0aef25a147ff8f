"""Real PortAudio streams on a machine without a sound card.

At import (collection time, before any test opens a stream) we point ALSA at a configuration
whose `default` is the null device, plus a device whose pipe breaks after a few blocks and
one paced at the real rate (see `explorer.playback.virtual_alsa`). The user's `~/.asoundrc` is not touched.

Tests of a real stream use `make_engine`. Where the PortAudio library itself is missing they
are skipped with that reason; where the library is there but no device opens, they fail.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest

from explorer.playback.devices import PlaybackUnavailable, load_sounddevice
from explorer.playback.engine import PlaybackEngine
from explorer.playback.virtual_alsa import PacedDevice, use_virtual_alsa

FAILING_AFTER_BYTES = 1 << 16  # the pipe breaks after about 8k stereo float32 frames

ALSA_FOLDER = Path(tempfile.mkdtemp(prefix="explorer-test-alsa-"))
PACED = PacedDevice(sample_rate=44100, report=ALSA_FOLDER / "paced.json")

if sys.platform.startswith("linux"):
    use_virtual_alsa(
        failing_after_bytes=FAILING_AFTER_BYTES, paced=PACED, stalling=True, folder=ALSA_FOLDER
    )


@pytest.fixture
def make_engine():
    """Build engines on a real output; close them after the test."""
    try:
        load_sounddevice()
    except PlaybackUnavailable as error:
        pytest.skip(f"the PortAudio library is not installed here: {error}")
    engines: list[PlaybackEngine] = []

    def make(**options) -> PlaybackEngine:
        options.setdefault("blocksize", 256)
        engine = PlaybackEngine(**options)
        engines.append(engine)
        assert engine.available, f"no audio output could be opened: {engine.reason}"
        return engine

    yield make
    for engine in engines:
        engine.close()
