"""Code-layer analysis of the naive autoencoder (FACTS 4): per-source activation maps, unit
assignment by clustering, separation by code-unit surgery, and the measures that test the
paper's finding. Pure functions and frozen dataclasses (no Qt), for the CLI, the reproduction
and the GUI's interactive unit selection.

- **Maps.** `maps_from_tracks` runs each stem of each track (or `maps_from_signals`: isolated
  signals, e.g. many notes of one instrument) through the encoder and averages the code over
  the active patches (silence between notes left out): `SourceMaps.values (sources, units)`.
- **Assignment.** Each unit's profile is its share of activation per source (`unit_profiles`,
  rows sum to 1). `assign_kmeans` clusters the profiles (scipy's kmeans2, k-means++ init);
  `assign_soft` fits a diagonal Gaussian mixture by EM (numpy, initialised from k-means) and
  gives every unit a probability per source; clusters are labelled with sources by Hungarian
  matching of their centroids. `assign_ratio` keeps, per source, the units whose activation
  for it is `threshold` times their mean activation for the other sources; `assign_units`
  takes explicit unit lists.
- **Surgery.** `surgery` keeps each source's units (weights 1, 0 or soft), decodes, overlap-adds,
  unscales and inverts with the mixture phase (`mode="decode"`, the paper). `mode="mask"` [open]
  instead turns the per-source decodes into ratio masks on the mixture STFT.
- **Measures.** `blur` (total variation of the reconstruction against the input along time and
  along frequency, and onset-flux peaks), `map_statistics` (unit selectivity, map similarity),
  `code_purity` (k-means on the codes of solo patches against their instrument).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from explorer.audio.metrics import segment_median, si_sdr, target_bss_eval
from explorer.data.track import ACCOMPANIMENT, Track
from explorer.errors import InputError
from explorer.models.naive_ae import (
    PatchCoder,
    active_patch_mask,
    label_clusters,
    unit_profiles,
)

MODES = ("decode", "mask")
ZERO_CODE = 1e-9


# ---------------------------------------------------------------- maps
@dataclass(frozen=True)
class SourceMaps:
    """Mean code-layer activation per source: `values (sources, units)`; `counts` patches."""

    sources: tuple[str, ...]
    values: np.ndarray
    counts: tuple[int, ...]

    @property
    def units(self) -> int:
        return self.values.shape[1]

    def profiles(self) -> np.ndarray:
        """`(units, sources)`: each unit's share of its activation per source."""
        return unit_profiles(self.values)


def check_code(code: np.ndarray | torch.Tensor, what: str = "the input") -> None:
    """InputError when a code layer is all zero (nothing to map, cluster or keep)."""
    values = code.detach().cpu().numpy() if isinstance(code, torch.Tensor) else np.asarray(code)
    if values.size == 0 or float(np.max(np.abs(values))) <= ZERO_CODE:
        raise InputError(
            f"the code layer is all zero for {what}: there is nothing to map, cluster or keep"
        )


def maps_from_codes(codes: Mapping[str, np.ndarray | torch.Tensor]) -> SourceMaps:
    """`{source: code (patches, units)}` -> mean per source."""
    if not codes:
        raise InputError("no sources to map")
    values, counts = [], []
    for source, code in codes.items():
        array = code.detach().cpu().numpy() if isinstance(code, torch.Tensor) else np.asarray(code)
        if array.ndim != 2 or len(array) == 0:
            raise InputError(f"source '{source}' has no code patches to average")
        check_code(array, f"source '{source}'")
        values.append(array.mean(axis=0, dtype=np.float64))
        counts.append(len(array))
    if len({len(row) for row in values}) != 1:
        raise InputError("the sources' codes have different numbers of units")
    return SourceMaps(tuple(codes), np.stack(values), tuple(counts))


@torch.no_grad()
def active_code(coder: PatchCoder, mono: np.ndarray) -> torch.Tensor:
    """Code `(active patches, units)` of a mono signal `(samples,)` at the coder's rate."""
    samples = torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))
    patches = coder.patches(coder.scaled(coder.spectrum(samples)))
    active = active_patch_mask(patches)
    chosen = patches[active]
    if len(chosen) == 0:
        return torch.zeros(0, coder.config.code_size)
    return torch.cat(
        [coder.network.encode(chosen[i : i + 4096]) for i in range(0, len(chosen), 4096)]
    ).cpu()


