"""No output at all: the engine says why, and everything but sound still works."""

from __future__ import annotations

import builtins
import sys

import numpy as np
import pytest
import soundfile

from explorer.errors import InputError
from explorer.playback import PlaybackEngine, PlaybackUnavailable, list_output_devices
from tests.playback.playback_helpers import RATE, noise, tone


@pytest.fixture
def no_portaudio(monkeypatch):
    """Mocks a machine without the PortAudio library (it is installed here, so the missing
    library cannot be real): importing sounddevice raises the OSError it raises there."""
    real_import = builtins.__import__

    def failing_import(name, *args, **kwargs):
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "sounddevice", raising=False)
    monkeypatch.setattr(builtins, "__import__", failing_import)


def test_without_portaudio_the_engine_reports_it_and_runs_silently(no_portaudio, tmp_path):
    with pytest.raises(PlaybackUnavailable, match="PortAudio library"):
        list_output_devices()
    engine = PlaybackEngine()
    assert not engine.available
    assert "PortAudio library cannot be loaded" in engine.reason
    assert "libportaudio2" in engine.reason
    status = engine.status()
    assert status.state == "unavailable" and not status.available and not status.playing

    stems = {"vocals": tone(440, 0.2), "drums": noise(0.2)}
    engine.load(sum(stems.values()), RATE, stems)  # loading, mixing, editing still work
    engine.mixer.set_gain("drums", 0.5)
    engine.mixer.replace_range("vocals", 100, noise(0.01, seed=2))
    assert engine.play() is False
    assert engine.position() == 0.0  # nothing plays, so nothing advances
    engine.seek(0.1)
    assert engine.position() == pytest.approx(0.1)
    engine.set_loop(0.05, 0.15)
    engine.pause()
    engine.stop()
    assert engine.position() == 0.0
    exported, rate = soundfile.read(
        engine.export(tmp_path / "mix.wav"), dtype="float32", always_2d=True
    )
    assert rate == RATE and np.array_equal(exported.T, engine.mixer.render_all())
    engine.close()


def test_a_device_index_that_does_not_exist_is_reported(make_engine):
    engine = PlaybackEngine(device=999)
    assert not engine.available
    assert "output device 999 does not exist" in engine.reason
    assert engine.reason in engine.messages
    engine.load(tone(220, 0.1), RATE)
    assert engine.play() is False
    engine.set_device(None)  # the user picks an existing device: sound comes back
    assert engine.available and engine.reason is None
    assert engine.play() and engine.wait(10)
    assert engine.state == "stopped"
    engine.close()


def test_choosing_a_missing_device_while_one_works_keeps_the_working_one(make_engine):
    engine = make_engine()
    with pytest.raises(InputError, match="no output device named"):
        engine.set_device("a device that is not there")
    assert engine.available and engine.device.name == "default"


def test_no_output_device_at_all_is_reported(monkeypatch):
    """Mocks PortAudio finding no device (this machine has the null device)."""
    import sounddevice

    monkeypatch.setattr(sounddevice, "query_devices", lambda *args, **kwargs: [])
    engine = PlaybackEngine()
    assert not engine.available
    assert engine.reason == "no audio output: no output device found (playback is silent)"
    assert engine.play() is False
