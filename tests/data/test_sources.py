"""Data sources: every dataset layout, the demo, tracks and their stems."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from explorer.data.sources import demo_path, list_dataset, open_track, reference_for
from explorer.data.track import Track
from explorer.errors import InputError


def test_demo_is_the_stempeg_track() -> None:
    track = open_track("demo")
    assert track.name == "The Easton Ellises - Falcon 69"
    assert track.sample_rate == 44100 and track.channels == 2 and 6.0 < track.seconds < 6.2
    assert set(track.stems) == {"vocals", "drums", "bass", "other", "accompaniment"}
    expected = track.stems["drums"] + track.stems["bass"] + track.stems["other"]
    assert np.allclose(track.stems["accompaniment"], expected)
    assert demo_path().name.endswith(".stem.mp4")


def test_hq_preview_folder_accepts_flac(shared_data: Path) -> None:
    references = list_dataset(shared_data / "musdb18-preview")
    assert [reference.name for reference in references] == [
        "Music Delta - 80s Rock",
        "The Easton Ellises - Falcon 69",
    ]
    track = references[0].load()
    assert set(track.stems) >= {"vocals", "drums", "bass", "other"} and track.mixture.shape == (
        2,
        300032,
    )


def test_musdb18_root_with_subsets(tmp_path: Path, rock_stem_mp4: Path) -> None:
    for subset in ("train", "test"):
        (tmp_path / subset).mkdir()
        os.symlink(rock_stem_mp4, tmp_path / subset / f"{subset} song.stem.mp4")
    assert [(r.name, r.subset) for r in list_dataset(tmp_path)] == [
        ("train song", "train"),
        ("test song", "test"),
    ]
    test_only = list_dataset(tmp_path, subset="test")
    assert len(test_only) == 1 and test_only[0].kind == "stem-mp4"
    track = test_only[0].load()
    assert track.subset == "test" and track.mixture.shape == (2, 299880)


def test_hq_root_with_wav_stems_and_stem_only_folder(tmp_path: Path) -> None:
    rate = 8000
    generator = np.random.default_rng(0)
    stems = {
        name: generator.uniform(-0.2, 0.2, (rate, 2)).astype(np.float32)
        for name in ("vocals", "drums", "bass", "other")
    }
    folder = tmp_path / "train" / "song"
    folder.mkdir(parents=True)
    for name, samples in stems.items():
        soundfile.write(str(folder / f"{name}.wav"), samples, rate, subtype="FLOAT")
    (tmp_path / "train" / "not a track").mkdir()
    references = list_dataset(tmp_path)
    assert [(r.name, r.subset) for r in references] == [("song", "train")]
    track = references[0].load()
    # No mixture file: the mixture is the sum of the stems.
    assert np.allclose(track.mixture, sum(stems.values()).T, atol=1e-6)


def test_single_file_gives_a_mixture_only(shared_data: Path) -> None:
    track = open_track(shared_data / "vocadito" / "vocadito_1.wav")
    assert track.stems == {} and track.channels == 1 and track.sample_rate == 44100


def test_stem_mp4_with_too_few_streams(tmp_path: Path) -> None:
    path = tmp_path / "short.stem.mp4"
    with av.open(str(path), "w") as container:
        # Streams must all exist before the first packet is muxed.
        streams = [container.add_stream("aac", rate=44100, layout="stereo") for _ in range(2)]
        for stream in streams:
            frame = av.AudioFrame.from_ndarray(
                np.zeros((2, 4096), dtype=np.float32), format="fltp", layout="stereo"
            )
            frame.sample_rate = 44100
            frame.pts = 0
            frame.time_base = Fraction(1, 44100)
            for packet in list(stream.encode(frame)) + list(stream.encode(None)):
                container.mux(packet)
    with pytest.raises(InputError, match="2 audio stream"):
        open_track(path)


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such"):
        reference_for(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no audio"):
        reference_for(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="not a supported"):
        reference_for(tmp_path / "notes.txt")
    with pytest.raises(InputError, match="no tracks"):
        list_dataset(tmp_path / "empty")


def test_track_rejects_missing_stems_and_converts() -> None:
    track = Track(
        "t",
        np.ones((2, 100), dtype=np.float32),
        1000,
        {"vocals": np.zeros((2, 98), dtype=np.float32)},
    )
    assert track.stems["vocals"].shape == (2, 100)
    with pytest.raises(InputError, match="no drums stem"):
        track.require_stems("drums")
    assert track.mono().mixture.shape == (1, 100)
    assert track.resampled(2000).mixture.shape == (2, 200)
    assert track.excerpt(0.01, 0.05).mixture.shape == (2, 50)
