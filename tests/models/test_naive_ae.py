"""The naive stacked autoencoder (FACTS 4): CD-k against hand-computed closed forms, RBM
learning on structured data, patch tiling round trips, scaling, unrolling, chunked separation,
probes, checkpoints and a tiny end-to-end training run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.data.track import Track
from explorer.errors import InputError
from explorer.models import naive_ae, registry
from explorer.models.naive_ae import RBM, NaiveAEConfig, PatchLayout

TINY = {"hidden": (24, 16), "patch_length": 5}


def sigmoid(value: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-value))


def tiny_rbm(seed: int = 0) -> RBM:
    rng = np.random.default_rng(seed)
    return RBM(
        torch.tensor(rng.normal(0, 0.5, (4, 3))),
        torch.tensor(rng.normal(0, 0.5, 4)),
        torch.tensor(rng.normal(0, 0.5, 3)),
    )


def test_cd1_matches_the_closed_form_with_fixed_draws() -> None:
    rbm = tiny_rbm()
    visible = torch.tensor([[1.0, 0.0, 0.5, 0.2], [0.0, 1.0, 1.0, 0.9]], dtype=torch.float64)
    uniforms = torch.tensor([[[0.3, 0.9, 0.5], [0.6, 0.1, 0.4]]], dtype=torch.float64)
    w, b, c = (t.numpy() for t in (rbm.weight, rbm.visible_bias, rbm.hidden_bias))
    v0 = visible.numpy()
    h0_probability = sigmoid(v0 @ w + c)
    h0 = (uniforms[0].numpy() < h0_probability).astype(float)
    v1 = sigmoid(h0 @ w.T + b)
    h1_probability = sigmoid(v1 @ w + c)
    expected = (
        (v0.T @ h0_probability - v1.T @ h1_probability) / 2,
        (v0 - v1).mean(axis=0),
        (h0_probability - h1_probability).mean(axis=0),
    )
    for got, want in zip(naive_ae.cd_gradients(rbm, visible, uniforms), expected, strict=True):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_cd2_runs_a_second_gibbs_step() -> None:
    # Draws of 0 turn every hidden unit on, draws of 1 turn them all off: the chain is then
    # h0 = 1, v1 = s(1 W' + b), h1 = 0, v2 = s(b).
    rbm = tiny_rbm(1)
    visible = torch.tensor([[0.2, 0.4, 0.6, 0.8]], dtype=torch.float64)
    uniforms = torch.stack([torch.zeros(1, 3), torch.ones(1, 3)]).double()
    w, b, c = (t.numpy() for t in (rbm.weight, rbm.visible_bias, rbm.hidden_bias))
    v2 = sigmoid(b)[None]
    h2 = sigmoid(v2 @ w + c)
    weight, visible_bias, hidden_bias = naive_ae.cd_gradients(rbm, visible, uniforms)
    v0 = visible.numpy()
    np.testing.assert_allclose(weight.numpy(), v0.T @ sigmoid(v0 @ w + c) - v2.T @ h2, rtol=1e-12)
    np.testing.assert_allclose(visible_bias.numpy(), (v0 - v2)[0], rtol=1e-12)
    np.testing.assert_allclose(hidden_bias.numpy(), (sigmoid(v0 @ w + c) - h2)[0], rtol=1e-12)


def test_rbm_reconstruction_error_decreases_on_structured_data() -> None:
    # Four bar patterns on a 6x6 grid with 2 % flipped pixels.
    generator = torch.Generator().manual_seed(0)
    bars = torch.zeros(4, 6, 6)
    bars[0, :, 1], bars[1, :, 4], bars[2, 2, :], bars[3, 5, :] = 1, 1, 1, 1
    choice = torch.randint(0, 4, (600,), generator=generator)
    data = bars[choice].reshape(600, 36)
    flips = torch.rand(data.shape, generator=generator) < 0.02
    data = torch.where(flips, 1 - data, data)
    rbm = RBM.initial(36, 8, generator, visible_mean=data.mean(dim=0))
    trainer = naive_ae.RBMTrainer(rbm, 0.1, 1e-4, 1, generator)
    before = rbm.reconstruction_error(data)
    for epoch in range(15):
        for start in range(0, 600, 20):
            trainer.step(data[start : start + 20], 0.5 if epoch == 0 else 0.9)
    after = rbm.reconstruction_error(data)
    assert after < 0.3 * before
    assert after < 0.04


@pytest.mark.parametrize(
    "layout,bins,frames",
    [
        (PatchLayout(40, 15, 40, 1), 40, 37),
        (PatchLayout(40, 5, 40, 2), 40, 23),
        (PatchLayout(7, 12, 3, 5), 40, 61),
        (PatchLayout(7, 12, 7, 12), 41, 10),
    ],
)
def test_patch_extraction_and_overlap_add_round_trip(
    layout: PatchLayout, bins: int, frames: int
) -> None:
    plane = torch.rand(
        bins, frames, generator=torch.Generator().manual_seed(frames), dtype=torch.float64
    )
    patches = naive_ae.extract_patches(plane, layout)
    bands, positions = naive_ae.patch_grid(bins, frames, layout)
    assert patches.shape == (bands * positions, layout.size)
    torch.testing.assert_close(
        naive_ae.overlap_add(patches, layout, bins, frames), plane, rtol=0, atol=1e-12
    )


def test_patches_are_bins_major_slices_of_the_plane() -> None:
    plane = torch.arange(6 * 9, dtype=torch.float32).reshape(6, 9)
    layout = PatchLayout(6, 3, 6, 1)
    patches = naive_ae.extract_patches(plane, layout)
    # Padding of 2 frames before: patch 2 covers frames 0..2.
    torch.testing.assert_close(patches[2].reshape(6, 3), plane[:, 0:3])
    torch.testing.assert_close(patches[5].reshape(6, 3), plane[:, 3:6])


@pytest.mark.parametrize("scaling", ["log", "max"])
def test_scaling_maps_onto_unit_interval_and_inverts(scaling: str) -> None:
    config = NaiveAEConfig(scaling=scaling)
    ceiling = torch.tensor(50.0, dtype=torch.float64)
    magnitude = torch.tensor([0.0, 1e-4, 0.05, 3.0, 50.0], dtype=torch.float64)
    scaled = naive_ae.scale_magnitude(magnitude, ceiling, config)
    assert float(scaled.min()) == 0.0 and float(scaled.max()) == pytest.approx(1.0)
    assert torch.all(torch.diff(scaled) > 0)
    torch.testing.assert_close(naive_ae.unscale_magnitude(scaled, ceiling, config), magnitude)
    assert float(naive_ae.scale_magnitude(torch.tensor(80.0), torch.tensor(50.0), config)) == 1.0


def test_config_defaults_follow_facts_and_bad_values_are_input_errors() -> None:
    config = NaiveAEConfig()
    assert config.bins == 533 and config.layout() == PatchLayout(533, 15, 533, 1)
    assert config.hidden == (500, 500, 500, 500) and config.input_size == 533 * 15
    transposed = NaiveAEConfig(orientation="transposed")
    assert transposed.layout() == PatchLayout(15, 64, 1, 16)
    assert NaiveAEConfig.from_dict(config.to_dict()) == config
    for bad in (
        {"orientation": "diagonal"},
        {"patch_length": 0},
        {"hidden": []},
        {"scaling": "sqrt"},
        {"patch_step": 20},
        {"colour": 1},
        {"sources": ["a", "a"]},
    ):
        with pytest.raises(InputError):
            NaiveAEConfig.from_dict(bad)


def test_unrolled_network_computes_the_rbm_chain() -> None:
    config = NaiveAEConfig(**TINY)
    generator = torch.Generator().manual_seed(3)
    sizes = [config.input_size, *config.hidden]
    rbms = [RBM.initial(sizes[i], sizes[i + 1], generator) for i in range(2)]
    for rbm in rbms:
        rbm.weight.normal_(0, 0.3, generator=generator)
        rbm.visible_bias.normal_(0, 0.3, generator=generator)
        rbm.hidden_bias.normal_(0, 0.3, generator=generator)
    patches = torch.rand(5, config.input_size, generator=generator)
    for tied in (False, True):
        network = naive_ae.NaiveAutoencoder(NaiveAEConfig(**TINY, tied=tied))
        network.load_rbms(rbms)
        with torch.no_grad():
            code = network.encode(patches)
            torch.testing.assert_close(
                code, rbms[1].hidden_probabilities(rbms[0].hidden_probabilities(patches))
            )
            expected = rbms[0].visible_probabilities(rbms[1].visible_probabilities(code))
            torch.testing.assert_close(network.decode(code), expected)
            torch.testing.assert_close(torch.sigmoid(network(patches)), expected)


def noisy_track(seconds: float = 2.0) -> Track:
    rng = np.random.default_rng(0)
    time = np.arange(int(seconds * 44100)) / 44100
    tone = (0.3 * np.sin(2 * np.pi * 440 * time) * (np.sin(2 * np.pi * 2 * time) > 0)).astype(
        np.float32
    )
    noise = (0.05 * rng.standard_normal(len(time))).astype(np.float32)
    return Track("tone", (tone + noise)[None], 44100, {"flute": tone[None], "drums": noise[None]})


def random_separator(**overrides) -> naive_ae.NaiveAESeparator:
    torch.manual_seed(0)
    network = naive_ae.NaiveAutoencoder(NaiveAEConfig(**dict(TINY, **overrides)))
    network.ceiling.fill_(30.0)
    network.unit_sources.copy_(torch.arange(network.config.code_size) % 5)
    return naive_ae.NaiveAESeparator(network)


@pytest.mark.parametrize(
    "overrides", [{}, {"orientation": "transposed", "context": 16, "context_step": 8}]
)
def test_chunked_separation_equals_full_length(overrides: dict) -> None:
    separator = random_separator(**overrides)
    track = noisy_track(2.0)
    separator.chunk_seconds = 100.0
    full = separator.separate(track)
    separator.chunk_seconds = 0.5
    chunked = separator.separate(track)
    assert set(full) == set(NaiveAEConfig().sources)
    for stem in full:
        assert full[stem].shape == (1, track.mixture.shape[-1])
        np.testing.assert_allclose(chunked[stem], full[stem], atol=2e-5)
        assert np.any(full[stem] != 0)


def test_probes_align_code_with_frames_and_shape_kernels_as_patches() -> None:
    separator = random_separator()
    found = separator.probes(noisy_track(), 0.5, 1.0)
    frames = separator.frontend.frames_for(44100)
    assert found["activations/code"].values.shape == (16, frames)
    assert found["activations/input"].values.shape == (533, frames)
    assert found["activations/reconstruction"].values.shape == (533, frames)
    kernels = found["kernels/first-layer"]
    assert kernels.values.shape == (24, 533 * 5) and kernels.extra["image_shape"] == [533, 5]
    unit = next(key for key in found if key.startswith("weights/unit-"))
    index = int(unit.rsplit("-", 1)[1])
    np.testing.assert_array_equal(found[unit].values, kernels.values[index].reshape(533, 5))
    with pytest.raises(InputError):
        separator.probes(noisy_track(), 10.0, 1.0)


def test_checkpoint_round_trip_in_fp16_and_bad_weights(tmp_path) -> None:
    separator = random_separator()
    state = {
        key: value.half() if value.is_floating_point() else value
        for key, value in separator.network.state_dict().items()
    }
    path = registry.save_checkpoint(
        tmp_path / "n.pt", "naive-ae", separator.config.to_dict(), state, {"data": "x"}
    )
    loaded = registry.load_separator(str(path), torch.device("cpu"))
    assert isinstance(loaded, naive_ae.NaiveAESeparator)
    torch.testing.assert_close(loaded.network.unit_sources, separator.network.unit_sources)
    weight = loaded.network.encoder[0].weight
    assert weight.dtype == torch.float32
    torch.testing.assert_close(weight, separator.network.encoder[0].weight, atol=1e-3, rtol=1e-3)
    state.pop("encoder.0.bias")
    registry.save_checkpoint(tmp_path / "bad.pt", "naive-ae", separator.config.to_dict(), state, {})
    with pytest.raises(InputError, match="missing: encoder.0.bias"):
        registry.load_separator(str(tmp_path / "bad.pt"), torch.device("cpu"))
    other = dict(separator.config.to_dict(), patch_length=7)
    registry.save_checkpoint(
        tmp_path / "shape.pt", "naive-ae", other, separator.network.state_dict(), {}
    )
    with pytest.raises(InputError, match="shape"):
        registry.load_separator(str(tmp_path / "shape.pt"), torch.device("cpu"))


def test_uncalibrated_separator_assigns_units_on_synthetic_notes() -> None:
    pytest.importorskip("explorer.data.synth")
    torch.manual_seed(0)
    network = naive_ae.NaiveAutoencoder(NaiveAEConfig(**TINY))
    network.ceiling.fill_(30.0)
    separator = naive_ae.NaiveAESeparator(network)
    weights = separator.assignment_weights()
    assert weights.shape == (5, 16)
    torch.testing.assert_close(weights.sum(dim=0), torch.ones(16))
    assert int(network.unit_sources.min()) >= 0


def test_training_pretrains_fine_tunes_and_loads_as_a_separator(tmp_path) -> None:
    pytest.importorskip("explorer.data.synth")
    from explorer.progress import run_job
    from explorer.training import tasks
    from explorer.training.loop import TrainingConfig, seed_everything, train
    from explorer.training.naive_ae_task import instrument_data

    seed_everything(0)
    config = dict(TINY, kind="naive-ae", rbm_epochs=2, rbm_batch_size=16, training_stride=2)
    task = tasks.build_task("naive-ae", config, instrument_data(2, 1.0))
    reports = []
    result = run_job(
        train(
            task,
            TrainingConfig(epochs=2, batch_size=16, learning_rate=1e-3),
            torch.device("cpu"),
            tmp_path / "n.pt",
        ),
        reports.append,
    )
    phases = [r.payload.get("phase") for r in reports if isinstance(r.payload, dict)]
    assert phases.count("pretraining") >= 4  # two RBMs, two epochs each
    assert np.isfinite(result["final_loss"]) and result["final_loss"] < 0.7
    assert float(task.network.ceiling) > 0
    separator = registry.load_separator(str(tmp_path / "n.pt"), torch.device("cpu"))
    assert set(separator.separate(noisy_track(0.5))) == set(NaiveAEConfig().sources)


def test_cli_trains_and_separates_with_a_naive_ae_checkpoint(tmp_path, capsys) -> None:
    pytest.importorskip("explorer.data.synth")
    from explorer.audio.io import write_audio
    from explorer.cli import main

    checkpoint = tmp_path / "tiny.pt"
    arguments = [
        "train",
        "--model",
        "naive-ae",
        "--data",
        "instruments:2x1",
        "--epochs",
        "1",
        "--out",
        str(checkpoint),
        "--set",
        "hidden=[16,8]",
        "--set",
        "patch_length=5",
        "--set",
        "rbm_epochs=1",
        "--device",
        "cpu",
    ]
    assert main(arguments) == 0
    audio = write_audio(tmp_path / "song.wav", noisy_track(0.5).mixture, 44100)
    assert (
        main(
            [
                "separate",
                str(audio),
                "--model",
                str(checkpoint),
                "--out",
                str(tmp_path / "out"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert sorted(path.stem for path in (tmp_path / "out" / "song").iterdir()) == sorted(
        NaiveAEConfig().sources
    )
    capsys.readouterr()
    assert main(arguments[:-2] + ["--set", "orientation=diagonal"]) == 2
    assert "orientation must be time or transposed" in capsys.readouterr().err
