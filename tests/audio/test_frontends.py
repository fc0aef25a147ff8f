"""STFT front-ends: perfect reconstruction for every preset, agreement with torch.istft, and
frame-range resynthesis equal to the full decode."""

from __future__ import annotations

import pytest
import torch

from explorer.audio.frontends import PRESETS, BandNormalizer, make_frontend
from explorer.audio.io import read_audio, to_mono
from explorer.errors import InputError


@pytest.fixture(scope="module")
def music(shared_data) -> torch.Tensor:
    samples, _ = read_audio(
        shared_data / "musdb18-preview" / "Music Delta - 80s Rock" / "mixture.flac"
    )
    return torch.from_numpy(to_mono(samples)[:, 44100 : 44100 * 3].copy())


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_perfect_reconstruction(name: str, music: torch.Tensor) -> None:
    frontend = make_frontend(name)
    noise = torch.randn(2, 44100, generator=torch.Generator().manual_seed(1))
    for wave in (noise, music):
        decoded = frontend.decode(frontend.encode(wave), wave.shape[-1])
        assert decoded.shape == wave.shape
        assert torch.max(torch.abs(decoded - wave)) < 1e-5 * wave.abs().max()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_matches_torch_istft(name: str) -> None:
    """An independent inverse: torch.istft with the same window on the same spectrum."""
    frontend = make_frontend(name)
    wave = torch.randn(1, 30000, generator=torch.Generator().manual_seed(2))
    spectrum = frontend.encode(wave)
    spectrum = spectrum * torch.rand(spectrum.shape, generator=torch.Generator().manual_seed(3))
    ours = frontend.decode(spectrum, wave.shape[-1])
    reference = torch.istft(
        spectrum,
        frontend.config.n_fft,
        frontend.hop_length,
        window=frontend.window,
        center=True,
        length=wave.shape[-1],
    )
    assert torch.allclose(ours, reference, atol=1e-5)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_decode_frames_equals_full_decode(name: str) -> None:
    frontend = make_frontend(name)
    length = 40000
    spectrum = frontend.encode(torch.randn(2, length, generator=torch.Generator().manual_seed(4)))
    spectrum = spectrum * torch.rand(spectrum.shape, generator=torch.Generator().manual_seed(5))
    full = frontend.decode(spectrum, length)
    frames = spectrum.shape[-1]
    for start, stop in [
        (0, 1),
        (3, 9),
        (frames // 2, frames // 2 + 5),
        (frames - 4, frames),
        (0, frames),
    ]:
        part, first = frontend.decode_frames(spectrum, start, stop, length)
        assert torch.allclose(part, full[:, first : first + part.shape[-1]], atol=1e-6)


def test_an_edit_changes_only_the_span_decode_frames_reports() -> None:
    frontend = make_frontend("eusipco2020")
    length = 44100
    spectrum = frontend.encode(torch.randn(1, length, generator=torch.Generator().manual_seed(6)))
    edited = spectrum.clone()
    edited[..., 40:44] = 0
    before, after = frontend.decode(spectrum, length), frontend.decode(edited, length)
    changed = torch.nonzero((before - after).abs()[0] > 1e-7).squeeze(1)
    first, last = frontend.sample_span(40, 44, length)
    assert changed.min() >= first and changed.max() < last
    part, offset = frontend.decode_frames(edited, 40, 44, length)
    assert offset == first and torch.allclose(part, after[:, first:last], atol=1e-6)


def test_taslp2020_preset_is_the_papers() -> None:
    config = PRESETS["taslp2020"]
    assert (config.win_length, config.n_fft, config.hop_length, config.bins, config.window) == (
        2049,
        4096,
        384,
        2049,
        "hamming",
    )
    assert PRESETS["naive-ae"].bins == 533


def test_band_normalizer_gives_unit_variance() -> None:
    magnitude = torch.rand(1, 7, 500) * torch.arange(1, 8).float()[None, :, None]
    normalizer = BandNormalizer(7)
    normalizer.fit(magnitude)
    normalized = normalizer.normalize(magnitude[0])
    assert torch.allclose(normalized.std(dim=-1), torch.ones(7), atol=1e-4)
    assert torch.allclose(normalizer.denormalize(normalized), magnitude[0], atol=1e-6)


def test_bad_ranges_and_empty_input() -> None:
    frontend = make_frontend("drdnn")
    spectrum = frontend.encode(torch.randn(1, 5000))
    with pytest.raises(InputError):
        frontend.decode_frames(spectrum, 5, 5, 5000)
    with pytest.raises(InputError):
        frontend.encode(torch.zeros(1, 0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_round_trip_matches_cpu() -> None:
    frontend = make_frontend("taslp2020")
    wave = torch.randn(1, 20000)
    cpu = frontend.decode(frontend.encode(wave), 20000)
    frontend.cuda()
    gpu = frontend.decode(frontend.encode(wave.cuda()), 20000).cpu()
    assert torch.allclose(cpu, gpu, atol=1e-5)
