"""What is heard: the material (mixture and stems), the mix settings, and the arithmetic.

Three immutable objects and one owner:

- `Material`: the mixture and named stems, all stereo, one sample rate, one length.
- `MixSettings`: per-stem gain, mute and solo; the master gain; and the A/B source
  (`"separation"` plays the sum of the stems, `"mixture"` plays the original mixture).
- `MixPlan`: a material plus settings, reduced to the list `(buffer, effective gain)` that the
  audio callback sums. Its `render()` is the only mixing code: the callback and `export` both
  call it, so an exported file is exactly what is heard.
- `Mixer`: owns the current material and settings. Every change builds a new `MixPlan` outside
  the callback and publishes it by assigning one attribute (atomic under the GIL). The callback
  reads `mixer.plan` once per block; it never takes the mixer's lock.

Solo and mute follow a DAW: when any stem is soloed, only soloed stems play; mute always wins,
so a stem that is both soloed and muted is silent. In `"mixture"` mode only the master gain
applies (the stems' settings are kept for when you switch back). Material without stems
plays its mixture in either mode.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np

from explorer.audio.io import resample, to_stereo
from explorer.errors import InputError
from explorer.playback.buffers import CHANNELS, ChunkedAudio
from explorer.playback.resampling import resample_range

SOURCES = ("separation", "mixture")
MAX_GAIN = 16.0  # +24 dB: enough to inspect a quiet stem, small enough to catch unit mix-ups
RENDER_BLOCK_FRAMES = 1 << 16

StemInput = np.ndarray | tuple[np.ndarray, int]


class PlaybackWarning(UserWarning):
    """Input that playback repaired: padded, resampled or silenced audio."""


@dataclass(frozen=True)
class Material:
    """The mixture and stems, as immutable `ChunkedAudio`, all `frames` long at `sample_rate`."""

    sample_rate: int
    frames: int
    mixture: ChunkedAudio
    stems: Mapping[str, ChunkedAudio]

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate

    @property
    def stem_names(self) -> tuple[str, ...]:
        return tuple(self.stems)

    def with_stem(self, name: str, buffer: ChunkedAudio) -> Material:
        stems = dict(self.stems)
        stems[name] = buffer
        return replace(self, stems=MappingProxyType(stems))

    def without_stem(self, name: str) -> Material:
        stems = {key: value for key, value in self.stems.items() if key != name}
        return replace(self, stems=MappingProxyType(stems))


@dataclass(frozen=True)
class MixSettings:
    """Gains are linear amplitude factors; a stem with no entry in `gains` has gain 1."""

    gains: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    muted: frozenset[str] = frozenset()
    soloed: frozenset[str] = frozenset()
    master: float = 1.0
    source: str = "separation"

    def gain(self, name: str) -> float:
        return self.gains.get(name, 1.0)

    def effective_gain(self, name: str, stem_names: tuple[str, ...]) -> float:
        """The factor a stem is heard with in `"separation"` mode: master x gain, or 0 when
        muted or (some present stem is soloed and this one is not)."""
        if name in self.muted:
            return 0.0
        if self.soloed.intersection(stem_names) and name not in self.soloed:
            return 0.0
        return self.master * self.gain(name)


@dataclass(frozen=True, eq=False)
class MixPlan:
    """An immutable recipe for one block of output: `sources` is `((buffer, gain), ...)`,
    only the audible ones. `published_at` is the `time.perf_counter()` of its creation, used to
    measure edit-to-audible latency."""

    sample_rate: int
    frames: int
    sources: tuple[tuple[ChunkedAudio, float], ...]
    settings: MixSettings
    published_at: float

    @classmethod
    def build(cls, material: Material | None, settings: MixSettings) -> MixPlan:
        if material is None:
            return cls(1, 0, (), settings, time.perf_counter())
        if settings.source == "mixture" or not material.stems:
            sources = [(material.mixture, settings.master)]
        else:
            names = material.stem_names
            sources = [
                (buffer, settings.effective_gain(name, names))
                for name, buffer in material.stems.items()
            ]
        audible = tuple((buffer, gain) for buffer, gain in sources if gain != 0.0)
        return cls(material.sample_rate, material.frames, audible, settings, time.perf_counter())

    def render(self, start: int, frames: int, out: np.ndarray, scratch: np.ndarray) -> None:
        """Write the mix of `[start, start + frames)` into `out[:frames]`, shaped
        `(frames, 2)`, clipped to [-1, 1] as the device would. `scratch` is `(frames or more,
        2)` and is overwritten. Runs in the audio callback: allocates no arrays."""
        target = out[:frames]
        if not self.sources:
            target.fill(0.0)
            return
        first, gain = self.sources[0]
        first.copy_into(start, frames, target)
        if gain != 1.0:
            np.multiply(target, gain, out=target)
        for buffer, gain in self.sources[1:]:
            buffer.add_scaled_into(start, frames, gain, target, scratch)
        np.clip(target, -1.0, 1.0, out=target)

    def render_all(self) -> np.ndarray:
        """The whole mix as `(2, samples)` float32, rendered block by block with `render()`."""
        out = np.empty((self.frames, CHANNELS), dtype=np.float32)
        scratch = np.empty((RENDER_BLOCK_FRAMES, CHANNELS), dtype=np.float32)
        for start in range(0, self.frames, RENDER_BLOCK_FRAMES):
            count = min(RENDER_BLOCK_FRAMES, self.frames - start)
            self.render(start, count, out[start : start + count], scratch)
        return np.ascontiguousarray(out.T)


class Mixer:
    """Owns the material and the mix settings; publishes a new `MixPlan` on every change.

    `material` is kept at its own sample rate (what edits and exports use). When the output
    device needs another rate, `set_output_rate` resamples it once into a second material that
    the plan plays; later edits resample only the range they change.

    Thread safety: the methods may be called from any thread (the GUI, a worker finishing a
    separation); they serialise on a lock that the audio callback never takes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.material: Material | None = None
        self.settings = MixSettings()
        self.output_rate: int | None = None
        self._played: Material | None = None
        self.messages: list[str] = []
        self.plan = MixPlan.build(None, self.settings)

    # Loading and editing the material.

    def load(
        self,
        mixture: np.ndarray | None,
        sample_rate: int,
        stems: Mapping[str, StemInput] | None = None,
    ) -> list[str]:
        """Load a mixture `(channels, samples)` at `sample_rate` and stems, each an array at
        the same rate or `(array, its_sample_rate)`. A missing mixture is the sum of the stems.

        Stems at another rate are resampled; shorter signals are padded with zeros to the
        longest; NaN or Inf signals are silenced. Each such repair is returned as a message
        (and appended to `messages`). Mix settings of stems that remain are kept.
        """
        if sample_rate <= 0:
            raise InputError(f"invalid sample rate: {sample_rate}")
        messages: list[str] = []
        prepared = {
            name: _prepare(name, *_split(value, sample_rate), sample_rate, messages)
            for name, value in (stems or {}).items()
        }
        if mixture is None:
            if not prepared:
                raise InputError("nothing to play: no mixture and no stems")
            mixture_array = _sum_padded(list(prepared.values()))
            messages.append("no mixture given: playing the sum of the stems as the mixture")
        else:
            mixture_array = _prepare("mixture", mixture, sample_rate, sample_rate, messages)
        frames = max(array.shape[1] for array in [mixture_array, *prepared.values()])
        if frames == 0:
            raise InputError("nothing to play: zero-length audio")
        for name, array in [("mixture", mixture_array), *prepared.items()]:
            if array.shape[1] < frames:
                messages.append(
                    f"{name} is {array.shape[1]} samples long, shorter than {frames}: padded with silence"
                )
        material = Material(
            sample_rate,
            frames,
            ChunkedAudio.from_array(mixture_array).padded(frames),
            MappingProxyType(
                {
                    name: ChunkedAudio.from_array(array).padded(frames)
                    for name, array in prepared.items()
                }
            ),
        )
        with self._lock:
            self.material = material
            self._played = self._to_output_rate(material)
            self._publish()
        return self._note(messages)

    def set_stem(self, name: str, samples: np.ndarray, sample_rate: int | None = None) -> list[str]:
        """Add or replace a whole stem `(channels, samples)` (a new separation or a new
        model's output). It is fitted to the material's length (padded or trimmed)."""
        material = self._require_material()
        rate = material.sample_rate if sample_rate is None else sample_rate
        messages: list[str] = []
        array = _prepare(name, samples, rate, material.sample_rate, messages)
        if array.shape[1] != material.frames:
            messages.append(
                f"{name} is {array.shape[1]} samples long, the material {material.frames}: "
                + ("trimmed" if array.shape[1] > material.frames else "padded with silence")
            )
            array = _fit(array, material.frames)
        buffer = ChunkedAudio.from_array(array).padded(material.frames)
        with self._lock:
            self.material = self.material.with_stem(name, buffer)
            if self._played is not None and self._played.sample_rate != self.material.sample_rate:
                played = resample(array, material.sample_rate, self._played.sample_rate)
                played = ChunkedAudio.from_array(_fit(played, self._played.frames))
                self._played = self._played.with_stem(name, played.padded(self._played.frames))
            else:
                self._played = self.material
            self._publish()
        return self._note(messages)

    def replace_range(self, name: str, start: int, samples: np.ndarray) -> list[str]:
        """Overwrite `[start, start + samples)` of a stem (material frames) with `(channels,
        samples)` audio: a re-synthesised range after a mask edit. Copies only the touched
        chunks, then publishes; the engine cross-fades to it at the next block boundary.
        Samples past the end of the material are dropped; NaN/Inf samples are silenced."""
        material = self._require_material()
        self._require_stem(material, name)
        messages: list[str] = []
        array = to_stereo(np.atleast_2d(np.asarray(samples, dtype=np.float32)))
        if not np.isfinite(array).all():
            messages.append(f"new samples for {name} hold NaN or Inf: that range is silenced")
            array = np.zeros_like(array)
        if start < 0 or start >= material.frames:
            raise InputError(
                f"range start {start} is outside the material (0..{material.frames - 1})"
            )
        with self._lock:
            buffer, written = self.material.stems[name].replaced(start, array)
            self.material = self.material.with_stem(name, buffer)
            if self._played is not None and self._played.sample_rate != self.material.sample_rate:
                played_start, played_samples = resample_range(
                    buffer,
                    start,
                    start + written,
                    self.material.sample_rate,
                    self._played.sample_rate,
                )
                played_buffer, _ = self._played.stems[name].replaced(played_start, played_samples)
                self._played = self._played.with_stem(name, played_buffer)
            else:
                self._played = self.material
            self._publish()
        return self._note(messages)

    def remove_stem(self, name: str) -> None:
        material = self._require_material()
        self._require_stem(material, name)
        with self._lock:
            self.material = self.material.without_stem(name)
            self._played = self._played.without_stem(name) if self._played is not None else None
            self._publish()

    def set_output_rate(self, sample_rate: int | None) -> None:
        """Play at `sample_rate` (the device's), resampling the material once; `None` plays
        the material at its own rate."""
        with self._lock:
            self.output_rate = sample_rate
            if self.material is not None:
                self._played = self._to_output_rate(self.material)
                self._publish()

    # Mix settings.

    def set_gain(self, name: str, gain: float) -> None:
        """A stem's linear gain, 0 to `MAX_GAIN`."""
        self._require_stem(self._require_material(), name)
        gain = _check_gain(gain, f"gain of {name}")
        self._update(gains=MappingProxyType({**self.settings.gains, name: gain}))

    def set_mute(self, name: str, muted: bool = True) -> None:
        self._require_stem(self._require_material(), name)
        change = {name}
        self._update(muted=self.settings.muted | change if muted else self.settings.muted - change)

    def set_solo(self, name: str, soloed: bool = True) -> None:
        self._require_stem(self._require_material(), name)
        change = {name}
        self._update(
            soloed=self.settings.soloed | change if soloed else self.settings.soloed - change
        )

    def clear_solo(self) -> None:
        self._update(soloed=frozenset())

    def set_master(self, gain: float) -> None:
        self._update(master=_check_gain(gain, "master gain"))

    def set_source(self, source: str) -> None:
        """A/B: `"separation"` (the stems, with their settings) or `"mixture"` (the original)."""
        if source not in SOURCES:
            raise InputError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
        self._update(source=source)

    def toggle_source(self) -> str:
        """Switch between the mixture and the separation; returns the new source."""
        source = "mixture" if self.settings.source == "separation" else "separation"
        self.set_source(source)
        return source

    # Rendering for export and tests.

    def render_all(self) -> np.ndarray:
        """The current mix of the whole material at its own rate, `(2, samples)`: the same
        `MixPlan.render` the callback runs, with the current gains, mutes, solo and edits."""
        with self._lock:
            material, settings = self._require_material(), self.settings
        return MixPlan.build(material, settings).render_all()

    # Internals.

    def _update(self, **changes: object) -> None:
        with self._lock:
            self.settings = replace(self.settings, **changes)
            self._publish()

    def _publish(self) -> None:
        # One attribute assignment: the callback sees the old plan or the new one, whole.
        self.plan = MixPlan.build(self._played, self.settings)

    def _to_output_rate(self, material: Material) -> Material:
        rate = self.output_rate
        if rate is None or rate == material.sample_rate:
            return material
        convert = lambda buffer: ChunkedAudio.from_array(  # noqa: E731
            resample(buffer.to_array(), material.sample_rate, rate)
        )
        mixture = convert(material.mixture)
        stems = {name: convert(buffer) for name, buffer in material.stems.items()}
        frames = max(buffer.frames for buffer in [mixture, *stems.values()])
        return Material(
            rate,
            frames,
            mixture.padded(frames),
            MappingProxyType({name: buffer.padded(frames) for name, buffer in stems.items()}),
        )

    def _require_material(self) -> Material:
        if self.material is None:
            raise InputError("no audio loaded for playback")
        return self.material

    @staticmethod
    def _require_stem(material: Material, name: str) -> None:
        if name not in material.stems:
            have = ", ".join(material.stems) or "none"
            raise InputError(f"no stem named {name!r} (stems: {have})")

    def _note(self, messages: list[str]) -> list[str]:
        """Keep repair messages for the GUI (`messages`) and warn once each."""
        self.messages.extend(messages)
        for message in messages:
            warnings.warn(message, PlaybackWarning, stacklevel=3)
        return messages


