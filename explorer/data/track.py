"""A track: a mixture and optional named stems, all `(channels, samples)` float32 at one rate."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from explorer.audio.io import resample, to_mono
from explorer.errors import InputError

STEM_NAMES = ("vocals", "drums", "bass", "other")
ACCOMPANIMENT = "accompaniment"


@dataclass
class Track:
    """A mixture with optional stems.

    `mixture` and every stem are float32 arrays shaped `(channels, samples)` at `sample_rate`.
    `accompaniment` is derived as the sum of the non-vocal stems when it is not given.
    """

    name: str
    mixture: np.ndarray
    sample_rate: int
    stems: dict[str, np.ndarray] = field(default_factory=dict)
    subset: str | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        length = self.mixture.shape[-1]
        for stem, samples in list(self.stems.items()):
            if samples.shape[-1] != length:
                # Decoded stems can differ by a few samples of codec padding: pad or trim.
                self.stems[stem] = _fit_length(samples, length)
        if ACCOMPANIMENT not in self.stems:
            others = [self.stems[name] for name in STEM_NAMES[1:] if name in self.stems]
            if "vocals" in self.stems and others:
                self.stems[ACCOMPANIMENT] = np.sum(others, axis=0, dtype=np.float32)

    @property
    def seconds(self) -> float:
        return self.mixture.shape[-1] / self.sample_rate

    @property
    def channels(self) -> int:
        return self.mixture.shape[0]

    @property
    def stem_names(self) -> list[str]:
        return list(self.stems)

    def has_stems(self, *names: str) -> bool:
        return all(name in self.stems for name in names)

    def require_stems(self, *names: str) -> None:
        missing = [name for name in names if name not in self.stems]
        if missing:
            have = ", ".join(self.stems) or "none"
            raise InputError(
                f"track '{self.name}' has no {', '.join(missing)} stem (stems: {have})"
            )

    def signal(self, name: str) -> np.ndarray:
        """The mixture or a stem by name. `(channels, samples)`."""
        if name == "mixture":
            return self.mixture
        self.require_stems(name)
        return self.stems[name]

    def resampled(self, sample_rate: int) -> Track:
        """A copy at another sample rate (unchanged when the rate already matches)."""
        if sample_rate == self.sample_rate:
            return self
        convert = lambda samples: resample(samples, self.sample_rate, sample_rate)  # noqa: E731
        return Track(
            self.name,
            convert(self.mixture),
            sample_rate,
            {name: convert(samples) for name, samples in self.stems.items()},
            self.subset,
            self.path,
        )

    def mono(self) -> Track:
        """A copy with every signal averaged to one channel, as the papers use."""
        return Track(
            self.name,
            to_mono(self.mixture),
            self.sample_rate,
            {name: to_mono(samples) for name, samples in self.stems.items()},
            self.subset,
            self.path,
        )

    def excerpt(self, start_seconds: float, seconds: float) -> Track:
        """A copy of `[start, start + seconds)`."""
        start = int(round(start_seconds * self.sample_rate))
        stop = start + int(round(seconds * self.sample_rate))
        cut = lambda samples: samples[:, start:stop]  # noqa: E731
        return Track(
            self.name,
            cut(self.mixture),
            self.sample_rate,
            {name: cut(samples) for name, samples in self.stems.items()},
            self.subset,
            self.path,
        )


def _fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    if samples.shape[-1] >= length:
        return samples[:, :length]
    padded = np.zeros((samples.shape[0], length), dtype=samples.dtype)
    padded[:, : samples.shape[-1]] = samples
    return padded
