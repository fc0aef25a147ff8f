"""Masks: oracle masks recover sources with disjoint spectra, and masks compose."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.audio import masks
from explorer.audio.frontends import make_frontend
from explorer.audio.metrics import snr
from explorer.errors import InputError
from tests.conftest import sine


def _sources() -> tuple[torch.Tensor, torch.Tensor]:
    low = torch.from_numpy(sine(220.0, 1.0, 44100))
    high = torch.from_numpy(sine(3520.0, 1.0, 44100))
    return low, high


@pytest.mark.parametrize("kind", ["ibm", "irm"])
def test_oracle_masks_separate_disjoint_sources(kind: str) -> None:
    frontend = make_frontend("eusipco2020")
    low, high = _sources()
    mixture = low + high
    spectra = [frontend.encode(signal) for signal in (low, high)]
    make = masks.binary_mask if kind == "ibm" else masks.ratio_mask
    mask = make(spectra[0], [spectra[1]])
    estimate = frontend.decode(mask.apply(frontend.encode(mixture)), mixture.shape[-1])
    assert snr(low.numpy()[:, 4000:-4000], estimate.numpy()[:, 4000:-4000]) > 25


def test_ratio_masks_partition_unity() -> None:
    generator = torch.Generator().manual_seed(0)
    spectra = [torch.randn(3, 10, generator=generator, dtype=torch.complex64) for _ in range(4)]
    total = sum(
        masks.ratio_mask(spectra[i], spectra[:i] + spectra[i + 1 :]).values for i in range(4)
    )
    assert torch.allclose(total, torch.ones(3, 10), atol=1e-5)


def test_ratio_threshold_rule() -> None:
    target = torch.tensor([[1.0, 1.0, 1.0]])
    rest = torch.tensor([[1.0, 2.0, 3.0]])
    # 1/1 = 1 > 0.5, 1/2 = 0.5 is not > 0.5, 1/3 < 0.5.
    assert masks.ratio_threshold_mask(target, rest).values.tolist() == [[1.0, 0.0, 0.0]]


def test_masks_compose() -> None:
    a = masks.Mask(torch.tensor([[0.0, 0.2, 0.7, 1.0]]))
    b = masks.Mask(torch.tensor([[1.0, 0.9, 0.1, 1.0]]))
    assert torch.allclose(a.invert().invert().values, a.values)
    assert a.threshold(0.5).values.tolist() == [[0.0, 0.0, 1.0, 1.0]] and a.threshold(0.5).is_binary
    assert not a.is_binary
    assert a.combine(b, "and").values.tolist() == [[0.0, 0.0, 0.0, 1.0]]
    assert a.combine(b, "or").values.tolist() == [[1.0, 1.0, 1.0, 1.0]]
    assert torch.allclose(a.combine(b, "multiply").values, a.values * b.values)
    with pytest.raises(InputError):
        a.combine(masks.Mask(torch.zeros(2, 2)))
    with pytest.raises(InputError):
        a.combine(b, "xor")


def test_apply_keeps_phase() -> None:
    spectrum = torch.tensor([[1 + 1j, -2 + 0.5j]], dtype=torch.complex64)
    applied = masks.Mask(torch.tensor([[0.5, 1.0]])).apply(spectrum)
    assert np.allclose(torch.angle(applied).numpy(), torch.angle(spectrum).numpy())
    assert np.allclose(applied.abs().numpy(), [[0.5 * np.sqrt(2), np.sqrt(4.25)]])
