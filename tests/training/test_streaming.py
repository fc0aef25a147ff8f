"""Streaming data: lazy MUSDB18 / MUSDB18-HQ excerpts equal the decoded tracks, the disk cache is
keyed by file and config and written atomically, memory stays bounded as the number of tracks
grows, `explorer train --stream` trains from the cache, and broken datasets are clear errors.

The MUSDB18 root holds symlinks to the real `.stem.mp4` of ../shared/data; the MUSDB18-HQ root
holds symlinks to its FLAC preview folders.
"""

from __future__ import annotations

import json
import os
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from explorer.cli import main
from explorer.data.sources import TrackReference, open_track
from explorer.errors import InputError
from explorer.models import registry
from explorer.training.cache import ArrayCache, cache_key
from explorer.training.streaming import ExcerptDataset, FrameDataset

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
STEM_MP4 = SHARED / "stems-mp4" / "Music Delta - 80s Rock.stem.mp4"
PREVIEWS = SHARED / "musdb18-preview"


@pytest.fixture
def shared_data() -> Path:
    if not STEM_MP4.exists() or not PREVIEWS.is_dir():
        pytest.skip(f"real MUSDB18 audio not found in {SHARED}")
    return SHARED


def musdb_root(folder: Path, train: int = 3) -> Path:
    """A MUSDB18 layout: `train/*.stem.mp4` and `test/*.stem.mp4` (symlinks)."""
    for subset, count in (("train", train), ("test", 1)):
        (folder / subset).mkdir(parents=True)
        for index in range(count):
            (folder / subset / f"Track {index}.stem.mp4").symlink_to(STEM_MP4)
    return folder


def musdb_hq_root(folder: Path) -> Path:
    (folder / "train").mkdir(parents=True)
    for track in sorted(PREVIEWS.iterdir()):
        (folder / "train" / track.name).symlink_to(track)
    return folder


def test_musdb18_excerpts_are_the_decoded_tracks_and_come_from_the_cache(
    shared_data: Path, tmp_path: Path
) -> None:
    root = musdb_root(tmp_path / "musdb")
    cache = ArrayCache(tmp_path / "cache")
    dataset = ExcerptDataset.from_root(
        root, "train", seconds=1.0, hop_seconds=2.0, signals=("mixture", "vocals"), cache=cache
    )
    track = open_track(STEM_MP4)
    excerpts_per_track = (track.mixture.shape[1] - 44100) // 88200 + 1
    assert len(dataset) == 3 * excerpts_per_track
    assert cache.misses == 0  # building the index decodes nothing
    item = dataset[excerpts_per_track + 1]  # track 1, second excerpt: samples 88200..132300
    np.testing.assert_array_equal(item["mixture"], track.mixture[:, 88200:132300])
    np.testing.assert_array_equal(item["vocals"], track.stems["vocals"][:, 88200:132300])
    # DataLoader workers read the same excerpts; the decoded file was cached once (the three
    # symlinks are one file: same resolved path, size and mtime).
    loader = DataLoader(dataset, batch_size=4, num_workers=2)
    batches = list(loader)
    assert sum(len(batch["vocals"]) for batch in batches) == len(dataset)
    np.testing.assert_array_equal(batches[0]["mixture"][1].numpy(), dataset[1]["mixture"])
    assert len([entry for entry in (tmp_path / "cache").iterdir()]) == 1
    # Reading every excerpt of every track keeps at most `max_open` tracks mapped.
    narrow = ExcerptDataset.from_root(root, "train", seconds=1.0, cache=cache, max_open=1)
    for index in range(len(narrow)):
        narrow[index]
        assert narrow.open_tracks() <= 1
    # A changed front-end config (rate, channels) is a different entry; a touched file misses.
    mono = ExcerptDataset.from_root(root, "train", seconds=1.0, mono=True, cache=cache)
    assert mono[0]["mixture"].shape == (1, 44100)
    assert len(list((tmp_path / "cache").iterdir())) == 2
    key = cache_key(STEM_MP4, {"x": 1})
    copy = tmp_path / "copy.stem.mp4"
    shutil.copy(STEM_MP4, copy)
    os.utime(copy, ns=(1, 1))
    first = cache_key(copy, {"x": 1})
    os.utime(copy, ns=(2, 2))
    assert cache_key(copy, {"x": 1}) != first and key != first


def test_musdb18_hq_flac_folders_and_missing_stems(shared_data: Path, tmp_path: Path) -> None:
    root = musdb_hq_root(tmp_path / "hq")
    dataset = ExcerptDataset.from_root(
        root, seconds=2.0, signals=("mixture", "vocals", "drums"), cache=ArrayCache(tmp_path / "c")
    )
    assert len(dataset) == 3 + 3  # 6.80 s and 6.08 s previews, 2-s excerpts without overlap
    reference = open_track(PREVIEWS / "The Easton Ellises - Falcon 69")
    np.testing.assert_array_equal(dataset[4]["drums"], reference.stems["drums"][:, 88200:176400])
    broken = tmp_path / "broken" / "train" / "Half Downloaded"
    broken.mkdir(parents=True)
    shutil.copy(PREVIEWS / "Music Delta - 80s Rock" / "mixture.flac", broken / "mixture.flac")
    with pytest.raises(InputError, match="track 'Half Downloaded' .* has no vocals file"):
        ExcerptDataset.from_root(tmp_path / "broken", seconds=1.0)


