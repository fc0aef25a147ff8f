"""Display spectrograms: what the spectrogram panels draw (NumPy/torch only, no Qt).

A display spectrogram is independent of any model's front-end: a Hann STFT of the mono
signal in dB relative to a full-scale sine, with a hop chosen so that long tracks stay a few
thousand columns wide (the image is uploaded once; panning and zooming then only move it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

N_FFT = 2048
MIN_HOP = 256
MAX_FRAMES = 8000
FLOOR_DB = -120.0


@dataclass
class Spectrogram:
    """`decibels (bins, frames)`, frame `i` centred at `i * hop_length / sample_rate` s."""

    decibels: np.ndarray
    hop_length: int
    sample_rate: int
    n_fft: int = N_FFT

    @property
    def frames(self) -> int:
        return self.decibels.shape[1]

    @property
    def bins(self) -> int:
        return self.decibels.shape[0]

    @property
    def frame_seconds(self) -> float:
        return self.hop_length / self.sample_rate

    @property
    def bin_hertz(self) -> float:
        return self.sample_rate / self.n_fft

    def value_at(self, seconds: float, hertz: float) -> float | None:
        """dB at a time and frequency (nearest cell), None outside."""
        frame = int(round(seconds / self.frame_seconds))
        bin_index = int(round(hertz / self.bin_hertz))
        if 0 <= frame < self.frames and 0 <= bin_index < self.bins:
            return float(self.decibels[bin_index, frame])
        return None


def hop_for(samples: int, max_frames: int = MAX_FRAMES) -> int:
    """The display hop: 512 for short tracks, larger (a multiple of 256) for long ones."""
    hop = max(512, -(-samples // max_frames))
    return -(-hop // MIN_HOP) * MIN_HOP


def compute(samples: np.ndarray, sample_rate: int, hop_length: int | None = None) -> Spectrogram:
    """`samples (channels, samples)` -> the display spectrogram of their mono sum."""
    mono = np.asarray(samples, dtype=np.float32)
    if mono.ndim == 2:
        mono = mono.mean(axis=0)
    hop = hop_length or hop_for(mono.shape[-1])
    window = torch.hann_window(N_FFT)
    with torch.inference_mode():
        wave = torch.from_numpy(np.ascontiguousarray(mono))
        if wave.shape[-1] < N_FFT:
            wave = torch.nn.functional.pad(wave, (0, N_FFT - wave.shape[-1]))
        spectrum = torch.stft(
            wave, N_FFT, hop, window=window, center=True, pad_mode="constant", return_complex=True
        )
        # A full-scale sine peaks at sum(window) / 2: that is 0 dB.
        magnitude = spectrum.abs() / (window.sum() / 2)
        decibels = 20 * torch.log10(magnitude.clamp_min(10 ** (FLOOR_DB / 20)))
    return Spectrogram(decibels.numpy().astype(np.float32), hop, sample_rate)


def update_range(
    spectrogram: Spectrogram, samples: np.ndarray, first: int, last: int
) -> tuple[int, int]:
    """Recompute the columns that samples `[first, last)` touch, in place, after an edit of
    `samples (channels, samples)`. Returns the frame range `[start, stop)` recomputed."""
    hop = spectrogram.hop_length
    start = max(0, (first - N_FFT // 2) // hop)
    stop = min(spectrogram.frames, (last + N_FFT // 2) // hop + 2)
    if start >= stop:
        return start, start
    mono = np.asarray(samples, dtype=np.float32)
    mono = mono.mean(axis=0) if mono.ndim == 2 else mono
    low = start * hop - N_FFT // 2
    high = (stop - 1) * hop + N_FFT // 2
    # The same centre-padded STFT, on a slice: pad with zeros where the track has none.
    piece = np.zeros(high - low, dtype=np.float32)
    source_low, source_high = max(0, low), min(mono.shape[-1], high)
    piece[source_low - low : source_high - low] = mono[source_low:source_high]
    window = torch.hann_window(N_FFT)
    with torch.inference_mode():
        spectrum = torch.stft(
            torch.from_numpy(piece), N_FFT, hop, window=window, center=False, return_complex=True
        )
        magnitude = spectrum.abs() / (window.sum() / 2)
        decibels = 20 * torch.log10(magnitude.clamp_min(10 ** (FLOOR_DB / 20)))
    spectrogram.decibels[:, start:stop] = decibels.numpy()[:, : stop - start]
    return start, stop
