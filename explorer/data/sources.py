"""Where tracks come from: a single file, a `.stem.mp4`, a track folder, a MUSDB18 root (of
`.stem.mp4` files), a MUSDB18-HQ root (track folders of `.wav` or `.flac` stems), any folder of
track folders, and the embedded demo. Tracks are listed lazily as `TrackReference`s and decoded
on `load()`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from explorer.audio.io import audio_info, is_audio_path, read_audio
from explorer.data.track import STEM_NAMES, Track
from explorer.errors import InputError

STEM_MP4_SUFFIX = ".stem.mp4"
# Stream order of the MUSDB18 container.
STEM_MP4_STREAMS = ("mixture", "drums", "bass", "other", "vocals")
FOLDER_SIGNALS = ("mixture", *STEM_NAMES, "accompaniment")
SUBSETS = ("train", "test")
DEMO_NAME = "The Easton Ellises - Falcon 69"


def demo_path() -> Path:
    """The real MUSDB18 track shipped inside the `stempeg` wheel (found without importing
    stempeg, which needs the ffmpeg command line)."""
    spec = importlib.util.find_spec("stempeg")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the demo track needs the 'stempeg' package (pip install stempeg)")
    path = (
        Path(next(iter(spec.submodule_search_locations))) / "data" / f"{DEMO_NAME}{STEM_MP4_SUFFIX}"
    )
    if not path.exists():
        raise InputError(f"the demo track is missing from the stempeg package: {path}")
    return path


@dataclass(frozen=True)
class TrackReference:
    """A track that can be loaded: a `.stem.mp4`, a track folder, or a single audio file."""

    name: str
    path: Path
    subset: str | None = None

    @property
    def kind(self) -> str:
        if self.path.is_dir():
            return "folder"
        return "stem-mp4" if self.path.name.lower().endswith(STEM_MP4_SUFFIX) else "file"

    def stem_names(self) -> list[str]:
        """The stems the track has, read from names and headers only."""
        if self.kind == "folder":
            return [name for name in _folder_files(self.path) if name != "mixture"]
        if self.kind == "stem-mp4":
            return sorted(STEM_MP4_STREAMS[1:]) if audio_info(self.path).streams >= 5 else []
        return []

    def load(self) -> Track:
        loaders = {"folder": _load_folder, "stem-mp4": _load_stem_mp4, "file": _load_file}
        track = loaders[self.kind](self.path, self.name)
        track.subset = self.subset
        return track


def _track_name(path: Path) -> str:
    name = path.name
    if name.lower().endswith(STEM_MP4_SUFFIX):
        return name[: -len(STEM_MP4_SUFFIX)]
    return path.stem if path.is_file() else name


def _load_file(path: Path, name: str) -> Track:
    samples, sample_rate = read_audio(path)
    return Track(name, samples, sample_rate, path=str(path))


def _load_stem_mp4(path: Path, name: str) -> Track:
    streams = audio_info(path).streams
    if streams < len(STEM_MP4_STREAMS):
        raise InputError(
            f"{path.name} has {streams} audio stream(s); a MUSDB18 .stem.mp4 has "
            f"{len(STEM_MP4_STREAMS)} ({', '.join(STEM_MP4_STREAMS)})"
        )
    signals = {}
    sample_rate = 0
    for index, stem in enumerate(STEM_MP4_STREAMS):
        signals[stem], rate = read_audio(path, stream=index)
        if sample_rate and rate != sample_rate:
            raise InputError(f"{path.name}: streams have different sample rates")
        sample_rate = rate
    mixture = signals.pop("mixture")
    return Track(name, mixture, sample_rate, signals, path=str(path))


def _folder_files(folder: Path) -> dict[str, Path]:
    """`{signal: file}` for `mixture`, the stems and `accompaniment`, preferring .wav."""
    found: dict[str, Path] = {}
    for signal in FOLDER_SIGNALS:
        for suffix in (".wav", ".flac"):
            candidate = folder / f"{signal}{suffix}"
            if candidate.is_file():
                found[signal] = candidate
                break
    return found


def _load_folder(folder: Path, name: str) -> Track:
    files = _folder_files(folder)
    if not files:
        raise InputError(
            f"no mixture or stem files (mixture/vocals/drums/bass/other .wav or .flac) in {folder}"
        )
    signals: dict[str, np.ndarray] = {}
    sample_rate = 0
    for signal, path in files.items():
        signals[signal], rate = read_audio(path)
        if sample_rate and rate != sample_rate:
            raise InputError(
                f"{folder.name}: {path.name} is at {rate} Hz, other files at {sample_rate} Hz"
            )
        sample_rate = rate
    mixture = signals.pop("mixture", None)
    if mixture is None:
        # A folder of stems only: the mixture is their sum.
        parts = [signals[stem] for stem in STEM_NAMES if stem in signals] or list(signals.values())
        length = max(part.shape[-1] for part in parts)
        mixture = np.zeros((max(part.shape[0] for part in parts), length), dtype=np.float32)
        for part in parts:
            mixture[:, : part.shape[-1]] += part
    return Track(name, mixture, sample_rate, signals, path=str(folder))


def _is_track_folder(folder: Path) -> bool:
    return bool(_folder_files(folder))


def reference_for(input_name: str | Path) -> TrackReference:
    """The track an INPUT names: `demo`, an audio file, a `.stem.mp4`, or a track folder."""
    if str(input_name) == "demo":
        return TrackReference(DEMO_NAME, demo_path(), "test")
    path = Path(input_name).expanduser()
    if not path.exists():
        raise InputError(f"no such file or folder: {path}")
    if path.is_dir():
        if _is_track_folder(path):
            return TrackReference(_track_name(path), path)
        if list_dataset(path, strict=False):
            raise InputError(
                f"{path} is a dataset root with several tracks; name one track (see 'explorer info {path}')"
            )
        raise InputError(f"no audio found in folder {path}")
    if not is_audio_path(path):
        raise InputError(f"not a supported audio file ({path.suffix or 'no suffix'}): {path}")
    return TrackReference(_track_name(path), path)


def open_track(input_name: str | Path) -> Track:
    """Load the track an INPUT names."""
    return reference_for(input_name).load()


def list_dataset(
    root: str | Path, subset: str | None = None, strict: bool = True
) -> list[TrackReference]:
    """Tracks under a dataset root, sorted by subset then name.

    Layouts: MUSDB18 (`train/*.stem.mp4`, `test/*.stem.mp4`), MUSDB18-HQ
    (`train/<track>/`, `test/<track>/`), a folder of `.stem.mp4` files, or a folder of track
    folders. `subset` keeps only `train` or `test`. With `strict`, an empty result is an error.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InputError(f"dataset root is not a folder: {root}")
    if subset is not None and subset not in SUBSETS:
        raise InputError(f"unknown subset '{subset}' (known: {', '.join(SUBSETS)})")
    references: list[TrackReference] = []
    subsets = [name for name in SUBSETS if (root / name).is_dir()]
    if subsets:
        for name in subsets:
            if subset in (None, name):
                references += _tracks_in(root / name, name)
    elif subset is None:
        references = _tracks_in(root, None)
    if strict and not references:
        raise InputError(f"no tracks found in {root}" + (f" (subset {subset})" if subset else ""))
    return references


def _tracks_in(folder: Path, subset: str | None) -> list[TrackReference]:
    references = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_file() and child.name.lower().endswith(STEM_MP4_SUFFIX):
            references.append(TrackReference(_track_name(child), child, subset))
        elif child.is_dir() and _is_track_folder(child):
            references.append(TrackReference(child.name, child, subset))
    return references
