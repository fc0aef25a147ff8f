"""The mod-cos autoencoder: kernels against a direct NumPy evaluation, sorting that leaves the
decoded output unchanged, exact frame-range decoding, the losses against hand computation, a
float64 gradient check of the training loss, the informed mask rule, the additivity error,
the separator (chunked == whole), probes, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional

from explorer.audio.frontends import make_frontend
from explorer.data.track import Track
from explorer.errors import InputError
from explorer.models import modcos, registry

TINY = {"components": 6, "kernel_length": 32, "hop_length": 8, "dilation": 3, "segment_samples": 64}


def tiny(kind: str = "modcos", **changes) -> modcos.ModCosConfig:
    return modcos.preset_config("tiny", kind, **{**TINY, **changes})


def scrambled(kind: str = "modcos", seed: int = 0, **changes) -> modcos.ModCosAutoencoder:
    """A float64 model whose kernel frequencies are out of order (as after some updates)."""
    torch.manual_seed(seed)
    model = modcos.ModCosAutoencoder(tiny(kind, **changes)).double()
    if isinstance(model.decoder, modcos.CosineDecoder):
        with torch.no_grad():
            model.decoder.frequency.copy_(
                torch.rand(model.config.components, dtype=torch.float64) * 0.7
            )
            model.decoder.envelope.mul_(1 + torch.rand_like(model.decoder.envelope))
    return model


def test_paper_defaults_give_115_frames_per_second():
    model = modcos.ModCosAutoencoder(modcos.ModCosConfig())
    assert (model.config.components, model.config.kernel_length, model.config.hop_length) == (
        800,
        2048,
        384,
    )
    assert model.frames_for(44100) == 115
    with torch.inference_mode():
        assert model.encode(torch.randn(1, 44100) * 0.1).shape == (1, 800, 115)


@pytest.mark.parametrize("kind", ["modcos", "modcos-linear", "modcos-cos"])
def test_kernels_match_direct_numpy_evaluation(kind):
    model = scrambled(kind)
    decoder = model.decoder
    frequency = decoder.frequency.detach().numpy()
    power = model.config.power
    phase = decoder.phase.detach().numpy()
    envelope = decoder.envelopes().detach().numpy()
    time = np.arange(model.config.kernel_length)
    expected = (
        np.cos(2 * np.pi * frequency[:, None] ** power * time[None, :] + phase[:, None]) * envelope
    )
    order = np.argsort(frequency**power, kind="stable")
    assert not np.array_equal(order, np.arange(len(order)))  # the test needs an unsorted model
    np.testing.assert_allclose(model.sorted_kernels().detach().numpy(), expected[order], atol=1e-12)
    np.testing.assert_allclose(model.kernel_frequencies_hertz(), np.sort(frequency**power) * 44100)


def test_initial_kernel_frequencies_are_the_mel_frequencies():
    mel = modcos.mel_frequencies(6, 44100)
    assert mel[0] == pytest.approx(30.0) and mel[-1] == pytest.approx(22050.0)
    for kind in ("modcos", "modcos-linear"):
        model = modcos.ModCosAutoencoder(tiny(kind))
        np.testing.assert_allclose(model.kernel_frequencies_hertz(), mel, rtol=1e-5)
    # The authors' code: f_c = mel / fs, so the squared kernel frequency starts at (mel / fs)^2.
    code = modcos.ModCosAutoencoder(tiny(frequency_init="code"))
    np.testing.assert_allclose(
        code.kernel_frequencies_hertz(), (mel / 44100) ** 2 * 44100, rtol=1e-5
    )
    # Envelopes start at 1 / (C + L): the parameter itself (the code's "absolute" steps), or a
    # unit parameter times that scale ("relative" steps, our default).
    assert torch.allclose(code.decoder.envelopes(), torch.full((6, 32), 1 / 38))
    assert torch.equal(code.decoder.envelope.detach(), torch.ones(6, 32))
    absolute = modcos.ModCosAutoencoder(tiny(envelope_step="absolute"))
    assert torch.allclose(absolute.decoder.envelope.detach(), torch.full((6, 32), 1 / 38))
    torch.testing.assert_close(absolute.decoder.envelopes(), code.decoder.envelopes())


@pytest.mark.parametrize("kind", ["modcos", "modcos-sinc", "modcos-cos"])
def test_sorting_leaves_decoded_output_unchanged(kind):
    model = scrambled(kind)
    wave = torch.randn(2, 300, dtype=torch.float64)
    # Without any sorting: the raw encoder channels decoded by the raw (unsorted) kernels.
    raw = functional.conv_transpose1d(
        model.encoder(wave), model.decoder.kernels()[:, None, :], stride=model.config.hop_length
    )[:, 0, model.config.padding : model.config.padding + 300]
    before_representation = model.encode(wave).detach()
    before = model(wave).detach()
    torch.testing.assert_close(before, raw, rtol=0, atol=1e-12)
    order = model.sort_()
    assert not torch.equal(order, torch.arange(len(order)))
    frequencies = model.decoder.kernel_frequencies().detach()
    assert torch.all(frequencies[1:] >= frequencies[:-1])  # parameters now physically sorted
    assert torch.equal(model.channel_order(), torch.arange(len(order)))
    torch.testing.assert_close(model(wave).detach(), before, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        model.encode(wave).detach(), before_representation, rtol=0, atol=1e-12
    )
    # And the raw path after the physical sort is the sorted path.
    raw_after = functional.conv_transpose1d(
        model.encoder(wave), model.decoder.kernels()[:, None, :], stride=model.config.hop_length
    )[:, 0, model.config.padding : model.config.padding + 300]
    torch.testing.assert_close(raw_after, before, rtol=0, atol=1e-12)


def test_sorting_permutes_adams_moments_with_the_parameters():
    model = scrambled()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    wave = torch.randn(1, 200, dtype=torch.float64)
    model(wave).square().sum().backward()
    optimizer.step()
    moments = optimizer.state[model.decoder.frequency]["exp_avg"].clone()
    dilated = optimizer.state[model.encoder.dilated.weight]["exp_avg_sq"].clone()
    order = model.sort_(optimizer)
    torch.testing.assert_close(optimizer.state[model.decoder.frequency]["exp_avg"], moments[order])
    torch.testing.assert_close(
        optimizer.state[model.encoder.dilated.weight]["exp_avg_sq"], dilated[order][:, order]
    )


@pytest.mark.parametrize("kind", ["modcos", "modcos-conv-tanh"])
def test_decode_frames_equals_full_decode_on_its_span(kind):
    model = scrambled(kind)
    length = 203
    representation = torch.rand(
        2, model.config.components, model.frames_for(length), dtype=torch.float64
    )
    full = model.decode(representation, length)
    frames = representation.shape[-1]
    for start, stop in [(0, 1), (0, 3), (4, 9), (frames - 2, frames), (0, frames), (12, 13)]:
        wave, first = model.decode_frames(representation, start, stop, length)
        assert wave.shape[-1] > 0
        torch.testing.assert_close(
            wave, full[:, first : first + wave.shape[-1]], rtol=0, atol=1e-12
        )
        # The span is complete: frames outside [start, stop) zeroed, nothing moves outside it.
        if kind == "modcos":
            only = torch.zeros_like(representation)
            only[..., start:stop] = representation[..., start:stop]
            alone = model.decode(only, length)
            assert not alone[:, :first].any()
            assert not alone[:, first + wave.shape[-1] :].any()
    with pytest.raises(InputError):
        model.decode_frames(representation, 3, 3, length)


def test_neg_snr_and_total_variation_against_hand_computation():
    target = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    estimate = torch.tensor([[3.0, 3.0]], dtype=torch.float64)
    assert float(modcos.neg_snr(target, estimate)) == pytest.approx(-10 * math.log10(25.0))
    representation = torch.tensor([[[1.0, 3.0, 2.0], [0.0, 1.0, 5.0]]], dtype=torch.float64)
    # time differences (2, -1, 1, 4): norm sqrt(22) over T = 3; channel differences
    # (-1, -2, 3): norm sqrt(14) over C = 2.
    expected = math.sqrt(22) / 3 + math.sqrt(14) / 2
    assert float(modcos.total_variation(representation)) == pytest.approx(expected)


def test_training_loss_gradient_check_in_float64():
    """Autograd through the whole loss (sorting, ReLU, transposed conv, TV, neg-SNR) against
    finite differences, for every parameter."""
    config = modcos.preset_config(
        "tiny", components=3, kernel_length=16, hop_length=8, dilation=2, segment_samples=16
    )
    torch.manual_seed(3)
    model = modcos.ModCosAutoencoder(config).double()
    vocals, accompaniment = torch.randn(2, 2, 40, dtype=torch.float64)
    noise = 1e-4 * torch.randn(2, 40, dtype=torch.float64)
    names = [name for name, _ in model.named_parameters()]
    parameters = tuple(value.detach().clone().requires_grad_(True) for value in model.parameters())

    def loss(*values):
        state = dict(zip(names, values, strict=True))
        return torch.func.functional_call(
            _LossModule(model),
            {f"model.{key}": value for key, value in state.items()},
            (vocals, accompaniment, noise),
        )

    assert torch.autograd.gradcheck(loss, parameters, eps=1e-6, atol=1e-5, rtol=1e-4)


class _LossModule(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, vocals, accompaniment, noise):
        return modcos.training_loss(self.model, vocals, accompaniment, noise)


def test_training_loss_terms_follow_the_config():
    torch.manual_seed(0)
    model = modcos.ModCosAutoencoder(tiny()).double()
    vocals, accompaniment = torch.randn(2, 2, 100, dtype=torch.float64)
    noise = torch.zeros_like(vocals)
    parts: dict[str, float] = {}
    value = modcos.training_loss(model, vocals, accompaniment, noise, parts)
    centred = vocals - vocals.mean()
    mixture = centred + accompaniment
    mixture = mixture - mixture.mean()
    expected_snr = float(modcos.neg_snr(centred, model(centred)).detach())
    expected_tv = float(modcos.total_variation(model.encode(mixture)).detach())
    assert parts["neg_snr"] == pytest.approx(expected_snr)
    assert parts["tv"] == pytest.approx(expected_tv)
    assert float(value) == pytest.approx(expected_snr + 0.5 * expected_tv)
    on_vocals = modcos.ModCosAutoencoder(tiny(tv_on="vocals")).double()
    on_vocals.load_state_dict(model.state_dict())
    modcos.training_loss(on_vocals, vocals, accompaniment, noise, parts)
    assert parts["tv"] == pytest.approx(float(modcos.total_variation(model.encode(centred))))


def test_informed_mask_rule():
    model = scrambled()
    rng = np.random.default_rng(1)
    vocals = torch.from_numpy(rng.standard_normal((1, 200)))
    rest = torch.from_numpy(rng.standard_normal((1, 200)) * 0.7)
    encoded_vocals, encoded_rest = model.encode(vocals), model.encode(rest)
    mask = modcos.informed_mask(model, vocals, rest).values
    expected = (encoded_vocals.abs() / (encoded_rest.abs() + 1e-10) > 0.5).double()
    assert torch.equal(mask, expected)
    assert 0 < float(mask.mean()) < 1
    ibm = modcos.informed_mask(model, vocals, rest, "ibm").values
    assert torch.equal(ibm, (encoded_vocals > encoded_rest).double())
    with pytest.raises(InputError):
        modcos.informed_mask(model, vocals, rest, "nonsense")


class _Stub:
    """A front-end stand-in whose encoder is `x -> (x, |x|)` per sample."""

    def __init__(self, absolute: bool):
        self.absolute = absolute

    def encode(self, wave):
        return (wave.abs() if self.absolute else wave)[:, None, :]


def test_additivity_error_is_zero_for_a_linear_encoder_and_matches_hand_computation():
    vocals = torch.tensor([[1.0, -1.0, 0.5]])
    rest = torch.tensor([[1.0, 1.0, -2.0]])
    assert modcos.additivity_error(_Stub(False), vocals + rest, vocals, rest) == pytest.approx(0.0)
    # |m| = (2, 0, 1.5); |v| + |b| = (2, 2, 2.5): error 0 + 2 + 1 = 3 over 3.5.
    assert modcos.additivity_error(_Stub(True), vocals + rest, vocals, rest) == pytest.approx(
        3 / 3.5
    )


def _track(seconds: float = 1.5, sample_rate: int = 44100) -> Track:
    rng = np.random.default_rng(5)
    samples = int(seconds * sample_rate)
    time = np.arange(samples) / sample_rate
    vocals = (
        (0.3 * np.sin(2 * np.pi * 440 * time) * (time % 0.5 < 0.3))
        .astype(np.float32)[None]
        .repeat(2, 0)
    )
    drums = (0.1 * rng.standard_normal((2, samples))).astype(np.float32)
    return Track("test", vocals + drums, sample_rate, {"vocals": vocals, "drums": drums})


def test_separator_is_informed_and_chunking_changes_nothing():
    model = modcos.ModCosAutoencoder(modcos.preset_config("tiny"))
    separator = modcos.ModCosSeparator(model, "modcos-test")
    track = _track()
    assert separator.needs_references and separator.reference_stems(track) == (
        "vocals",
        "accompaniment",
    )
    whole = separator.separate(track)
    # Mono like the paper: one channel out, at the track's length.
    assert set(whole) == {"vocals", "accompaniment"}
    assert whole["vocals"].shape == (1, track.mixture.shape[-1])
    separator.chunk_seconds = 0.25
    assert (
        separator.chunk_plan()[1]
        >= model.config.reach * model.config.hop_length + 2 * model.config.kernel_length
    )
    chunked = separator.separate(track)
    np.testing.assert_allclose(chunked["vocals"], whole["vocals"], atol=1e-6)
    with pytest.raises(InputError, match="vocals"):
        separator.separate(Track("no stems", track.mixture, 44100))


def test_probes_have_the_documented_shapes():
    model = modcos.ModCosAutoencoder(modcos.preset_config("tiny"))
    found = modcos.ModCosSeparator(model).probes(_track(), 0.0, 1.0)
    activations = found["activations/mixture"]
    assert (
        activations.values.shape == (16, model.frames_for(44100)) and activations.hop_length == 16
    )
    assert (activations.values >= 0).all()
    kernels = found["kernels/decoder"]
    assert kernels.values.shape == (16, 64) and kernels.sample_rate == 44100
    assert np.all(np.diff(kernels.frequencies) >= 0)
    assert kernels.envelopes.shape == (16, 64)
    assert kernels.extra["magnitude_response_db"].shape[0] == 16
    assert found["matrix/frequencies"].values.shape == (2, 16)
    assert set(np.unique(found["mask/vocals"].values)) <= {0.0, 1.0}


def test_paper_metrics_in_both_representations():
    torch.manual_seed(0)
    model = modcos.ModCosAutoencoder(modcos.preset_config("tiny"))
    track = _track(2.0)
    learned = modcos.paper_metrics(model, track)
    stft = modcos.paper_metrics(make_frontend("eusipco2020"), track)
    assert learned["reconstruction_si_sdr"] is not None and stft["reconstruction_si_sdr"] is None
    for result in (learned, stft):
        assert all(
            math.isfinite(result[key])
            for key in ("separation_si_sdr", "mixture_si_sdr", "additivity")
        )
    assert stft["separation_si_sdr"] > stft["mixture_si_sdr"]  # the informed STFT mask helps


def test_bad_input():
    model = modcos.ModCosAutoencoder(modcos.preset_config("tiny"))
    with pytest.raises(InputError, match="shorter than one mod-cos kernel"):
        model.encode(torch.zeros(1, 63))
    with pytest.raises(InputError, match="shorter than one mod-cos kernel"):
        modcos.ModCosSeparator(model).separate(
            Track(
                "short",
                np.zeros((1, 40), np.float32),
                44100,
                {"vocals": np.zeros((1, 40), np.float32), "drums": np.zeros((1, 40), np.float32)},
            )
        )
    with pytest.raises(InputError, match="unknown mod-cos config keys"):
        modcos.ModCosConfig.from_dict({"kind": "modcos", "colour": 3})
    with pytest.raises(InputError):
        modcos.preset_config("huge")
    with pytest.raises(InputError):
        modcos.ModCosConfig(hop_length=4096)


def test_checkpoint_of_another_variant_is_a_clear_input_error(tmp_path):
    conv = modcos.ModCosAutoencoder(tiny("modcos-conv"))
    path = tmp_path / "conv.pt"
    registry.save_checkpoint(
        path, "modcos-conv", conv.config.to_dict(), conv.state_dict(), {"data": "test"}
    )
    separator = registry.load_separator(str(path), torch.device("cpu"))
    assert separator.kind == "modcos-conv"
    # Its weights under the paper model's config: another variant.
    with pytest.raises(InputError, match="not a 'modcos' model"):
        modcos.load(
            {**conv.config.to_dict(), "kind": "modcos"}, conv.state_dict(), "x", torch.device("cpu")
        )
    # Another size.
    bigger = modcos.ModCosAutoencoder(tiny(components=8))
    with pytest.raises(InputError, match="needs"):
        modcos.load(tiny().to_dict(), bigger.state_dict(), "x", torch.device("cpu"))
    # A registry read that expects the paper model.
    with pytest.raises(InputError, match="'modcos-conv' checkpoint, expected modcos"):
        registry.load_checkpoint(path, "modcos")


def test_shipped_weights_separate_the_demo_vocals():
    """`modcos` (resources/modcos.pt, trained on synthetic songs only) with the demo's stems:
    the informed binary mask in the learned representation beats the mixture by a wide margin."""
    if not (registry.RESOURCES / modcos.BUILTIN_FILE).is_file():
        pytest.skip("resources/modcos.pt is not shipped in this checkout")
    from explorer.data.sources import open_track

    separator = registry.load_separator("modcos", torch.device("cpu"))
    assert separator.needs_references and separator.rule == "paper"
    frequencies = separator.model.kernel_frequencies_hertz()
    assert np.all(np.diff(frequencies) >= 0)
    scores = modcos.paper_metrics(separator.model, open_track("demo"))
    assert scores["separation_si_sdr"] - scores["mixture_si_sdr"] > 5.0
    assert scores["reconstruction_si_sdr"] > 3.0
    assert registry.load_separator("modcos-oracle-ibm", torch.device("cpu")).rule == "ibm"
