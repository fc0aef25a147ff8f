"""Real-time playback: stems with gain, mute, solo and A/B; loop and seek; live edits.

Qt-free. The GUI polls `PlaybackEngine.position()` or `status()` from a timer.

    engine = PlaybackEngine()                    # available=False (+ reason) without a device
    engine.load(mixture, 44100, {"vocals": vocals, "accompaniment": accompaniment})
    engine.play()
    engine.mixer.set_solo("vocals")
    engine.mixer.replace_range("vocals", start, new_samples)   # cross-faded at the next block
    engine.export("what-i-hear.wav")
"""

from explorer.playback.devices import (
    OutputDevice,
    PlaybackUnavailable,
    list_output_devices,
    refresh_devices,
    resolve_output_device,
)
from explorer.playback.engine import PlaybackEngine, PlaybackStatus, Tap
from explorer.playback.mixer import Material, Mixer, MixPlan, MixSettings

__all__ = [
    "Material",
    "MixPlan",
    "MixSettings",
    "Mixer",
    "OutputDevice",
    "PlaybackEngine",
    "PlaybackStatus",
    "PlaybackUnavailable",
    "Tap",
    "list_output_devices",
    "refresh_devices",
    "resolve_output_device",
]
