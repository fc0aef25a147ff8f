"""The GUI's jobs: generators (explorer/progress.py) that the window runs in worker threads.
They read their inputs and return plain data; the window applies results on the GUI thread."""

from __future__ import annotations

from typing import Any

import numpy as np

from explorer.data.sources import open_track
from explorer.data.track import ACCOMPANIMENT, Track
from explorer.errors import InputError
from explorer.gui import spectra
from explorer.models import probes
from explorer.progress import Job, Progress
from explorer.session import PreparedMask, Separation, prepare_mask, separate_job

MIXTURE = "mixture"


def open_job(input_name: str) -> Job[tuple[str, Track, dict[str, spectra.Spectrogram]]]:
    """Load a track and compute the display spectrograms of its mixture and true stems."""
    yield Progress(0, 1, f"opening {input_name}")
    track = open_track(input_name)
    images = {}
    signals = [(MIXTURE, track.mixture)] + [
        (f"true:{stem}", samples) for stem, samples in track.stems.items()
    ]
    for index, (key, samples) in enumerate(signals):
        images[key] = spectra.compute(samples, track.sample_rate)
        yield Progress(index + 1, len(signals), f"spectrogram of {key}")
    return input_name, track, images


def separation_job(
    track: Track, model: str, device: str
) -> Job[tuple[Track, Separation, dict, PreparedMask | None]]:
    """Separate (with probes), then the display spectrograms of the estimated stems."""
    result = yield from separate_job(track, model, device)
    hop = spectra.hop_for(track.mixture.shape[-1])
    images = {}
    for index, (stem, samples) in enumerate(result.stems.items()):
        images[stem] = spectra.compute(samples, track.sample_rate, hop)
        yield Progress(index + 1, len(result.stems), f"spectrogram of {stem}")
    return track, result, images, _prepare_default_mask(track, result)


def _prepare_default_mask(track: Track, result: Separation) -> PreparedMask | None:
    """The mask the window makes editable first (vocals, else the first), encoded here so
    the GUI thread does not run that STFT; None where it cannot be (the GUI says why)."""
    stems = [
        probe.stem
        for probe in result.probes.values()
        if isinstance(probe, probes.Mask) and probe.stem in result.stems
    ]
    if not stems:
        return None
    try:
        return prepare_mask(result, track, "vocals" if "vocals" in stems else stems[0])
    except InputError:
        return None


def source_means_job(
    separator: Any, track: Track, seconds: float
) -> Job[dict[str, dict[str, np.ndarray]]]:
    """Each unit's mean activation when each true stem alone goes through the model:
    `{stem: {probe key: (units,)}}`."""
    stems = [stem for stem in track.stems if stem != ACCOMPANIMENT or len(track.stems) <= 2]
    means: dict[str, dict[str, np.ndarray]] = {}
    for index, stem in enumerate(stems):
        alone = Track(stem, track.stems[stem], track.sample_rate)
        found = separator.probes(alone, 0.0, min(seconds, alone.seconds))
        means[stem] = {
            key: np.asarray(probe.values).mean(axis=1)
            for key, probe in found.items()
            if isinstance(probe, probes.Activations)
        }
        yield Progress(index + 1, len(stems), f"activations of {stem}")
    return means


def nca_block_job(
    separator: Any,
    track: Track,
    strategies: list[str],
    frames: int,
    start_seconds: float,
    iterations: int,
) -> Job[dict]:
    """The NCA of one block (explorer.analysis.nca), as Matrix probes with their metrics."""
    from explorer.analysis import nca

    config = nca.NCAConfig(iterations=iterations)
    result = yield from nca.nca_job(separator, track, strategies, frames, start_seconds, config)
    matrices = {}
    for name, values in result["matrices"].items():
        metrics = dict(result["strategies"][name])
        matrices[name] = probes.Matrix(
            f"{name}", np.asarray(values), "output bin", "input bin", metrics
        )
    return {
        "start": result["start"],
        "frames": frames,
        "matrices": matrices,
        "model_snr_to_true_db": result.get("model_snr_to_true_db"),
    }


def training_job(parameters: dict, track_input: str | None, device: str) -> Job[dict]:
    """One training run with the generic loop (explorer.training)."""
    from pathlib import Path

    from explorer.device import resolve_device
    from explorer.errors import InputError
    from explorer.training import tasks
    from explorer.training.data import resolve_data
    from explorer.training.loop import TrainingConfig, seed_everything, train

    spec = parameters["data"]
    if spec == "current track":
        if not track_input:
            raise InputError("no track is open to train on")
        spec = track_input
    if not parameters.get("out"):
        raise InputError("choose a checkpoint path to train into")
    yield Progress(0, 1, f"preparing {spec}")
    data = resolve_data(spec)
    config = TrainingConfig(epochs=parameters["epochs"], max_steps_per_epoch=parameters["steps"])
    seed_everything(config.seed)
    model_config: dict = {"kind": parameters["kind"]}
    if parameters["kind"] in ("dae", "mss-dae", "sf") and parameters.get("frontend"):
        model_config["frontend"] = parameters["frontend"]
    task = tasks.build_task(parameters["kind"], model_config, data)
    return (yield from train(task, config, resolve_device(device), Path(parameters["out"])))


SURGERY_STEM = "selected units"


def unit_surgery_job(separator: Any, track: Track, units: tuple[int, ...]) -> Job[np.ndarray]:
    """Code-unit surgery (explorer.analysis.codelayer): the track decoded from the selected
    code units only, `(1, samples)` at the track's rate."""
    from explorer.analysis import codelayer
    from explorer.audio.io import resample

    yield Progress(0, 1, f"decoding from {len(units)} unit(s)")
    prepared = separator.prepare(track)
    assignment = codelayer.assign_units(
        (SURGERY_STEM,), separator.config.code_size, {SURGERY_STEM: [int(unit) for unit in units]}
    )
    wave = codelayer.surgery(separator.coder, prepared.mixture[0], assignment)[SURGERY_STEM][None]
    if separator.sample_rate != track.sample_rate:
        wave = resample(wave, separator.sample_rate, track.sample_rate)
    yield Progress(1, 1, "surgery done")
    return wave.astype(np.float32)
