"""Front-ends: representations that models and masks work in.

Every front-end implements one interface (DESIGN.md, idea 1):

- `encode(wave (batch, samples)) -> representation (batch, bins, frames)`
- `decode(representation, length) -> wave (batch, samples)`
- `decode_frames(representation, start, stop, length) -> (wave (batch, span), first_sample)`:
  re-synthesise only the samples that frames `[start, stop)` touch; the result equals the
  full decode on that span. This is what makes live mask edits cheap.

The STFT here is a torch module (CPU or CUDA). Synthesis is a weighted overlap-add with the
analysis window, normalised by the summed squared window, so any frame range can be decoded
independently and exactly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.signal import get_window
from torch import nn

from explorer.errors import InputError


@dataclass(frozen=True)
class STFTConfig:
    """An STFT preset. `window` is a scipy.signal.get_window name."""

    name: str
    sample_rate: int
    n_fft: int
    win_length: int
    hop_length: int
    window: str
    description: str = ""

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    def to_dict(self) -> dict:
        return asdict(self)


def _naive_ae_window(bandwidth_hertz: float, sample_rate: int = 44100) -> int:
    """Window length `m = 1.81 * fs / b` of the naive-autoencoder report."""
    return int(round(1.81 * sample_rate / bandwidth_hertz))


PRESETS: dict[str, STFTConfig] = {
    # FACTS 1: Hamming, 2049-sample window zero-padded to 4096, hop 384 [prior], 2049 bins.
    "taslp2020": STFTConfig(
        "taslp2020",
        44100,
        4096,
        2049,
        384,
        "hamming",
        "mapping-functions paper: Hamming 2049, n_fft 4096, hop 384",
    ),
    # Smaller taslp2020 variants [open]: same Hamming window zero-padded by 2, for the shipped demo
    # weights ("small": 1025 bins, a quarter of the weights) and quick runs ("quick": 513 bins).
    "taslp2020-small": STFTConfig(
        "taslp2020-small",
        44100,
        2048,
        1025,
        384,
        "hamming",
        "taslp2020 at half size [open]: Hamming 1025, n_fft 2048, hop 384",
    ),
    "taslp2020-quick": STFTConfig(
        "taslp2020-quick",
        44100,
        1024,
        513,
        256,
        "hamming",
        "taslp2020 at quarter size [open]: Hamming 513, n_fft 1024, hop 256",
    ),
    # FACTS 2: the paper's baseline (Hamming 2048, hop 384); the code's Hann/hop 256 is
    # the named alternative "eusipco2020-code".
    "eusipco2020": STFTConfig(
        "eusipco2020",
        44100,
        2048,
        2048,
        384,
        "hamming",
        "mod-cos paper STFT baseline: Hamming 2048, hop 384",
    ),
    "eusipco2020-code": STFTConfig(
        "eusipco2020-code",
        44100,
        2048,
        2048,
        256,
        "hann",
        "mod-cos shipped code: Hann 2048, hop 256",
    ),
    # FACTS 3: Blackman-Harris 1024, 1024-point FFT, hop 256.
    "drdnn": STFTConfig(
        "drdnn",
        44100,
        1024,
        1024,
        256,
        "blackmanharris",
        "DRDNN paper: Blackman-Harris 1024, hop 256",
    ),
    # FACTS 4: Hamming m = 1.81 fs / b, b = 75 Hz (1064 samples, 533 bins). Hop is [open]:
    # a quarter window, so 15-frame patches span about 0.36 s.
    "naive-ae": STFTConfig(
        "naive-ae",
        44100,
        _naive_ae_window(75),
        _naive_ae_window(75),
        _naive_ae_window(75) // 4,
        "hamming",
        "naive-AE report: Hamming m = 1.81 fs / b, b = 75 Hz, hop m/4 [open]",
    ),
    "naive-ae-display": STFTConfig(
        "naive-ae-display",
        44100,
        _naive_ae_window(150),
        _naive_ae_window(150),
        _naive_ae_window(150) // 4,
        "hamming",
        "naive-AE report display: b = 150 Hz",
    ),
}


def preset(name: str) -> STFTConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise InputError(f"unknown front-end '{name}' (known: {', '.join(PRESETS)})") from None


class STFT(nn.Module):
    """Complex STFT front-end with exact frame-range resynthesis.

    `encode`: `(batch, samples) -> (batch, bins, frames)` complex64, frames centred on
    `frame * hop_length` (the signal is zero-padded by `n_fft // 2` on both sides).
    """

    def __init__(self, config: STFTConfig):
        super().__init__()
        self.config = config
        window = get_window(config.window, config.win_length, fftbins=True).astype(np.float32)
        padded = np.zeros(config.n_fft, dtype=np.float32)
        offset = (config.n_fft - config.win_length) // 2
        padded[offset : offset + config.win_length] = window
        self.register_buffer("window", torch.from_numpy(padded), persistent=False)

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def bins(self) -> int:
        return self.config.bins

    def frames_for(self, length: int) -> int:
        """Number of frames `encode` gives for `length` samples."""
        return length // self.hop_length + 1

    def encode(self, wave: torch.Tensor) -> torch.Tensor:
        """`(batch, samples)` real -> `(batch, bins, frames)` complex."""
        if wave.shape[-1] == 0:
            raise InputError("cannot transform zero-length audio")
        padding = self.config.n_fft // 2
        padded = nn.functional.pad(wave.unsqueeze(1), (padding, padding)).squeeze(1)
        return torch.stft(
            padded,
            self.config.n_fft,
            self.hop_length,
            window=self.window,
            center=False,
            return_complex=True,
        )

    def decode(self, representation: torch.Tensor, length: int) -> torch.Tensor:
        """`(batch, bins, frames)` complex -> `(batch, length)` real."""
        wave, first = self._overlap_add(representation, 0, representation.shape[-1], 0, length)
        assert first == 0
        return wave

    def sample_span(self, start: int, stop: int, length: int) -> tuple[int, int]:
        """The samples `[first, last)` that frames `[start, stop)` contribute to."""
        half = self.config.n_fft // 2
        first = max(0, start * self.hop_length - half)
        last = min(length, (stop - 1) * self.hop_length + half)
        return first, max(first, last)

    def decode_frames(
        self, representation: torch.Tensor, start: int, stop: int, length: int
    ) -> tuple[torch.Tensor, int]:
        """Re-synthesise the samples touched by frames `[start, stop)`.

        Returns `(wave (batch, last - first), first)`, equal to `decode(...)[:, first:last]`.
        Only the frames that overlap that span are inverted.
        """
        frames = representation.shape[-1]
        if not 0 <= start < stop <= frames:
            raise InputError(f"frame range [{start}, {stop}) outside 0..{frames}")
        first, last = self.sample_span(start, stop, length)
        reach = math.ceil(self.config.n_fft / self.hop_length)
        return self._overlap_add(
            representation, max(0, start - reach), min(frames, stop + reach), first, last
        )

    def _overlap_add(
        self, representation: torch.Tensor, frame_start: int, frame_stop: int, first: int, last: int
    ) -> tuple[torch.Tensor, int]:
        """Windowed overlap-add of frames `[frame_start, frame_stop)`, cut to `[first, last)`.

        The envelope (sum of squared windows) covers the same frames; the callers pick frame
        ranges that include every frame overlapping `[first, last)`, so the cut is exact.
        """
        n_fft, hop = self.config.n_fft, self.hop_length
        segment = representation[..., frame_start:frame_stop]
        count = segment.shape[-1]
        frames = torch.fft.irfft(segment, n=n_fft, dim=-2) * self.window[:, None]
        total = n_fft + hop * (count - 1)
        wave = nn.functional.fold(frames, (1, total), (1, n_fft), stride=(1, hop)).reshape(
            frames.shape[0], total
        )
        squared = (self.window**2)[None, :, None].expand(1, n_fft, count)
        envelope = nn.functional.fold(squared, (1, total), (1, n_fft), stride=(1, hop)).reshape(
            total
        )
        # Position 0 of `wave` is sample frame_start * hop - n_fft // 2 of the track.
        origin = frame_start * hop - n_fft // 2
        wave = wave[:, first - origin : last - origin]
        envelope = envelope[first - origin : last - origin]
        return wave / envelope.clamp_min(1e-8), first


def make_frontend(name: str) -> STFT:
    return STFT(preset(name))


class BandNormalizer(nn.Module):
    """Per-band unit-variance scaling of magnitudes (FACTS 1: each frequency band normalised to
    unit variance over time frames). `scale` has shape `(bins,)`; it is fitted on training data
    and saved with the model. Magnitudes `(..., bins, frames)` are divided by it."""

    def __init__(self, bins: int):
        super().__init__()
        self.register_buffer("scale", torch.ones(bins))

    @torch.no_grad()
    def fit(self, magnitude: torch.Tensor, floor: float = 1e-5) -> None:
        """`magnitude (..., bins, frames)`: set scale to each band's standard deviation."""
        flat = magnitude.transpose(-2, -1).reshape(-1, magnitude.shape[-2])
        self.scale.copy_(flat.std(dim=0).clamp_min(floor))

    def normalize(self, magnitude: torch.Tensor) -> torch.Tensor:
        return magnitude / self.scale[:, None]

    def denormalize(self, magnitude: torch.Tensor) -> torch.Tensor:
        return magnitude * self.scale[:, None]
