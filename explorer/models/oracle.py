"""Oracle masks as separators: the ideal binary and ratio masks computed from the true stems,
applied to the mixture in a front-end's representation, decoded with the mixture phase. They
set the ceiling that learned masks are compared with."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from explorer.audio import masks
from explorer.audio.frontends import make_frontend
from explorer.data.track import ACCOMPANIMENT, STEM_NAMES, Track
from explorer.models import probes
from explorer.models.base import Separator


@dataclass(frozen=True)
class OracleConfig:
    """`mask`: `ibm` or `irm`; `power`: 1 for magnitude ratios, 2 for power ratios.
    The front-end is [open] for oracles: the mod-cos paper's STFT baseline (Hamming 2048,
    hop 384) by default."""

    mask: str = "irm"
    frontend: str = "eusipco2020"
    power: float = 1.0


class OracleSeparator(Separator):
    mono = False
    needs_references = True

    def __init__(
        self, config: OracleConfig, name: str | None = None, device: torch.device | None = None
    ):
        self.kind = f"oracle-{config.mask}"
        super().__init__(name, device)
        self.config = config
        self.frontend = make_frontend(config.frontend).to(self.device)
        self.sample_rate = self.frontend.sample_rate
        self.alignment = self.frontend.hop_length

    def to(self, device: torch.device) -> OracleSeparator:
        super().to(device)
        self.frontend.to(device)
        return self

    def reference_stems(self, track: Track) -> tuple[str, ...]:
        present = tuple(stem for stem in STEM_NAMES if stem in track.stems)
        if "vocals" in present and len(present) > 1:
            return present
        # At least a target and something else: vocals with accompaniment, say.
        return tuple(stem for stem in (*STEM_NAMES, ACCOMPANIMENT) if stem in track.stems) or (
            "vocals",
        )

    def output_stems(self, track: Track) -> tuple[str, ...]:
        stems = self.reference_stems(track)
        if ACCOMPANIMENT in track.stems and ACCOMPANIMENT not in stems:
            stems = (*stems, ACCOMPANIMENT)
        return stems

    def masks(
        self, references: Mapping[str, torch.Tensor], stems: tuple[str, ...]
    ) -> dict[str, masks.Mask]:
        """`{stem: Mask (channels, bins, frames)}` from the references' representations."""
        encoded = {stem: self.frontend.encode(signal) for stem, signal in references.items()}
        result = {}
        for stem in stems:
            if stem == ACCOMPANIMENT and ACCOMPANIMENT not in encoded:
                continue
            target = encoded[stem]
            others = [value for key, value in encoded.items() if key != stem]
            if self.config.mask == "ibm":
                result[stem] = masks.binary_mask(target, others)
            else:
                result[stem] = masks.ratio_mask(target, others, self.config.power)
        if ACCOMPANIMENT in stems and ACCOMPANIMENT not in result:
            # Everything but the vocals: the complement keeps vocals + accompaniment = mixture.
            result[ACCOMPANIMENT] = result["vocals"].invert()
        return result

    def process(
        self, mixture: torch.Tensor, references: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        spectrum = self.frontend.encode(mixture)
        length = mixture.shape[-1]
        stems = tuple(references) + (
            (ACCOMPANIMENT,) if "vocals" in references and len(references) > 1 else ()
        )
        return {
            stem: self.frontend.decode(mask.apply(spectrum), length)
            for stem, mask in self.masks(references, stems).items()
        }

    def probes(
        self, track: Track, start_seconds: float = 0.0, seconds: float = 5.0
    ) -> dict[str, probes.Probe]:
        excerpt = self.prepare(track).mono().excerpt(start_seconds, seconds)
        needed = self.reference_stems(track)
        references = {
            stem: torch.from_numpy(excerpt.stems[stem]).to(self.device) for stem in needed
        }
        with torch.inference_mode():
            computed = self.masks(references, self.output_stems(track))
        return {
            f"mask/{stem}": probes.Mask(
                f"{self.kind} mask: {stem}",
                stem,
                np.asarray(mask.values[0].cpu()),
                self.frontend.hop_length,
                self.sample_rate,
                self.config.frontend,
            )
            for stem, mask in computed.items()
        }