def _split(value: StemInput, default_rate: int) -> tuple[np.ndarray, int]:
    if isinstance(value, tuple):
        samples, rate = value
        return samples, int(rate)
    return value, default_rate


def _prepare(
    name: str, samples: np.ndarray, sample_rate: int, material_rate: int, messages: list[str]
) -> np.ndarray:
    """Validate and convert one signal to stereo `(2, samples)` float32 at `material_rate`."""
    array = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    if array.ndim != 2 or array.shape[0] > 64:
        raise InputError(f"{name} must be shaped (channels, samples), got {array.shape}")
    if sample_rate <= 0:
        raise InputError(f"{name} has an invalid sample rate: {sample_rate}")
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(array.size - np.count_nonzero(finite))
        messages.append(f"{name} has {bad} NaN or Inf samples: it is silenced")
        array = np.zeros_like(array)
    if sample_rate != material_rate:
        messages.append(f"{name} is at {sample_rate} Hz: resampled to {material_rate} Hz")
        array = resample(array, sample_rate, material_rate)
    return to_stereo(array)


def _fit(array: np.ndarray, frames: int) -> np.ndarray:
    if array.shape[1] >= frames:
        return array[:, :frames]
    out = np.zeros((array.shape[0], frames), dtype=np.float32)
    out[:, : array.shape[1]] = array
    return out


def _sum_padded(arrays: list[np.ndarray]) -> np.ndarray:
    frames = max(array.shape[1] for array in arrays)
    total = np.zeros((CHANNELS, frames), dtype=np.float32)
    for array in arrays:
        total[:, : array.shape[1]] += array
    return total


def _check_gain(gain: float, what: str) -> float:
    value = float(gain)
    if not math.isfinite(value) or not 0.0 <= value <= MAX_GAIN:
        raise InputError(f"{what} must be between 0 and {MAX_GAIN}, not {gain}")
    return value
