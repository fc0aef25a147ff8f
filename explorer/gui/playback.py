"""The GUI's single door to the playback engine (explorer/playback, Qt-free).

The window talks to `Playback` only, which forwards to `PlaybackEngine`'s public API. When
the engine has no output (no PortAudio, no device) it still holds the material, so edits, A/B,
gains and exports behave the same; a silent clock then moves the playhead with wall time, and
`status` says why nothing is heard. The silent clock is not an audio engine: it only moves the
playhead.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from explorer.errors import InputError
from explorer.playback.engine import PlaybackEngine


class SilentTransport:
    """Playhead without sound: position = start + elapsed wall time, with loop and end."""

    def __init__(self) -> None:
        self.sample_rate = 44100
        self.frames = 0
        self._anchor_position = 0.0
        self._anchor_time = 0.0
        self.playing = False
        self.loop: tuple[float, float] | None = None

    def position(self) -> float:
        if not self.playing:
            return self._anchor_position
        seconds = self._anchor_position + time.perf_counter() - self._anchor_time
        if (
            self.loop is not None
            and self._anchor_position < self.loop[1]
            and seconds >= self.loop[1]
        ):
            period = self.loop[1] - self.loop[0]
            seconds = (
                self.loop[0] + (seconds - self.loop[1]) % period if period > 0 else self.loop[0]
            )
        end = self.frames / self.sample_rate
        if seconds >= end:
            self.playing = False
            self._anchor_position = end
            return end
        return seconds

    def play(self) -> None:
        if not self.playing:
            if self._anchor_position >= self.frames / self.sample_rate:
                self._anchor_position = 0.0
            self._anchor_time = time.perf_counter()
            self.playing = True

    def pause(self) -> None:
        self._anchor_position = self.position()
        self.playing = False

    def seek(self, seconds: float) -> None:
        self._anchor_position = min(max(0.0, seconds), self.frames / self.sample_rate)
        self._anchor_time = time.perf_counter()


# Live mask editing wants the edit heard at once: PortAudio's low suggested latency (11.6 ms
# on ALSA, against 34.8 ms for "high"). `explorer gui --latency high` trades it for headroom
# on a machine that underruns.
APP_BLOCKSIZE = 512
APP_LATENCY = "low"


class Playback:
    """Mixture and stems, transport and clock, over `PlaybackEngine`. Times are seconds of the
    material. With no output device the engine plays nothing; then a `SilentTransport` moves
    the playhead so the views still follow "playback", and `status` says why it is silent."""

    def __init__(self, engine: PlaybackEngine | None = None) -> None:
        self.engine = engine or PlaybackEngine(blocksize=APP_BLOCKSIZE, latency=APP_LATENCY)
        self.mixer = self.engine.mixer
        self.preview_engine: PlaybackEngine | None = None
        self.silent = None if self.engine.available else SilentTransport()
        device = self.engine.device
        self.status = (
            f"audio: {device}"
            if self.engine.available and device is not None
            else f"silent: {self.engine.reason or 'no audio output'}"
        )

    # ------------------------------------------------------------------ material
    def load(
        self,
        mixture: np.ndarray,
        sample_rate: int,
        stems: Mapping[str, np.ndarray] | None = None,
        muted: tuple[str, ...] = (),
    ) -> list[str]:
        messages = self.engine.load(mixture, sample_rate, dict(stems or {}))
        for name in muted:
            self.mixer.set_mute(name, True)
        if self.silent is not None:
            self.silent.pause()
            self.silent.sample_rate = sample_rate
            self.silent.frames = self.mixer.material.frames
            self.silent.seek(0.0)
        return messages

    def set_stems(self, stems: Mapping[str, np.ndarray], muted: tuple[str, ...] = ()) -> None:
        """Replace every stem (a new separation), keeping the mixture and the playhead."""
        material = self.mixer.material
        if material is None:
            return
        for name in list(material.stems):
            if name not in stems:
                self.mixer.remove_stem(name)
        for name, samples in stems.items():
            self.mixer.set_stem(name, samples)
            self.mixer.set_mute(name, name in muted)

    def replace_range(self, stem: str, start: int, samples: np.ndarray) -> None:
        """A live edit: the engine swaps it in at the next block, cross-faded."""
        self.mixer.replace_range(stem, start, samples)

    def stem_audio(self, stem: str) -> np.ndarray:
        """What the engine holds for `stem`, `(2, samples)` (tests check edits land here)."""
        return self.mixer.material.stems[stem].to_array()

    @property
    def stem_names(self) -> tuple[str, ...]:
        material = self.mixer.material
        return material.stem_names if material is not None else ()

    @property
    def seconds(self) -> float:
        material = self.mixer.material
        return material.seconds if material is not None else 0.0

    # ------------------------------------------------------------------ mix
    def set_gain(self, stem: str, gain: float) -> None:
        self.mixer.set_gain(stem, gain)

    def set_mute(self, stem: str, muted: bool) -> None:
        self.mixer.set_mute(stem, muted)

    def set_solo(self, stem: str, soloed: bool) -> None:
        self.mixer.set_solo(stem, soloed)

    def set_source(self, source: str) -> None:
        self.mixer.set_source(source)

    @property
    def source(self) -> str:
        return self.mixer.settings.source

    # ------------------------------------------------------------------ transport
    def play(self) -> None:
        if self.mixer.material is None:
            return
        if self.silent is not None:
            self.silent.play()
        elif not self.engine.play() and self.engine.last_error:
            self.status = f"silent: {self.engine.last_error}"

    def pause(self) -> None:
        if self.silent is not None:
            self.silent.pause()
        else:
            self.engine.pause()

    def stop(self) -> None:
        if self.silent is not None:
            self.silent.pause()
            self.silent.seek(0.0)
        else:
            self.engine.stop()

    def seek(self, seconds: float) -> None:
        if self.silent is not None:
            self.silent.seek(seconds)
        if self.mixer.material is not None:
            self.engine.seek(seconds)

    def set_loop(self, span: tuple[float, float] | None) -> None:
        if self.silent is not None:
            self.silent.loop = span
        if span is None or self.mixer.material is None:
            self.engine.clear_loop()
            return
        try:
            self.engine.set_loop(*span)
        except InputError:
            self.engine.clear_loop()

    @property
    def playing(self) -> bool:
        return self.silent.playing if self.silent is not None else self.engine.is_playing

    def position(self) -> float:
        """The playhead in seconds: the engine's stream clock (what is heard now)."""
        return self.silent.position() if self.silent is not None else self.engine.position()

    def error(self) -> str | None:
        """A playback failure to report (the device vanished...), once."""
        if self.silent is None and self.engine.state == "error" and self.engine.last_error:
            message, self.engine.last_error = self.engine.last_error, None
            self.status = f"silent: {message}"
            return message
        return None

    def preview(self, samples: np.ndarray, sample_rate: int, seconds: float = 0.6) -> None:
        """Play a short sound (a kernel) on a second engine, without touching the material:
        the kernel repeated for `seconds`, faded in and out."""
        if not self.engine.available:
            return
        wave = np.asarray(samples, dtype=np.float32).reshape(-1)
        if wave.size == 0:
            return
        repeats = max(1, int(seconds * sample_rate) // wave.size)
        tone = np.tile(wave, repeats)
        tone = tone / max(1e-9, float(np.abs(tone).max())) * 0.3
        fade = min(tone.size // 2, int(0.01 * sample_rate))
        if fade > 0:
            ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
            tone[:fade] *= ramp
            tone[-fade:] *= ramp[::-1]
        if self.preview_engine is None:
            self.preview_engine = PlaybackEngine(
                self.engine.device.index if self.engine.device else None
            )
        self.preview_engine.load(tone[None], sample_rate, {})
        self.preview_engine.mixer.set_source("mixture")
        self.preview_engine.play()

    # ------------------------------------------------------------------ export
    def export_mix(self, path: str | Path) -> Path:
        """Write exactly what is heard (gains, mutes, solo, A/B, edits)."""
        return self.engine.export(path)

    def close(self) -> None:
        self.engine.close()
        if self.preview_engine is not None:
            self.preview_engine.close()
