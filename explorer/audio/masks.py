"""Time-frequency masks that compose, in any front-end's representation.

A `Mask` holds values in [0, 1] shaped `(..., bins, frames)`: soft (ratio) or binary. Masks
invert, threshold and combine, and apply to a representation of the same shape. The oracle
masks need the true sources' representations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from explorer.errors import InputError

EPSILON = 1e-10


@dataclass(frozen=True)
class Mask:
    """`values (..., bins, frames)` in [0, 1]. Operations return new masks."""

    values: torch.Tensor

    @property
    def is_binary(self) -> bool:
        return bool(((self.values == 0) | (self.values == 1)).all())

    def invert(self) -> Mask:
        return Mask(1.0 - self.values)

    def threshold(self, level: float = 0.5) -> Mask:
        """Binary mask `1[values > level]`."""
        return Mask((self.values > level).to(self.values.dtype))

    def combine(self, other: Mask, operation: str = "multiply") -> Mask:
        """`and`/`or` of binary masks, or `multiply`/`max`/`min` of soft ones."""
        if self.values.shape != other.values.shape:
            raise InputError(
                f"mask shapes differ: {tuple(self.values.shape)} and {tuple(other.values.shape)}"
            )
        operations = {
            "multiply": lambda a, b: a * b,
            "and": lambda a, b: ((a > 0.5) & (b > 0.5)).to(a.dtype),
            "or": lambda a, b: ((a > 0.5) | (b > 0.5)).to(a.dtype),
            "max": torch.maximum,
            "min": torch.minimum,
        }
        if operation not in operations:
            raise InputError(
                f"unknown mask operation '{operation}' (known: {', '.join(operations)})"
            )
        return Mask(operations[operation](self.values, other.values))

    def apply(self, representation: torch.Tensor) -> torch.Tensor:
        """Element-wise product with a (complex or real) representation of the same shape."""
        return representation * self.values.to(representation.device)


def ratio_mask(target: torch.Tensor, others: list[torch.Tensor], power: float = 1.0) -> Mask:
    """Ideal ratio mask `|T|^p / (|T|^p + sum_i |O_i|^p)` from representations."""
    target_energy = target.abs() ** power
    total = target_energy + sum(other.abs() ** power for other in others)
    return Mask(target_energy / (total + EPSILON))


def binary_mask(target: torch.Tensor, others: list[torch.Tensor]) -> Mask:
    """Ideal binary mask `1[|T| > |sum of others|]` (the target dominates the bin)."""
    rest = sum(others[1:], others[0]) if others else torch.zeros_like(target)
    return Mask((target.abs() > rest.abs()).to(target.abs().dtype))


def ratio_threshold_mask(target: torch.Tensor, rest: torch.Tensor, threshold: float = 0.5) -> Mask:
    """The mod-cos paper's informed mask `1[|E(v)| / |E(b)| > threshold]` (FACTS 2)."""
    ratio = target.abs() / (rest.abs() + EPSILON)
    return Mask((ratio > threshold).to(ratio.dtype))