def maps_from_signals(coder: PatchCoder, signals: Mapping[str, np.ndarray]) -> SourceMaps:
    """`{source: mono (samples,)}` isolated signals -> maps."""
    codes = {}
    for source, mono in signals.items():
        code = active_code(coder, mono)
        if len(code) == 0:
            raise InputError(f"the signal for '{source}' is silent: no patches to map")
        codes[source] = code
    return maps_from_codes(codes)


def stem_codes(
    coder: PatchCoder, tracks: Sequence[Track], sources: Sequence[str] | None = None
) -> dict[str, torch.Tensor]:
    """Codes of the active patches of every stem of every track, pooled per stem name
    (the derived accompaniment left out)."""
    pooled: dict[str, list[torch.Tensor]] = {}
    for track in tracks:
        prepared = track.resampled(coder.sample_rate)
        for stem, samples in prepared.stems.items():
            if stem == ACCOMPANIMENT or (sources is not None and stem not in sources):
                continue
            code = active_code(coder, samples.mean(axis=0))
            if len(code):
                pooled.setdefault(stem, []).append(code)
    if not pooled:
        raise InputError("none of the tracks has an audible stem to map")
    order = [source for source in (sources or sorted(pooled)) if source in pooled]
    return {source: torch.cat(pooled[source]) for source in order}


def maps_from_tracks(
    coder: PatchCoder, tracks: Sequence[Track], sources: Sequence[str] | None = None
) -> SourceMaps:
    """Per-source maps from the stems of tracks (e.g. single-instrument tracks)."""
    return maps_from_codes(stem_codes(coder, tracks, sources))


