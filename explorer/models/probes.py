"""Typed views of a model's insides (DESIGN.md, idea 2). The GUI has one panel per type, so a
new model gets its panels by returning these from `probes()`. Values are NumPy arrays."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Activations:
    """`values (units, frames)`: a code layer, a learned representation, stage features.
    Frame `i` is centred at `i * hop_length / sample_rate` seconds of the track."""

    label: str
    values: np.ndarray
    hop_length: int
    sample_rate: int
    unit_label: str = "unit"

    @property
    def frame_seconds(self) -> float:
        return self.hop_length / self.sample_rate


@dataclass(frozen=True)
class Kernels:
    """`values (components, samples)`: learned synthesis kernels, at `sample_rate`.
    Optional per-component `frequencies` (Hz) and `envelopes (components, samples)`."""

    label: str
    values: np.ndarray
    sample_rate: int
    frequencies: np.ndarray | None = None
    envelopes: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Matrix:
    """`values (rows, columns)`: weights, a linear composition, a couplings matrix."""

    label: str
    values: np.ndarray
    row_label: str = "output"
    column_label: str = "input"
    metrics: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Mask:
    """`values (bins, frames)` in [0, 1]: a model's or an oracle's mask for `stem`."""

    label: str
    stem: str
    values: np.ndarray
    hop_length: int
    sample_rate: int
    frontend: str = ""


Probe = Activations | Kernels | Matrix | Mask
