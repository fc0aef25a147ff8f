"""Code-layer analysis: clustering recovers planted structure, unit assignments, surgery
against the plain reconstruction and silence, the measures, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.analysis import codelayer
from explorer.data.track import Track
from explorer.errors import InputError
from explorer.models import naive_ae
from explorer.models.naive_ae import NaiveAEConfig

SOURCES = ("drums", "flute", "guitar")


def planted_points(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 5.0], [5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    truth = rng.permutation(np.repeat(np.arange(3), 40))
    return centres[truth] + 0.3 * rng.standard_normal((120, 3)), truth


def same_partition(labels: np.ndarray, truth: np.ndarray) -> bool:
    pairs = {(int(a), int(b)) for a, b in zip(labels, truth, strict=True)}
    return len(pairs) == len(set(truth.tolist())) == len({a for a, _ in pairs})


def test_kmeans_recovers_planted_clusters() -> None:
    points, truth = planted_points()
    centroids, labels = codelayer.kmeans(points, 3, seed=1)
    assert same_partition(labels, truth)
    for cluster in range(3):
        np.testing.assert_allclose(centroids[cluster], points[labels == cluster].mean(axis=0))


def test_gaussian_mixture_recovers_planted_clusters_with_confident_responsibilities() -> None:
    points, truth = planted_points(2)
    means, responsibilities = codelayer.gaussian_mixture(points, 3)
    assert same_partition(responsibilities.argmax(axis=1), truth)
    np.testing.assert_allclose(responsibilities.sum(axis=1), 1.0)
    assert responsibilities.max(axis=1).min() > 0.99


def planted_maps(units: int = 30) -> codelayer.SourceMaps:
    """Units 0-9 answer drums, 10-19 flute, 20-29 guitar (plus a little of everything)."""
    rng = np.random.default_rng(0)
    values = 0.05 + 0.02 * rng.random((3, units))
    for source in range(3):
        values[source, source * 10 : source * 10 + 10] += 0.8
    return codelayer.SourceMaps(SOURCES, values, (100, 100, 100))


@pytest.mark.parametrize("method", ["kmeans", "soft", "ratio"])
def test_assignments_find_planted_unit_groups(method: str) -> None:
    maps = planted_maps()
    assignment = {
        "kmeans": lambda: codelayer.assign_kmeans(maps),
        "soft": lambda: codelayer.assign_soft(maps),
        "ratio": lambda: codelayer.assign_ratio(maps, 3.0),
    }[method]()
    for index, source in enumerate(SOURCES):
        np.testing.assert_array_equal(
            assignment.units_of(source), np.arange(index * 10, index * 10 + 10)
        )
    np.testing.assert_array_equal(assignment.labels(), np.repeat(np.arange(3), 10))


def test_map_statistics_and_purity_tell_clean_regions_from_none() -> None:
    clean = codelayer.map_statistics(planted_maps())
    assert clean["selectivity"] > 0.8 and clean["selective_units"] == 1.0
    assert clean["map_correlation"] < 0
    same = codelayer.SourceMaps(SOURCES, np.tile(np.linspace(0.1, 0.9, 30), (3, 1)), (1, 1, 1))
    blurred = codelayer.map_statistics(same)
    assert blurred["selectivity"] == pytest.approx(0.0, abs=1e-12) and blurred[
        "map_correlation"
    ] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    separable = {name: rng.normal(index * 3.0, 0.1, (50, 4)) for index, name in enumerate(SOURCES)}
    assert codelayer.code_purity(separable)["purity"] == 1.0
    mixed = {name: rng.normal(0.0, 1.0, (50, 4)) for name in SOURCES}
    assert codelayer.code_purity(mixed)["purity"] < 0.7


def test_blur_measures_time_smoothing_and_not_frequency() -> None:
    from scipy.ndimage import uniform_filter1d

    rng = np.random.default_rng(0)
    plane = rng.random((40, 200))
    smoothed = uniform_filter1d(plane, 9, axis=1)
    measures = codelayer.blur(plane, smoothed)
    assert measures["time_sharpness"] < 0.5
    assert measures["frequency_sharpness"] > 0.8 * codelayer.total_variation(
        smoothed, 0
    ) / codelayer.total_variation(plane, 0)
    assert measures["onset_sharpness"] < 0.5
    identity = codelayer.blur(plane, plane)
    assert (
        identity["time_sharpness"] == identity["frequency_sharpness"] == 1.0
        and identity["error"] == 0.0
    )


def tiny_coder() -> naive_ae.PatchCoder:
    torch.manual_seed(0)
    network = naive_ae.NaiveAutoencoder(
        NaiveAEConfig(hidden=(24, 16), patch_length=5, sources=SOURCES)
    )
    network.ceiling.fill_(30.0)
    return naive_ae.PatchCoder(network)


def tone_track(seconds: float = 1.0) -> Track:
    time = np.arange(int(seconds * 44100)) / 44100
    flute = (0.3 * np.sin(2 * np.pi * 660 * time)).astype(np.float32)
    drums = (0.1 * np.random.default_rng(1).standard_normal(len(time))).astype(np.float32)
    return Track("t", (flute + drums)[None], 44100, {"flute": flute[None], "drums": drums[None]})


def test_surgery_with_all_units_is_the_plain_reconstruction_and_with_none_silence() -> None:
    coder = tiny_coder()
    mono = tone_track().mixture[0]
    everything = codelayer.assign_units(SOURCES, 16, {"drums": range(16)})
    result = codelayer.surgery(coder, mono, everything)
    # The plain reconstruction, computed without the surgery code path.
    with torch.no_grad():
        spectrum = coder.frontend.encode(torch.from_numpy(mono)[None])[0]
        scaled = naive_ae.scale_magnitude(spectrum.abs(), coder.network.ceiling, coder.config)
        patches = naive_ae.extract_patches(scaled, coder.layout)
        plane = naive_ae.overlap_add(
            torch.sigmoid(coder.network(patches)), coder.layout, *scaled.shape
        )
        magnitude = naive_ae.unscale_magnitude(plane, coder.network.ceiling, coder.config)
        plain = coder.frontend.decode(
            (magnitude * spectrum / spectrum.abs().clamp_min(1e-12))[None], len(mono)
        )[0]
    np.testing.assert_allclose(result["drums"], plain.numpy(), atol=1e-5)
    assert np.abs(plain.numpy()).max() > 1e-3
    for source in ("flute", "guitar"):
        assert not np.any(result[source])
    masked = codelayer.surgery(coder, mono, everything, mode="mask")
    np.testing.assert_allclose(masked["drums"], mono, atol=1e-4)  # one source, mask 1


def test_soft_weights_scale_the_code() -> None:
    coder = tiny_coder()
    mono = tone_track(0.5).mixture[0]
    half = codelayer.UnitAssignment(SOURCES, np.full((3, 16), 0.5), "soft")
    full = codelayer.UnitAssignment(SOURCES, np.ones((3, 16)), "soft")
    assert not np.allclose(
        codelayer.surgery(coder, mono, half)["drums"], codelayer.surgery(coder, mono, full)["drums"]
    )


def test_maps_and_evaluation_on_a_track_with_stems() -> None:
    coder = tiny_coder()
    track = tone_track()
    maps = codelayer.maps_from_tracks(coder, [track], SOURCES)
    assert maps.sources == ("drums", "flute") and maps.values.shape == (2, 16)
    assert all(count > 0 for count in maps.counts)
    assignment = codelayer.assign_kmeans(maps)
    scores = codelayer.evaluate_surgery(coder, track, assignment)
    assert set(scores) == {"drums", "flute"}
    for row in scores.values():
        assert row["si_sdr_mixture"] is not None and np.isfinite(row["si_sdr_mixture"])
        assert set(row) >= {"si_sdr", "si_sdr_improvement", "sdr", "sir", "sar"}


def test_bad_input_is_a_clear_input_error() -> None:
    maps = planted_maps(units=30)
    with pytest.raises(InputError, match="cannot make 31 clusters from 30 code units"):
        codelayer.assign_kmeans(maps, clusters=31)
    with pytest.raises(InputError, match="cannot make 40 clusters"):
        codelayer.assign_soft(maps, clusters=40)
    with pytest.raises(InputError, match="at least 1"):
        codelayer.assign_kmeans(maps, clusters=0)
    for unit in (30, -1, True):
        with pytest.raises(InputError, match="does not exist"):
            codelayer.assign_units(SOURCES, 30, {"flute": [3, unit]})
    with pytest.raises(InputError, match="unknown source"):
        codelayer.assign_units(SOURCES, 30, {"violin": [1]})
    zero = codelayer.SourceMaps(SOURCES, np.zeros((3, 30)), (5, 5, 5))
    for function in (codelayer.assign_kmeans, codelayer.assign_soft, codelayer.assign_ratio):
        with pytest.raises(InputError, match="all zero"):
            function(zero)
    with pytest.raises(InputError, match="all zero"):
        codelayer.maps_from_codes({"flute": np.zeros((10, 30))})
    coder = tiny_coder()
    with pytest.raises(InputError, match="all zero"):
        codelayer.surgery(
            coder,
            tone_track().mixture[0],
            codelayer.assign_units(SOURCES, 16, {}),
            code=torch.zeros(200, 16),
        )
    with pytest.raises(InputError, match="covers 30 units"):
        codelayer.surgery(coder, tone_track().mixture[0], codelayer.assign_units(SOURCES, 30, {}))