# ---------------------------------------------------------------- clustering
def kmeans(points: np.ndarray, clusters: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Hard k-means: `points (n, dims)` -> `(centroids (clusters, dims), labels (n,))`, through
    scipy.cluster.vq.kmeans2 with k-means++ initialisation (deterministic for a seed)."""
    from scipy.cluster.vq import kmeans2

    points = np.asarray(points, dtype=np.float64)
    _check_clusters(clusters, len(points), "points")
    centroids, labels = kmeans2(points, clusters, minit="++", seed=seed)
    return centroids, labels


def gaussian_mixture(
    points: np.ndarray, clusters: int, seed: int = 0, iterations: int = 200, floor: float = 1e-4
) -> tuple[np.ndarray, np.ndarray]:
    """Soft clustering: a diagonal Gaussian mixture fitted by EM, initialised from k-means.
    `points (n, dims)` -> `(means (clusters, dims), responsibilities (n, clusters))`; variances
    are floored at `floor` so a tight cluster cannot collapse."""
    points = np.asarray(points, dtype=np.float64)
    means, labels = kmeans(points, clusters, seed)
    variances = np.full_like(means, max(float(points.var(axis=0).mean()), floor))
    weights = np.full(clusters, 1.0 / clusters)
    for _ in range(iterations):
        log_density = -0.5 * (
            ((points[:, None, :] - means[None]) ** 2) / variances[None]
            + np.log(2 * np.pi * variances[None])
        ).sum(axis=2)
        log_joint = log_density + np.log(np.maximum(weights, 1e-300))[None]
        log_joint -= log_joint.max(axis=1, keepdims=True)
        responsibilities = np.exp(log_joint)
        responsibilities /= responsibilities.sum(axis=1, keepdims=True)
        mass = responsibilities.sum(axis=0) + 1e-12
        previous = means
        means = (responsibilities.T @ points) / mass[:, None]
        variances = np.maximum((responsibilities.T @ points**2) / mass[:, None] - means**2, floor)
        weights = mass / len(points)
        if np.max(np.abs(means - previous)) < 1e-8:
            break
    return means, responsibilities


def _check_clusters(clusters: int, available: int, what: str) -> None:
    if isinstance(clusters, bool) or not isinstance(clusters, int | np.integer) or clusters < 1:
        raise InputError(
            f"the number of clusters must be a whole number of at least 1, got {clusters}"
        )
    if clusters > available:
        raise InputError(f"cannot make {clusters} clusters from {available} {what}")


@dataclass(frozen=True)
class UnitAssignment:
    """Which code units belong to which source: `weights (sources, units)` in [0, 1] (0/1 for
    hard assignments, probabilities for the soft one)."""

    sources: tuple[str, ...]
    weights: np.ndarray
    method: str
    details: dict = field(default_factory=dict)

    def units_of(self, source: str) -> np.ndarray:
        """Indices of the units kept (weight above 0.5) for `source`."""
        if source not in self.sources:
            raise InputError(f"unknown source '{source}' (sources: {', '.join(self.sources)})")
        return np.flatnonzero(self.weights[self.sources.index(source)] > 0.5)

    def labels(self) -> np.ndarray:
        """`(units,)`: the source index with the largest weight, -1 for units kept by none."""
        labels = np.argmax(self.weights, axis=0)
        labels[self.weights.max(axis=0) <= 0] = -1
        return labels


def _clusterable(maps: SourceMaps) -> np.ndarray:
    check_code(maps.values, "every source")
    return maps.profiles()


def assign_kmeans(maps: SourceMaps, clusters: int | None = None, seed: int = 0) -> UnitAssignment:
    """Hard assignment: k-means on unit profiles, `clusters` (default: one per source)
    labelled with sources (one to one by Hungarian matching, extra clusters by their largest
    share)."""
    profiles = _clusterable(maps)
    clusters = len(maps.sources) if clusters is None else clusters
    _check_clusters(clusters, maps.units, "code units")
    centroids, labels = kmeans(profiles, clusters, seed)
    sources = label_clusters(centroids)[labels]
    weights = (sources[None, :] == np.arange(len(maps.sources))[:, None]).astype(np.float64)
    return UnitAssignment(
        maps.sources,
        weights,
        "kmeans",
        {"clusters": clusters, "cluster_labels": labels, "centroids": centroids},
    )


def assign_soft(maps: SourceMaps, clusters: int | None = None, seed: int = 0) -> UnitAssignment:
    """Probabilistic assignment: Gaussian-mixture responsibilities of each unit, summed over
    the clusters labelled with each source. Columns sum to 1."""
    profiles = _clusterable(maps)
    clusters = len(maps.sources) if clusters is None else clusters
    _check_clusters(clusters, maps.units, "code units")
    means, responsibilities = gaussian_mixture(profiles, clusters, seed)
    cluster_sources = label_clusters(means)
    weights = np.zeros((len(maps.sources), maps.units))
    for cluster, source in enumerate(cluster_sources):
        weights[source] += responsibilities[:, cluster]
    return UnitAssignment(maps.sources, weights, "soft", {"clusters": clusters, "means": means})


def assign_ratio(maps: SourceMaps, threshold: float = 1.5) -> UnitAssignment:
    """Keep for source s the units whose mean activation for s is at least `threshold` times
    their mean activation over the other sources (a unit may belong to several or none)."""
    check_code(maps.values, "every source")
    if not threshold > 0:
        raise InputError(f"the activation-ratio threshold must be positive, got {threshold}")
    values = maps.values
    if len(values) < 2:
        return UnitAssignment(maps.sources, np.ones_like(values), "ratio", {"threshold": threshold})
    others = (values.sum(axis=0, keepdims=True) - values) / (len(values) - 1)
    weights = (values >= threshold * np.maximum(others, ZERO_CODE)).astype(np.float64)
    return UnitAssignment(maps.sources, weights, "ratio", {"threshold": threshold})


def assign_units(
    sources: Sequence[str], units: int, chosen: Mapping[str, Sequence[int]]
) -> UnitAssignment:
    """Explicit unit lists `{source: [unit, ...]}` (sources not named keep no unit)."""
    sources = tuple(sources)
    weights = np.zeros((len(sources), units))
    for source, indices in chosen.items():
        if source not in sources:
            raise InputError(f"unknown source '{source}' (sources: {', '.join(sources)})")
        for unit in indices:
            if (
                isinstance(unit, bool)
                or not isinstance(unit, int | np.integer)
                or not 0 <= unit < units
            ):
                raise InputError(
                    f"unit {unit} does not exist: the code layer has {units} units (0 to {units - 1})"
                )
            weights[sources.index(source), int(unit)] = 1.0
    return UnitAssignment(sources, weights, "explicit")


def stored_assignment(coder: PatchCoder) -> UnitAssignment | None:
    """The separator's assignment saved in the checkpoint, if any."""
    labels = coder.network.unit_sources.cpu().numpy()
    if np.all(labels < 0):
        return None
    sources = tuple(coder.config.sources)
    weights = (labels[None, :] == np.arange(len(sources))[:, None]).astype(np.float64)
    return UnitAssignment(sources, weights, "stored")


# ---------------------------------------------------------------- surgery
@torch.no_grad()
def surgery(
    coder: PatchCoder,
    mono: np.ndarray,
    assignment: UnitAssignment,
    mode: str = "decode",
    code: torch.Tensor | None = None,
    wanted: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Separate a mono mixture `(samples,)` at the coder's rate: `{source: (samples,)}`.

    `decode`: each source keeps its units (weights), the rest are zeroed; decode, overlap-add,
    unscale and invert with the mixture phase; a source with no units is silence. `mask`:
    ratio masks `M_s / sum M` of those decoded magnitudes, applied to the mixture STFT.
    `wanted` limits the output (and, in decode mode, the work) to some sources."""
    if mode not in MODES:
        raise InputError(f"surgery mode must be {' or '.join(MODES)}, got '{mode}'")
    weights = torch.as_tensor(np.asarray(assignment.weights), dtype=torch.float32)
    if weights.shape[1] != coder.config.code_size:
        raise InputError(
            f"the assignment covers {weights.shape[1]} units, the model has {coder.config.code_size}"
        )
    samples = torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))
    spectrum = coder.spectrum(samples)
    if code is None:
        code = coder.code(coder.scaled(spectrum))
    check_code(code, "this mixture")
    names = list(assignment.sources)
    if wanted is not None and mode == "decode":
        unknown = [source for source in wanted if source not in names]
        if unknown:
            raise InputError(f"unknown source '{unknown[0]}' (sources: {', '.join(names)})")
        weights = weights[[names.index(source) for source in wanted]]
        names = list(wanted)
    planes = coder.surgery(spectrum, weights, code)
    silent = ~torch.any(weights != 0, dim=1).to(planes.device)
    if mode == "decode":
        waves = coder.invert(planes, spectrum, len(samples), silent)
    else:
        from explorer.models.naive_ae import unscale_magnitude

        magnitudes = unscale_magnitude(planes, coder.network.ceiling, coder.config)
        magnitudes = magnitudes * (~silent).to(magnitudes.dtype)[:, None, None]
        masks = magnitudes / magnitudes.sum(dim=0, keepdim=True).clamp_min(1e-12)
        waves = coder.frontend.decode(masks * spectrum[None], len(samples))
    return {
        source: waves[index].cpu().numpy()
        for index, source in enumerate(names)
        if wanted is None or source in wanted
    }


def evaluate_surgery(
    coder: PatchCoder, track: Track, assignment: UnitAssignment, mode: str = "decode"
) -> dict[str, dict[str, float | None]]:
    """Score surgery on a track with stems, for every assigned source the track has:
    `{source: {"si_sdr", "si_sdr_mixture", "si_sdr_improvement", "sdr", "sir", "sar"}}` (dB;
    SI-SDR is the median over 1 s non-silent segments, BSS Eval as `explorer evaluate`)."""
    prepared = track.resampled(coder.sample_rate)
    mono = prepared.mixture.mean(axis=0)
    present = [source for source in assignment.sources if source in prepared.stems]
    if not present:
        raise InputError(
            f"track '{track.name}' has none of the sources {', '.join(assignment.sources)}"
        )
    estimates = surgery(coder, mono, assignment, mode, wanted=present)
    rate = coder.sample_rate
    scores = {}
    for source in present:
        reference = prepared.stems[source].mean(axis=0)
        estimate = estimates[source]
        value = segment_median(si_sdr, reference, estimate, rate)
        baseline = segment_median(si_sdr, reference, mono, rate)
        row = {
            "si_sdr": value,
            "si_sdr_mixture": baseline,
            "si_sdr_improvement": None if value is None or baseline is None else value - baseline,
        }
        row.update(target_bss_eval(reference[None], estimate[None], mono[None], rate))
        scores[source] = row
    return scores


# ---------------------------------------------------------------- measures
def total_variation(plane: np.ndarray, axis: int) -> float:
    """Mean absolute difference of neighbours along `axis` of `(bins, frames)`."""
    return float(np.mean(np.abs(np.diff(np.asarray(plane, dtype=np.float64), axis=axis))))


def blur(input_plane: np.ndarray, reconstruction: np.ndarray) -> dict[str, float]:
    """How much sharper the input is than its reconstruction, both `(bins, frames)` scaled:

    - `time_sharpness`: total variation along time, reconstruction / input (1 = as sharp,
      below 1 = blurred in time); `frequency_sharpness` likewise along frequency;
    - `onset_sharpness`: the 95th percentile of the positive spectral flux (onsets),
      reconstruction / input;
    - `error`: mean absolute error."""
    input_plane = np.asarray(input_plane, dtype=np.float64)
    reconstruction = np.asarray(reconstruction, dtype=np.float64)

    def ratio(numerator: float, denominator: float) -> float:
        return numerator / denominator if denominator > 0 else float("nan")

    def onset(plane: np.ndarray) -> float:
        flux = np.maximum(np.diff(plane, axis=1), 0.0).sum(axis=0)
        return float(np.percentile(flux, 95)) if len(flux) else 0.0

    return {
        "time_sharpness": ratio(
            total_variation(reconstruction, 1), total_variation(input_plane, 1)
        ),
        "frequency_sharpness": ratio(
            total_variation(reconstruction, 0), total_variation(input_plane, 0)
        ),
        "onset_sharpness": ratio(onset(reconstruction), onset(input_plane)),
        "error": float(np.mean(np.abs(reconstruction - input_plane))),
    }


def map_statistics(maps: SourceMaps) -> dict[str, float]:
    """Are there per-source code regions?

    - `selectivity`: mean over units of `(largest share - 1/S) / (1 - 1/S)`: 0 when every unit
      answers all sources alike, 1 when each answers one source only;
    - `selective_units`: the fraction of units whose largest share exceeds 1/2;
    - `map_correlation`: the mean Pearson correlation between the sources' maps (1 = the maps
      look the same)."""
    profiles = maps.profiles()
    count = len(maps.sources)
    largest = profiles.max(axis=1)
    selectivity = (
        (largest - 1.0 / count) / (1.0 - 1.0 / count) if count > 1 else np.ones_like(largest)
    )
    correlation = np.corrcoef(maps.values) if count > 1 else np.ones((1, 1))
    upper = correlation[np.triu_indices(count, 1)] if count > 1 else np.ones(1)
    return {
        "selectivity": float(np.mean(selectivity)),
        "selective_units": float(np.mean(largest > 0.5)),
        "map_correlation": float(np.nanmean(upper)),
    }


def code_purity(
    codes: Mapping[str, np.ndarray | torch.Tensor], per_source: int = 300, seed: int = 0
) -> dict[str, float]:
    """k-means (one cluster per source) on the codes of solo patches: `purity` is the fraction
    of patches in their cluster's majority source; `chance` the purity of one cluster."""
    rng = np.random.default_rng(seed)
    points, truth = [], []
    for index, code in enumerate(codes.values()):
        array = code.detach().cpu().numpy() if isinstance(code, torch.Tensor) else np.asarray(code)
        chosen = rng.choice(len(array), size=min(per_source, len(array)), replace=False)
        points.append(array[chosen])
        truth.append(np.full(len(chosen), index))
    points_array, truth_array = np.concatenate(points), np.concatenate(truth)
    _, labels = kmeans(points_array, len(codes), seed)
    majority = sum(
        np.bincount(truth_array[labels == cluster]).max() for cluster in np.unique(labels)
    )
    return {
        "purity": float(majority / len(truth_array)),
        "chance": float(np.bincount(truth_array).max() / len(truth_array)),
    }