def test_a_truncated_stem_mp4_is_a_clear_error(shared_data: Path, tmp_path: Path, capsys) -> None:
    root = musdb_root(tmp_path / "partial", train=2)
    data = STEM_MP4.read_bytes()
    (root / "train" / "Cut Short.stem.mp4").write_bytes(data[: len(data) // 3])
    dataset = ExcerptDataset.from_root(root, seconds=1.0, cache=ArrayCache(tmp_path / "c"))
    with pytest.raises(InputError, match="cannot decode Cut Short.stem.mp4: corrupt or truncated"):
        dataset[0]  # "Cut Short" sorts first
    arguments = ["train", "--model", "dae", "--frontend", "taslp2020-quick", "--data", str(root)]
    arguments += ["--stream", "--epochs", "1", "--cache", str(tmp_path / "c")]
    assert main(arguments) == 2
    assert "cannot decode Cut Short.stem.mp4: corrupt or truncated" in capsys.readouterr().err


def test_memory_stays_bounded_as_tracks_grow(tmp_path: Path) -> None:
    """Iterating 10 or 40 tracks holds at most `max_open` memory maps and the same Python memory."""
    cache = ArrayCache(tmp_path / "cache")
    rng = np.random.default_rng(0)
    keys, counts = [], []
    for index in range(40):
        frames = int(rng.integers(200, 400))
        arrays = (rng.random((frames, 64), np.float32), rng.random((frames, 64), np.float32))
        cache.store(f"track{index}", arrays, {"examples": frames})
        keys.append(f"track{index}")
        counts.append(frames)

    def peak(tracks: int) -> tuple[int, int]:
        dataset = FrameDataset(cache, keys[:tracks], counts[:tracks], max_open=4)
        held = 0
        tracemalloc.start()
        for start in range(0, len(dataset), 64):
            batch = dataset.__getitems__(range(start, min(start + 64, len(dataset))))
            held = max(held, dataset.open_tracks())
        _current, largest = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert batch[0].shape[1:] == (64,)
        return held, largest

    few_held, few_peak = peak(10)
    many_held, many_peak = peak(40)
    assert few_held <= 4 and many_held <= 4
    assert many_peak < few_peak * 1.5 + 200_000, (few_peak, many_peak)
    # Random access across all tracks returns exactly the stored rows.
    dataset = FrameDataset(cache, keys, counts, max_open=2)
    indices = rng.permutation(len(dataset))[:300]
    batch = dataset.__getitems__(indices)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    for position in (0, 17, 299):
        track = int(np.searchsorted(offsets, indices[position], side="right") - 1)
        row = indices[position] - offsets[track]
        expected = np.load(tmp_path / "cache" / keys[track] / "part1.npy")[row]
        np.testing.assert_array_equal(batch[1][position].numpy(), expected)


def test_cache_writes_are_atomic_and_concurrent_writers_agree(tmp_path: Path) -> None:
    cache = ArrayCache(tmp_path)
    arrays = (np.arange(6, dtype=np.float32).reshape(3, 2),)
    cache.store("entry", arrays, {"examples": 3})
    # A second writer of the same key (another rank) loses the rename; the entry is unchanged.
    cache.store("entry", (np.zeros((3, 2), np.float32),), {"examples": 3})
    np.testing.assert_array_equal(cache.open("entry")[0], arrays[0])
    # A crashed writer's temporary folder is not an entry.
    (tmp_path / ".other.abc").mkdir()
    np.save(tmp_path / ".other.abc" / "part0.npy", arrays[0])
    assert not cache.contains("other")
    assert [path.name for path in tmp_path.iterdir() if not path.name.startswith(".")] == ["entry"]


def test_train_stream_uses_the_cache_and_refuses_generated_data(
    track_folder: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    arguments = ["train", "--model", "dae", "--frontend", "taslp2020-quick", "--device", "cpu"]
    arguments += ["--data", str(track_folder), "--epochs", "2", "--steps-per-epoch", "3"]
    arguments += ["--batch-size", "32", "--stream", "--workers", "1"]
    arguments += ["--cache", str(tmp_path / "cache"), "--json"]
    assert main([*arguments, "--out", str(tmp_path / "a.pt")]) == 0
    first = json.loads(capsys.readouterr().out)["runs"][0]
    entries = list((tmp_path / "cache").iterdir())
    assert len(entries) == 4  # 3 training + 1 validation track folders

    def no_decoding(self):
        raise AssertionError("a cached track was decoded again")

    monkeypatch.setattr(TrackReference, "load", no_decoding)
    assert main([*arguments, "--out", str(tmp_path / "b.pt")]) == 0
    second = json.loads(capsys.readouterr().out)["runs"][0]
    assert second["history"] == first["history"]
    a, b = (registry.load_checkpoint(tmp_path / name)["state_dict"] for name in ("a.pt", "b.pt"))
    for key, value in a.items():
        torch.testing.assert_close(b[key], value, rtol=0, atol=0)
    assert main(["train", "--model", "dae", "--data", "synth:2x1", "--stream"]) == 2
    assert "--stream reads tracks from files" in capsys.readouterr().err
