"""Long work as generators (DESIGN.md, idea 3), shared by the CLI and the GUI.

Each job yields `Progress` and returns a plain-data result (the `--json` shapes of DESIGN.md).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from explorer.audio.io import write_audio
from explorer.audio.metrics import segment_median, si_sdr, target_bss_eval
from explorer.data.track import Track
from explorer.device import describe, resolve_device
from explorer.errors import InputError
from explorer.models.base import Separator
from explorer.models.registry import load_separator
from explorer.progress import Job, Progress

OUTPUT_FORMATS = ("wav", "flac")


def check_writable(folder: Path) -> None:
    """Fail before any work if `folder` cannot be created or written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(
            f"cannot create output folder {folder}: {error.strerror or error}"
        ) from None
    probe = folder / ".explorer-write-test"
    try:
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise InputError(
            f"output folder is not writable: {folder} ({error.strerror or error})"
        ) from None


def separate_job(
    track: Track,
    model: str | Separator,
    out: Path | None = None,
    device: str = "auto",
    output_format: str = "wav",
) -> Job[dict[str, Any]]:
    """Separate a track; with `out`, write `out/<track>/<stem>.<format>` atomically.

    Returns the `separate --json` shape, plus `"stems"`: the separated arrays (not JSON)."""
    if output_format not in OUTPUT_FORMATS:
        raise InputError(f"unknown output format '{output_format}' (use wav or flac)")
    separator = (
        model if isinstance(model, Separator) else load_separator(model, resolve_device(device))
    )
    folder = None if out is None else Path(out) / _safe_name(track.name)
    if folder is not None:
        check_writable(folder)
    started = time.perf_counter()
    stems = yield from separator.separate_job(track)
    seconds = time.perf_counter() - started
    outputs = {}
    if folder is not None:
        for stem, samples in stems.items():
            outputs[stem] = str(
                write_audio(folder / f"{stem}.{output_format}", samples, track.sample_rate)
            )
            yield Progress(len(outputs), len(stems), f"wrote {stem}")
    return {
        "track": track.name,
        "model": separator.name,
        "device": describe(separator.device),
        "seconds": seconds,
        "outputs": outputs,
        "stems": stems,
    }


def evaluate_job(track: Track, model: str | Separator, device: str = "auto") -> Job[dict[str, Any]]:
    """Separate, then score every stem that has a reference: SI-SDR (median over 1 s
    non-silent segments) and SDR/SIR/SAR (BSS Eval, stem against the rest of the mixture)."""
    if not track.stems:
        raise InputError(
            f"track '{track.name}' has no stems to evaluate against (use a .stem.mp4 or a track folder)"
        )
    result = yield from separate_job(track, model, None, device)
    scores = {}
    scored = [stem for stem in result["stems"] if stem in track.stems]
    for index, stem in enumerate(scored):
        reference, estimate = track.stems[stem], result["stems"][stem]
        if estimate.shape[0] != reference.shape[0]:  # a mono model on a stereo track: the downmix
            reference = reference.mean(axis=0, keepdims=True)
        values = {"si_sdr": segment_median(si_sdr, reference, estimate, track.sample_rate)}
        values.update(target_bss_eval(reference, estimate, track.mixture, track.sample_rate))
        scores[stem] = values
        yield Progress(index + 1, len(scored), f"scored {stem}")
    return {
        "track": track.name,
        "model": result["model"],
        "device": result["device"],
        "seconds": result["seconds"],
        "stems": scores,
    }


def track_summary(track: Track) -> dict[str, Any]:
    return {
        "path": track.path or track.name,
        "sample_rate": track.sample_rate,
        "channels": track.channels,
        "seconds": track.seconds,
        "stems": [stem for stem in track.stems if stem != "accompaniment"],
    }


def _safe_name(name: str) -> str:
    return (
        "".join(
            character if character.isalnum() or character in " -_.()" else "_" for character in name
        ).strip()
        or "track"
    )


def is_silent_track(track: Track) -> bool:
    return not np.any(track.mixture)
