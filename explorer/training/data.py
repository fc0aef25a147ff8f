"""Training data for any model family: which tracks train and which validate.

`resolve_data(D)` turns the CLI's `--data D` into a `TrainingData`:

- a MUSDB18 / MUSDB18-HQ root: its `train` subset, minus the standard 14-track validation split
  of the `musdb` package (which validates); roots without that split validate on every 7th track;
- a folder of track folders, or a single track folder (split in time: last 20 % validates);
- `demo`: the embedded MUSDB18 track, split in time the same way;
- `synth` or `synth:N` or `synth:NxS`: N synthetic songs of S seconds rendered in memory by
  `explorer.data.synth` (defaults 12 x 20 s), plus a fifth as many (at least 2) for validation.

Every training track must have a vocals stem; the check reads only names and headers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from explorer.data.sources import TrackReference, list_dataset, open_track
from explorer.data.track import Track
from explorer.errors import InputError

# musdb's configs/mus.yaml `validation_tracks`.
MUSDB_VALIDATION = frozenset(
    {
        "Actions - One Minute Smile",
        "Clara Berry And Wooldog - Waltz For My Victims",
        "Johnny Lokke - Promises & Lies",
        "Patrick Talbot - A Reason To Leave",
        "Triviul - Angelsaint",
        "Alexander Ross - Goodbye Bolero",
        "Fergessen - Nos Palpitants",
        "Leaf - Summerghost",
        "Skelpolu - Human Mistakes",
        "Young Griffo - Pennies",
        "ANiMAL - Rockshow",
        "James May - On The Line",
        "Meaxic - Take A Step",
        "Traffic Experiment - Sirens",
    }
)
SYNTH_TRACKS, SYNTH_SECONDS = 12, 20.0
SYNTH_VALIDATION_SEED = 100_000
SYNTH_TEST_SEED = 200_000
VALIDATION_FRACTION = 0.2
VALIDATION_EVERY = 7


@dataclass(frozen=True)
class TrackSource:
    """A track to load on demand: `load()` returns it (any channels and sample rate). `path`:
    its file or folder when it is read whole from disk (keys the streaming cache)."""

    name: str
    load: Callable[[], Track]
    path: Path | None = None


@dataclass(frozen=True)
class TrainingData:
    """`description` is what provenance records as `data`."""

    description: str
    train: tuple[TrackSource, ...]
    validation: tuple[TrackSource, ...]


def resolve_data(spec: str, target: str | None = "vocals") -> TrainingData:
    """`--data D` -> training and validation tracks; InputError if D is unusable."""
    if spec == "demo":
        return _time_split("demo", lambda: open_track("demo"), "demo")
    if spec == "synth" or spec.startswith("synth:"):
        return synth_data(*_parse_synth(spec))
    if spec == "instruments" or spec.startswith("instruments:"):
        from explorer.training.naive_ae_task import instrument_data, parse_instrument_spec

        return instrument_data(*parse_instrument_spec(spec))
    path = Path(spec).expanduser()
    if not path.exists():
        raise InputError(
            f"no such training data: {spec} (use a dataset root, a track folder, 'demo' or 'synth')"
        )
    references = _references(path)
    if target is not None:
        _require_target(references, target)
    if len(references) == 1:
        return _time_split(references[0].name, references[0].load, str(path))
    validation = [reference for reference in references if reference.name in MUSDB_VALIDATION]
    if not validation or len(validation) == len(references):
        validation = references[VALIDATION_EVERY - 1 :: VALIDATION_EVERY] or references[-1:]
    train = [reference for reference in references if reference not in validation]
    return TrainingData(str(path), tuple(map(_source, train)), tuple(map(_source, validation)))


def test_tracks(spec: str) -> list[TrackSource]:
    """Held-out tracks for analysis: the `test` subset of a dataset root, new synthetic songs,
    or the validation part for sources without a test subset."""
    if spec == "synth" or spec.startswith("synth:"):
        tracks, seconds = _parse_synth(spec)
        return [
            _synth_source(SYNTH_TEST_SEED + index, seconds) for index in range(max(2, tracks // 5))
        ]
    path = Path(spec).expanduser()
    if spec != "demo" and path.is_dir():
        try:
            return [_source(reference) for reference in list_dataset(path, "test")]
        except InputError:
            pass
    return list(resolve_data(spec).validation)


def synth_data(tracks: int = SYNTH_TRACKS, seconds: float = SYNTH_SECONDS) -> TrainingData:
    train = tuple(_synth_source(seed, seconds) for seed in range(tracks))
    validation = tuple(
        _synth_source(SYNTH_VALIDATION_SEED + index, seconds)
        for index in range(max(2, tracks // 5))
    )
    return TrainingData(f"synth:{tracks}x{seconds:g}", train, validation)


def _synth_source(seed: int, seconds: float) -> TrackSource:
    def load() -> Track:
        try:
            from explorer.data.synth import render_track
        except ModuleNotFoundError:
            raise InputError(
                "synthetic data needs explorer.data.synth, which this installation lacks"
            ) from None
        return render_track(seed, seconds)

    return TrackSource(f"synth-{seed}", load)


def _parse_synth(spec: str) -> tuple[int, float]:
    if spec == "synth":
        return SYNTH_TRACKS, SYNTH_SECONDS
    match = re.fullmatch(r"synth:(\d+)(?:x(\d+(?:\.\d+)?))?", spec)
    if not match or int(match.group(1)) < 1:
        raise InputError(
            f"bad synthetic data spec '{spec}' (use synth, synth:N or synth:NxSECONDS)"
        )
    return int(match.group(1)), float(match.group(2) or SYNTH_SECONDS)


def _references(path: Path) -> list[TrackReference]:
    if path.is_file():
        raise InputError(f"training data must be a folder, 'demo' or 'synth', not a file: {path}")
    try:
        from explorer.data.sources import reference_for

        return [reference_for(path)]
    except InputError:
        pass
    references = list_dataset(path)
    if any(reference.subset == "train" for reference in references):
        references = [reference for reference in references if reference.subset == "train"]
    return references


def _require_target(references: Sequence[TrackReference], target: str) -> None:
    for reference in references:
        if target not in reference.stem_names():
            raise InputError(
                f"training track '{reference.name}' has no {target} stem; training needs mixture and {target}"
            )


def _source(reference: TrackReference) -> TrackSource:
    return TrackSource(reference.name, reference.load, reference.path)


def _time_split(name: str, load: Callable[[], Track], description: str) -> TrainingData:
    """One track: the first 80 % trains, the last 20 % validates."""

    def part(first: bool) -> Callable[[], Track]:
        def cut() -> Track:
            track = load()
            track.require_stems("vocals")
            split = track.seconds * (1.0 - VALIDATION_FRACTION)
            return (
                track.excerpt(0.0, split) if first else track.excerpt(split, track.seconds - split)
            )

        return cut

    return TrainingData(
        description,
        (TrackSource(f"{name} [train]", part(True)),),
        (TrackSource(f"{name} [validation]", part(False)),),
    )
