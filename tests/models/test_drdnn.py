"""DRDNN family (FACTS 3): the frequency-reducing convolutions against torch's convolutions,
shapes through every stage, soft masks, the overlap-add of 50-frame batches, the losses against
hand computations, gradients, the ablations' architectures, chunked separation and bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from explorer.data.track import STEM_NAMES, Track
from explorer.errors import InputError
from explorer.models import drdnn, registry

TINY = {"preset": "tiny"}
VARIANTS = [
    {"kind": "drdnn"},
    {"kind": "drdnn", "decoupling": False},
    {"kind": "drdnn", "reduction": False},
    {"kind": "drdnn", "masking": False},
    {"kind": "drdnn", "feature": "final"},
    {"kind": "mlp"},
    {"kind": "dcnn"},
    {"kind": "drnn"},
]


def network(seed: int = 0, **values) -> drdnn.DRDNNNetwork:
    torch.manual_seed(seed)
    return drdnn.DRDNNNetwork(drdnn.DRDNNConfig(**{**TINY, **values}))


def noise_track(seconds: float, channels: int = 2, seed: int = 0) -> Track:
    rng = np.random.default_rng(seed)
    stems = {
        stem: (0.05 * rng.standard_normal((channels, int(seconds * 44100)))).astype(np.float32)
        for stem in STEM_NAMES
    }
    return Track("noise", np.sum(list(stems.values()), axis=0), 44100, stems)


def test_each_convolution_has_a_half_size_kernel_and_halves_the_bins() -> None:
    sizes = drdnn.reduction_sizes(513, 4)
    assert sizes == [(256, 258), (129, 130), (65, 66), (33, 34)]
    previous = 513
    for kernel, size in sizes:
        assert kernel == previous // 2 and size == previous - kernel + 1
        assert 0.45 < size / previous < 0.55
        previous = size


def test_banded_convolutions_equal_torch_conv_and_transposed_conv() -> None:
    torch.manual_seed(1)
    reduction = drdnn.FrequencyReduction(513, (3, 5, 4))
    restoration = drdnn.FrequencyRestoration(513, (3, 5, 4), outputs=2)
    frames = torch.randn(2, 7, 513)
    expected = frames.reshape(14, 1, 513)
    for layer in reduction.layers:
        expected = torch.relu(torch.nn.functional.conv1d(expected, layer.weight, layer.bias))
    got = reduction(frames)
    torch.testing.assert_close(got, expected.reshape(2, 7, 4, 66), atol=1e-5, rtol=1e-5)
    value = got.reshape(14, 4, 66)
    for index, layer in enumerate(restoration.layers):
        value = torch.nn.functional.conv_transpose1d(value, layer.weight, layer.bias)
        value = torch.relu(value) if index + 1 < len(restoration.layers) else value
    torch.testing.assert_close(restoration(got), value.reshape(2, 7, 2, 513), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "values", VARIANTS, ids=lambda v: drdnn.DRDNNConfig(**{**TINY, **v}).variant
)
def test_shapes_through_every_stage(values: dict) -> None:
    model = network(**values)
    config = model.config
    channels, reduced = config.conv_channels[-1], drdnn.reduction_sizes(513, 2)[-1][1]
    stages = model.stages(torch.rand(3, 50, 513))
    expected = {"input": (3, 50, 513), "output": (3, 4, 50, 513)}
    kind = config.kind
    if kind in ("drdnn", "dcnn") and config.reduction:
        expected["convolutions"] = (3, 50, channels * reduced)
    if kind in ("drdnn", "drnn"):
        expected["lstm"] = (3, 50, 2 * config.lstm_hidden)
    if kind == "drdnn" and config.decoupling:
        expected["decoupling"] = (3, 4, 50, config.decoupling_hidden)
    if kind == "mlp":
        expected["hidden"] = (3, 50, config.mlp_hidden)
    assert {key: tuple(value.shape) for key, value in stages.items()} == expected


def test_final_feature_is_one_vector_per_batch() -> None:
    stages = network(feature="final").stages(torch.rand(2, 50, 513))
    lstm = stages["lstm"]
    torch.testing.assert_close(lstm, lstm[:, :1].expand_as(lstm))
    assert not torch.allclose(lstm[0], lstm[1])


def test_soft_masks_sum_to_one_and_estimates_sum_to_the_mixture() -> None:
    model = network()
    with torch.no_grad():
        model.scale.uniform_(0.5, 2.0)
    magnitude = torch.rand(2, 50, 513) * 3
    magnitude[0, :5] = 0.0  # silence: masks stay defined
    estimates, masks = model.estimates(magnitude)
    assert masks is not None and masks.min() >= 0
    torch.testing.assert_close(masks.sum(dim=1), torch.ones(2, 50, 513))
    torch.testing.assert_close(estimates.sum(dim=1), magnitude)
    output = model(magnitude / model.scale)
    # M_s = |Y^_s| / sum_i |Y^_i| wherever the sum is far above the epsilon.
    total = output.abs().sum(dim=1, keepdim=True)
    exact = output.abs() / total
    loud = (total > 1e-2).expand_as(exact)
    assert loud.float().mean() > 0.9
    torch.testing.assert_close(masks[loud], exact[loud], rtol=1e-3, atol=1e-4)


def test_without_masks_the_estimate_is_the_restored_magnitude() -> None:
    model = network(masking=False)
    with torch.no_grad():
        model.scale.uniform_(0.5, 2.0)
    magnitude = torch.rand(2, 50, 513)
    estimates, masks = model.estimates(magnitude)
    assert masks is None
    torch.testing.assert_close(estimates, model(magnitude / model.scale).abs() * model.scale)


@pytest.mark.parametrize("frames", [1, 49, 50, 51, 85, 86, 200, 1234])
def test_overlap_add_of_batches_gives_back_an_identity_models_input(frames: int) -> None:
    values = torch.randn(3, frames, 7, dtype=torch.float64)
    batches = drdnn.split_batches(values, 50, 35)
    starts = drdnn.batch_starts(frames, 50, 35)
    assert batches.shape == (len(starts), 3, 50, 7)
    assert starts[-1] + 50 >= frames and (len(starts) == 1 or starts[-2] + 50 < frames)
    torch.testing.assert_close(
        drdnn.overlap_add(batches, frames, 35), values, rtol=1e-12, atol=1e-12
    )


def test_batches_overlap_by_30_percent_and_crossfades_are_complementary() -> None:
    config = drdnn.DRDNNConfig()
    assert (config.batch_frames, config.batch_step) == (50, 35)
    weights = drdnn.crossfade_weights(50, 35)
    torch.testing.assert_close(weights[35:] + weights[:15], torch.ones(15, dtype=torch.float64))
    assert weights[15:35].eq(1).all()


def test_mse_and_discriminative_losses_against_a_hand_computation() -> None:
    rng = np.random.default_rng(0)
    estimates, targets = rng.random((2, 4, 3, 5)), rng.random((2, 4, 3, 5))
    beta = 0.3
    per_batch_mse, per_batch_disc = [], []
    for b in range(2):
        square = np.mean((estimates[b][:, None] - targets[b][None, :]) ** 2, axis=(2, 3))
        own = sum(square[s, s] for s in range(4))
        cross = sum(square[i, j] for i, j in itertools.permutations(range(4), 2))
        per_batch_mse.append(own)
        per_batch_disc.append(own - beta * cross)
    as_tensor = lambda a: torch.from_numpy(a)  # noqa: E731
    assert drdnn.mse_loss(as_tensor(estimates), as_tensor(targets)).item() == pytest.approx(
        np.mean(per_batch_mse), rel=1e-12
    )
    got = drdnn.discriminative_loss(as_tensor(estimates), as_tensor(targets), beta).item()
    assert got == pytest.approx(np.mean(per_batch_disc), rel=1e-12)
    assert drdnn.discriminative_loss(as_tensor(estimates), as_tensor(targets), 0.0).item() == (
        pytest.approx(np.mean(per_batch_mse), rel=1e-12)
    )


@pytest.mark.parametrize(
    "values", VARIANTS, ids=lambda v: drdnn.DRDNNConfig(**{**TINY, **v}).variant
)
def test_gradient_reaches_every_parameter(values: dict) -> None:
    model = network(**values)
    magnitude = torch.rand(2, 50, 513)
    estimates, _ = model.estimates(magnitude)
    drdnn.discriminative_loss(estimates, torch.rand_like(estimates), 0.05).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def parameter_prefixes(model: torch.nn.Module) -> set[str]:
    return {name.split(".")[0] for name, _ in model.named_parameters()}


def test_each_ablation_removes_its_stage() -> None:
    full = network()
    assert parameter_prefixes(full) == {"reduction", "lstm", "decoupling", "restoration"}
    assert len(full.decoupling) == 4 and len(full.restoration) == 4
    assert all(part.deconvolution is not None for part in full.restoration)

    without_decoupling = network(decoupling=False)
    assert parameter_prefixes(without_decoupling) == {"reduction", "lstm", "restoration"}
    assert without_decoupling.restoration[0].lstm.input_size == 2 * full.config.lstm_hidden

    without_reduction = network(reduction=False)
    assert parameter_prefixes(without_reduction) == {"lstm", "decoupling", "restoration"}
    assert without_reduction.lstm.input_size == 513
    assert all(part.deconvolution is None for part in without_reduction.restoration)
    assert without_reduction.restoration[0].project.out_features == 513

    without_masks = network(masking=False)
    assert [p.shape for p in without_masks.parameters()] == [p.shape for p in full.parameters()]

    assert parameter_prefixes(network(kind="mlp")) == {"hidden", "output"}
    assert parameter_prefixes(network(kind="dcnn")) == {"reduction", "restoration"}
    assert network(kind="dcnn").restoration.layers[-1].out_channels == 4
    assert parameter_prefixes(network(kind="drnn")) == {"lstm", "output"}


def test_presets_fill_sizes_and_explicit_values_win() -> None:
    small = drdnn.DRDNNConfig()
    assert small.conv_channels == drdnn.SIZE_PRESETS["small"]["conv_channels"]
    paper = drdnn.DRDNNConfig.from_dict({"preset": "paper-scale", "lstm_hidden": 100})
    assert paper.lstm_hidden == 100 and paper.conv_channels == (16, 32, 64, 64)
    assert drdnn.DRDNNConfig.from_dict(paper.to_dict()) == paper
    assert drdnn.DRDNNConfig(decoupling=False, reduction=False, masking=False).variant == (
        "drdnn-wDCP-wDR-noMask"
    )


@pytest.mark.parametrize(
    "values,message",
    [
        ({"kind": "unet"}, "unknown DRDNN-family kind"),
        ({"beta": 1.0}, "beta"),
        ({"beta": -0.1}, "beta"),
        ({"objective": "l1"}, "objective"),
        ({"preset": "huge"}, "preset"),
        ({"kind": "mlp", "decoupling": False}, "ablations"),
        ({"conv_channels": [2] * 8}, "at most"),
        ({"batch_overlap": 1.0}, "batch_overlap"),
        ({"colour": "red"}, "unknown DRDNN config keys"),
    ],
)
def test_bad_configs_are_input_errors(values: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        drdnn.DRDNNConfig.from_dict(values)


def separator(seed: int = 0, **values) -> drdnn.DRDNNSeparator:
    model = network(seed, **values)
    with torch.no_grad():
        model.scale.uniform_(0.5, 2.0)
    return drdnn.DRDNNSeparator(model)


def test_chunked_separation_equals_whole_track_and_depends_on_alignment() -> None:
    model = separator()
    track = noise_track(1.6, seed=3)
    whole = model.separate(track)
    model.chunk_seconds = 0.45  # several chunks on the batch grid
    chunk, margin = model.chunk_plan()
    assert chunk % (256 * 35) == 0 and margin >= (50 + 4) * 256
    chunked = model.separate(track)
    for stem in whole:
        np.testing.assert_allclose(chunked[stem], whole[stem], atol=1e-5)
    # The model is not frame-local: chunks off the batch grid change the result.
    model.alignment = 256
    model.chunk_seconds = 0.3
    shifted = model.separate(track)
    assert np.abs(shifted["vocals"] - whole["vocals"]).max() > 1e-4


def test_separation_is_mono_with_masks_summing_to_the_mixture() -> None:
    model = separator(kind="drdnn")
    track = noise_track(1.0, channels=2)
    stems = model.separate(track)
    assert set(stems) == {*STEM_NAMES, "accompaniment"}
    assert all(value.shape == (1, 44100) for value in stems.values())
    mono = track.mixture.mean(axis=0, keepdims=True)
    np.testing.assert_allclose(sum(stems[s] for s in STEM_NAMES), mono, atol=1e-4)
    np.testing.assert_allclose(
        stems["accompaniment"], stems["drums"] + stems["bass"] + stems["other"], atol=1e-6
    )


def test_a_track_shorter_than_one_batch_is_separated() -> None:
    model = separator(kind="dcnn")
    track = noise_track(0.1, channels=1)  # 18 frames
    stems = model.separate(track)
    assert stems["vocals"].shape == (1, 4410) and np.isfinite(stems["vocals"]).all()


def test_probes_cover_every_stage_and_the_masks() -> None:
    model = separator()
    found = model.probes(noise_track(1.0), 0.2, 0.5)
    frames = int(0.5 * 44100) // 256 + 1
    expected = {"activations/1-input", "activations/2-convolutions", "activations/4-lstm"}
    for stem in STEM_NAMES:
        expected |= {
            f"activations/5-decoupling-{stem}",
            f"activations/6-restoration-{stem}",
            f"mask/{stem}",
        }
    assert set(found) == expected
    assert found["activations/1-input"].values.shape == (513, frames)
    assert found["activations/2-convolutions"].values.shape == (2 * 130, frames)
    assert found["activations/5-decoupling-bass"].values.shape == (16, frames)
    masks = sum(found[f"mask/{stem}"].values for stem in STEM_NAMES)
    np.testing.assert_allclose(masks, 1.0, atol=1e-5)
    assert found["mask/vocals"].hop_length == 256 and found["mask/vocals"].frontend == "drdnn"
    with pytest.raises(InputError, match="no audio"):
        model.probes(noise_track(1.0), 5.0, 1.0)
    assert "mask/vocals" not in separator(masking=False).probes(noise_track(0.5))


def test_checkpoint_round_trip_in_fp16_and_mismatched_weights(tmp_path) -> None:
    model = separator(kind="drnn")
    path = tmp_path / "drnn.pt"
    half = {key: value.half() for key, value in model.network.state_dict().items()}
    registry.save_checkpoint(path, "drnn", model.config.to_dict(), half, {"data": "test"})
    loaded = registry.load_separator(str(path), torch.device("cpu"))
    assert isinstance(loaded, drdnn.DRDNNSeparator) and loaded.config == model.config
    track = noise_track(0.5, channels=1)
    np.testing.assert_allclose(
        loaded.separate(track)["vocals"], model.separate(track)["vocals"], atol=2e-3
    )
    wrong = drdnn.DRDNNConfig(**{**TINY, "kind": "drnn", "lstm_hidden": 9}).to_dict()
    registry.save_checkpoint(path, "drnn", wrong, half, {"data": "test"})
    with pytest.raises(InputError, match="shape"):
        registry.load_separator(str(path), torch.device("cpu"))
    registry.save_checkpoint(path, "drnn", {**wrong, "kind": "mlp"}, half, {"data": "test"})
    with pytest.raises(InputError, match="do not fit"):
        registry.load_separator(str(path), torch.device("cpu"))


def test_builtin_names_are_registered() -> None:
    names = registry.builtin_names()
    assert {"drdnn", "mlp", "dcnn", "drnn"} <= set(names)
    for name in ("drdnn", "mlp", "dcnn", "drnn"):
        if (registry.RESOURCES / f"{name}.pt").is_file():
            loaded = registry.load_separator(name, torch.device("cpu"))
            assert loaded.kind == name
        else:
            with pytest.raises(InputError, match="not shipped"):
                registry.load_separator(name, torch.device("cpu"))
