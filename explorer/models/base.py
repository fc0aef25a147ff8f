"""The separator interface every model implements, and chunked processing in bounded memory.

A separator maps a mixture to named stems: `separate(track) -> {stem: (channels, samples)}`.
Subclasses implement `process(mixture, references)` on one chunk of torch tensors; the base
class handles resampling, channels, chunking with context margins, devices and progress.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

import numpy as np
import torch

from explorer.audio.io import resample
from explorer.data.track import Track
from explorer.models.probes import Probe
from explorer.progress import Job, Progress, run_job


class Separator(ABC):
    """Base class. Class attributes describe the model; `process` does the work.

    - `kind`: the registry kind (`oracle-irm`, `dae`, ...); `name`: what the user picked.
    - `mono`: True when the method works on the mono downmix (as the papers do); otherwise
      each channel is separated on its own.
    - `needs_references`: oracles need the true stems.
    - `alignment`: chunk boundaries are multiples of this (the hop), so chunked results equal
      full-length processing for models that act frame by frame.
    """

    kind: str = ""
    sample_rate: int = 44100
    mono: bool = True
    needs_references: bool = False
    chunk_seconds: float = 30.0
    margin_seconds: float = 1.0
    alignment: int = 1

    def __init__(self, name: str | None = None, device: torch.device | None = None):
        self.name = name or self.kind
        self.device = device or torch.device("cpu")

    def to(self, device: torch.device) -> Separator:
        """Move to a device; subclasses with modules move them too."""
        self.device = device
        return self

    @abstractmethod
    def output_stems(self, track: Track) -> tuple[str, ...]:
        """The stems `separate` returns for this track."""

    def reference_stems(self, track: Track) -> tuple[str, ...]:
        """The true stems `process` needs (oracles); none for learned models."""
        return ()

    @abstractmethod
    def process(
        self, mixture: torch.Tensor, references: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Separate one chunk: `mixture (channels, samples)` -> `{stem: (channels, samples)}`."""

    def probes(
        self, track: Track, start_seconds: float = 0.0, seconds: float = 5.0
    ) -> dict[str, Probe]:
        """Typed views of the model's insides for an excerpt of the track."""
        return {}

    def prepare(self, track: Track) -> Track:
        """The track as the model consumes it: at its sample rate, mono where it needs mono."""
        track = track.resampled(self.sample_rate)
        return track.mono() if self.mono else track

    def chunk_plan(self) -> tuple[int, int]:
        """`(chunk, margin)` in samples, both multiples of `alignment`."""
        align = max(1, self.alignment)
        chunk = max(align, int(self.chunk_seconds * self.sample_rate) // align * align)
        margin = -(-int(self.margin_seconds * self.sample_rate) // align) * align
        return chunk, margin

    def separate_job(self, track: Track) -> Job[dict[str, np.ndarray]]:
        """Generator yielding Progress per chunk; returns `{stem: (channels, samples)}` at the
        track's sample rate. Memory: the outputs plus one chunk with its margins."""
        stems = self.output_stems(track)
        references_needed = self.reference_stems(track)
        track.require_stems(*references_needed)
        prepared = self.prepare(track)
        mixture = prepared.mixture
        channels, length = mixture.shape
        outputs = {stem: np.zeros((channels, length), dtype=np.float32) for stem in stems}
        chunk, margin = self.chunk_plan()
        total = -(-length // chunk)
        for index, start in enumerate(range(0, length, chunk)):
            stop = min(length, start + chunk)
            low, high = max(0, start - margin), min(length, stop + margin)
            piece = torch.from_numpy(np.ascontiguousarray(mixture[:, low:high])).to(self.device)
            references = {
                stem: torch.from_numpy(np.ascontiguousarray(prepared.stems[stem][:, low:high])).to(
                    self.device
                )
                for stem in references_needed
            }
            with torch.inference_mode():
                result = self.process(piece, references)
            for stem in stems:
                outputs[stem][:, start:stop] = (
                    result[stem][:, start - low : stop - low].float().cpu().numpy()
                )
            yield Progress(index + 1, total, f"{self.name}: chunk {index + 1}/{total}")
        if self.sample_rate != track.sample_rate:
            outputs = {
                stem: _fit(
                    resample(samples, self.sample_rate, track.sample_rate), track.mixture.shape[-1]
                )
                for stem, samples in outputs.items()
            }
        return outputs

    def separate(self, track: Track) -> dict[str, np.ndarray]:
        return run_job(self.separate_job(track))


def _fit(samples: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad `(channels, samples)` to `length` (resampling can round by a sample)."""
    if samples.shape[-1] >= length:
        return samples[:, :length]
    return np.pad(samples, ((0, 0), (0, length - samples.shape[-1])))


class NetworkSeparator(Separator):
    """A separator around a trained network (its `config.kind` is the separator's kind) and
    the front-end it was trained on; both move with the separator."""

    def __init__(
        self,
        network: torch.nn.Module,
        frontend: torch.nn.Module,
        name: str | None = None,
        device: torch.device | None = None,
    ):
        self.kind = network.config.kind
        super().__init__(name, device)
        self.config = network.config
        self.network = network.to(self.device).eval()
        self.frontend = frontend.to(self.device)
        self.sample_rate = self.frontend.sample_rate

    def to(self, device: torch.device) -> NetworkSeparator:
        super().to(device)
        self.network.to(device)
        self.frontend.to(device)
        return self
