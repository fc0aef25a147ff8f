"""The mod-cos training task on the shared loop: 50 %-overlap segments, random re-pairing of
vocals and accompaniment within sets of tracks, an interrupted run resuming to the same
weights, and a NaN loss stopping the run while the checkpoint keeps the last good epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.data.track import Track
from explorer.models import modcos, registry
from explorer.progress import run_job
from explorer.training import checkpoints, modcos_task, tasks
from explorer.training.data import TrackSource, TrainingData
from explorer.training.loop import TrainingConfig, train

SEGMENT = 256
CONFIG = {"kind": "modcos", "preset": "tiny", "segment_samples": SEGMENT, "set_size": 4}


def labelled_track(
    index: int, samples: int = 3 * SEGMENT // 2 + SEGMENT, poison: bool = False
) -> Track:
    """Vocals at level index + 1 plus noise, accompaniment at -(index + 1): each segment tells
    which track it came from."""
    rng = np.random.default_rng(index)
    vocals = (index + 1 + 0.1 * rng.standard_normal((1, samples))).astype(np.float32) * 0.01
    drums = np.full((1, samples), -(index + 1) * 0.01, dtype=np.float32)
    if poison:
        vocals[0, 10] = np.nan
    return Track(f"track {index}", vocals + drums, 44100, {"vocals": vocals, "drums": drums})


def data(count: int, poison: bool = False) -> TrainingData:
    sources = tuple(
        TrackSource(f"track {i}", lambda i=i: labelled_track(i, poison=poison))
        for i in range(count)
    )
    return TrainingData("labelled", sources, sources[:1])


def test_segments_overlap_by_half():
    assert list(modcos_task.segment_starts(2 * 44100, 44100)) == [0, 22050, 44100]
    assert list(modcos_task.segment_starts(44099, 44100)) == []
    task = tasks.build_task("modcos", CONFIG, data(3))
    assert isinstance(task, modcos_task.ModCosTask)
    # 2.5 segments long -> starts 0, 128, 256, 384: four segments per track.
    assert task.examples_per_epoch() == 3 * 4


def test_vocals_and_accompaniment_are_re_paired_within_sets_of_four():
    task = tasks.build_task("modcos", CONFIG, data(8))
    sets_seen, mismatched, total = set(), 0, 0
    for vocals, accompaniment, noise in task.train_batches(seed=218, epoch=0, batch_size=8):
        vocal_tracks = np.round(vocals.mean(axis=1) * 100).astype(int) - 1
        rest_tracks = np.round(-accompaniment.mean(axis=1) * 100).astype(int) - 1
        members = frozenset(vocal_tracks) | frozenset(rest_tracks)
        assert len(members) <= 4  # one set of four tracks per batch
        sets_seen.add(members)
        mismatched += int(np.sum(vocal_tracks != rest_tracks))
        total += len(vocal_tracks)
        assert noise.std() == pytest.approx(1e-4, rel=0.3)
    assert total == task.examples_per_epoch() == 32
    assert len(sets_seen) == 2 and frozenset().union(*sets_seen) == frozenset(range(8))
    assert mismatched > total // 2  # random re-pairing, not the true mixtures
    first = [batch[0] for batch in task.train_batches(218, 0, 8)]
    again = [batch[0] for batch in task.train_batches(218, 0, 8)]
    later = [batch[0] for batch in task.train_batches(218, 1, 8)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, later, strict=True))


def test_resumed_run_matches_an_uninterrupted_one(tmp_path):
    config = TrainingConfig(
        epochs=2, batch_size=4, learning_rate=1e-3, seed=218, halve_patience=9, stop_patience=9
    )
    torch.manual_seed(0)
    straight = tasks.build_task("modcos", CONFIG, data(4))
    run_job(train(straight, config, torch.device("cpu"), tmp_path / "straight.pt"))
    torch.manual_seed(0)
    first = tasks.build_task("modcos", CONFIG, data(4))
    half = TrainingConfig(**{**config.to_dict(), "epochs": 1, "betas": tuple(config.betas)})
    run_job(train(first, half, torch.device("cpu"), tmp_path / "resumed.pt"))
    # A finished one-epoch run cannot resume; continue from its in-progress state instead.
    payload = registry.load_checkpoint(tmp_path / "resumed.pt")
    assert payload["extra"]["finished"]
    torch.manual_seed(0)
    partial = tasks.build_task("modcos", CONFIG, data(4))
    interrupted = train(partial, config, torch.device("cpu"), tmp_path / "interrupted.pt")
    for progress in interrupted:  # stop right after the first epoch's checkpoint
        if (
            progress.payload
            and progress.payload.get("epoch") == 1
            and "train_loss" in progress.payload
        ):
            interrupted.close()
            break
    resume = checkpoints.read_resume(tmp_path / "interrupted.pt", "modcos")
    continued = tasks.build_task("modcos", CONFIG, data(4))
    run_job(train(continued, config, torch.device("cpu"), tmp_path / "interrupted.pt", resume))
    expected = straight.network.state_dict()
    for key, value in continued.network.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=1e-6)


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    path = tmp_path / "run.pt"
    config = TrainingConfig(epochs=3, batch_size=4, learning_rate=1e-3, seed=218)
    good = train(tasks.build_task("modcos", CONFIG, data(4)), config, torch.device("cpu"), path)
    for progress in good:
        if progress.payload and "train_loss" in progress.payload:
            good.close()  # one good epoch on disk
            break
    before = path.read_bytes()
    resume = checkpoints.read_resume(path, "modcos")
    poisoned = tasks.build_task("modcos", CONFIG, data(4, poison=True))
    with pytest.raises(
        modcos_task.TrainingDiverged,
        match=r"became nan at epoch 2, batch \d+.*last completed epoch",
    ):
        run_job(train(poisoned, config, torch.device("cpu"), path, resume))
    assert path.read_bytes() == before
    kept = checkpoints.read_resume(path, "modcos")
    assert kept["extra"]["training"]["epoch"] == 1
    assert all(torch.isfinite(value).all() for value in kept["state_dict"].values())
    modcos.build_model(modcos.ModCosConfig.from_dict(kept["config"]), kept["state_dict"])
