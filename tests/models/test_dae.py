"""DAE, MSS-DAE and SF: architecture against FACTS 1, initialisation statistics, separation in
chunks, probes, and checkpoint validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from explorer.data.track import Track
from explorer.errors import InputError
from explorer.models import dae, registry

QUICK = "taslp2020-quick"


def network(kind: str, seed: int = 0) -> dae.MappingNetwork:
    torch.manual_seed(seed)
    return dae.MappingNetwork(dae.DAEConfig(kind=kind, frontend=QUICK))


def random_track(seconds: float = 1.5, seed: int = 0) -> Track:
    rng = np.random.default_rng(seed)
    vocals = (0.1 * rng.standard_normal((2, int(seconds * 44100)))).astype(np.float32)
    drums = (0.1 * rng.standard_normal((2, int(seconds * 44100)))).astype(np.float32)
    return Track("noise", vocals + drums, 44100, {"vocals": vocals, "drums": drums})


@pytest.mark.parametrize("kind,layers", [("dae", 2), ("mss-dae", 4), ("sf", 2)])
def test_layers_are_square_with_hidden_equal_to_bins(kind: str, layers: int) -> None:
    model = network(kind)
    assert len(model.layers) == layers
    for layer in model.layers:
        assert tuple(layer.weight.shape) == (513, 513)


def test_forward_matches_the_formulas_of_facts() -> None:
    x = torch.rand(7, 513)
    model = network("dae")
    (we, be), (wd, bd) = model.weights()
    with torch.no_grad():
        be.uniform_(-0.1, 0.1), bd.uniform_(-0.1, 0.1)
        expected = torch.relu(torch.relu(x @ we.T + be) @ wd.T + bd)
        torch.testing.assert_close(model(x), expected)
    model = network("mss-dae")
    with torch.no_grad():
        value = x
        for weight, bias in model.weights():
            value = torch.relu(value @ weight.T + bias)
        torch.testing.assert_close(model(x), value)
    model = network("sf")
    with torch.no_grad():
        (we, be), (wd, bd) = model.weights()
        mask = torch.relu(torch.relu(x @ we.T + be) @ wd.T + bd)
        torch.testing.assert_close(model(x), x * mask)
        torch.testing.assert_close(model.hidden_states(x)[-1], mask)


@pytest.mark.parametrize("kind", dae.KINDS)
def test_xavier_normal_weights_and_zero_biases(kind: str) -> None:
    model = network(kind, seed=3)
    for weight, bias in model.weights():
        expected_std = math.sqrt(2.0 / (weight.shape[0] + weight.shape[1]))
        values = weight.detach().double()
        assert abs(values.mean().item()) < 0.05 * expected_std
        assert values.std().item() == pytest.approx(expected_std, rel=0.02)
        # Normal, not uniform: the kurtosis of a Gaussian is 3 (uniform: 1.8).
        kurtosis = ((values - values.mean()) ** 4).mean() / values.var() ** 2
        assert kurtosis.item() == pytest.approx(3.0, abs=0.1)
        assert torch.count_nonzero(bias) == 0


def separator(kind: str = "sf", seed: int = 0) -> dae.DAESeparator:
    model = network(kind, seed)
    with torch.no_grad():
        for _weight, bias in model.weights():
            bias.uniform_(0.0, 0.2)  # trained models have non-zero biases
        model.normalizer.scale.uniform_(0.5, 2.0)
    return dae.DAESeparator(model, kind)


def test_chunked_separation_equals_unchunked() -> None:
    track = random_track(3.0)
    whole = separator()
    whole.chunk_seconds = 60.0
    reference = whole.separate(track)
    chunked = separator()
    chunked.chunk_seconds = 0.5
    assert chunked.chunk_plan()[0] < track.mixture.shape[-1] // 4
    result = chunked.separate(track)
    for stem in ("vocals", "accompaniment"):
        np.testing.assert_allclose(result[stem], reference[stem], atol=2e-6)


def test_accompaniment_is_mixture_minus_vocals_and_mono() -> None:
    track = random_track()
    result = separator("dae").separate(track)
    mono = track.mixture.mean(axis=0, keepdims=True)
    assert result["vocals"].shape == (1, track.mixture.shape[-1])
    np.testing.assert_allclose(result["vocals"] + result["accompaniment"], mono, atol=1e-6)


def test_all_ones_mask_resynthesises_the_mixture() -> None:
    """An SF whose mask is 1 everywhere returns the mixture: the iSTFT with the mixture phase."""
    model = network("sf")
    with torch.no_grad():
        for weight, bias in model.weights():
            weight.zero_()
            bias.fill_(1.0)
    track = random_track(1.0)
    result = dae.DAESeparator(model).separate(track)
    np.testing.assert_allclose(result["vocals"][0], track.mixture.mean(axis=0), atol=1e-5)


def test_probes_cover_every_layer_the_mask_and_the_weights() -> None:
    track = random_track(2.0)
    found = separator("mss-dae").probes(track, 0.5, 1.0)
    activations = [key for key in found if key.startswith("activations/")]
    weights = [key for key in found if key.startswith("weights/")]
    assert len(activations) == 4 and len(weights) == 4
    frames = found[activations[0]].values.shape[1]
    assert found[activations[0]].values.shape == (513, frames) and 170 <= frames <= 175
    assert "mask/vocals" not in found
    sf_probes = separator("sf").probes(track, 0.0, 1.0)
    mask = sf_probes["mask/vocals"]
    np.testing.assert_array_equal(mask.values, sf_probes["activations/2-decoder"].values)
    composition = sf_probes["matrix/linear-composition"].values
    w1, w2 = sf_probes["weights/1-encoder"].values, sf_probes["weights/2-decoder"].values
    np.testing.assert_allclose(composition, w2 @ w1, rtol=1e-4, atol=1e-6)


def save(path, kind: str = "sf", frontend: str = QUICK) -> None:
    config = dae.DAEConfig(kind=kind, frontend=frontend)
    model = dae.MappingNetwork(config)
    registry.save_checkpoint(path, kind, config.to_dict(), model.state_dict(), {"data": "test"})


def test_checkpoint_round_trip_and_fp16_weights(tmp_path) -> None:
    path = tmp_path / "model.pt"
    save(path, "dae")
    loaded = registry.load_separator(str(path), torch.device("cpu"))
    assert isinstance(loaded, dae.DAESeparator) and loaded.kind == "dae"
    payload = registry.load_checkpoint(path)
    half = {key: value.half() for key, value in payload["state_dict"].items()}
    network_half = dae.build_network(dae.DAEConfig.from_dict(payload["config"]), half)
    assert network_half.layers[0].weight.dtype == torch.float32
    torch.testing.assert_close(
        network_half.layers[0].weight,
        payload["state_dict"]["layers.0.weight"],
        atol=1e-3,
        rtol=1e-3,
    )


def test_checkpoint_of_another_front_end_size_is_an_input_error(tmp_path) -> None:
    path = tmp_path / "model.pt"
    save(path, "sf")
    payload = registry.load_checkpoint(path)
    wrong = dict(payload["config"], frontend="taslp2020-small")
    with pytest.raises(InputError, match="1025 bins"):
        dae.load(wrong, payload["state_dict"], "x", torch.device("cpu"))
    with pytest.raises(InputError, match="expected dae"):
        registry.load_checkpoint(path, "dae")


def test_missing_demo_weights_are_an_input_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(registry, "RESOURCES", tmp_path)
    with pytest.raises(InputError, match="not shipped"):
        dae.builtin("mss-dae", torch.device("cpu"))


def test_bad_config_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown DAE kind"):
        dae.DAEConfig(kind="vae")
    with pytest.raises(InputError, match="unknown front-end"):
        dae.DAEConfig(frontend="nope")
    with pytest.raises(InputError, match="unknown DAE config keys"):
        dae.DAEConfig.from_dict({"kind": "dae", "depth": 3})


@pytest.mark.parametrize("name", dae.KINDS)
def test_shipped_demo_weights_load_and_separate(name: str) -> None:
    if not (registry.RESOURCES / f"{name}.pt").is_file():
        pytest.skip(f"resources/{name}.pt is not shipped in this checkout")
    separator = registry.load_separator(name, torch.device("cpu"))
    assert isinstance(separator, dae.DAESeparator) and separator.kind == name
    result = separator.separate(random_track(0.5))
    assert np.all(np.isfinite(result["vocals"])) and np.any(result["vocals"])
