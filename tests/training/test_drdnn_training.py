"""Training the DRDNN family through the shared loop: examples are the separator's 50-frame
batches, incomplete tracks are skipped with a counted warning, short tracks are padded, mono and
stereo mixtures train, the objective follows the config, and a resumed run matches an
uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from explorer.cli import main
from explorer.data.track import STEM_NAMES
from explorer.errors import InputError
from explorer.models import drdnn, registry
from explorer.progress import run_job
from explorer.training import checkpoints, drdnn_task, tasks
from explorer.training.data import resolve_data
from explorer.training.loop import TrainingConfig, seed_everything, train
from tests.training.conftest import write_tracks

TINY = {"kind": "drdnn", "preset": "tiny"}


def four_stem_folder(root: Path, count: int = 3, seconds: float = 0.6, incomplete: int = 0) -> Path:
    write_tracks(root, count, seconds, STEM_NAMES)
    for index in range(incomplete):  # alternately without vocals and without drums
        (root / f"track {index}" / ("vocals.wav", "drums.wav")[index % 2]).unlink()
    return root


def make_task(folder: Path, **values) -> drdnn_task.DRDNNTask:
    seed_everything(0)
    kind = values.get("kind", "drdnn")
    data = resolve_data(str(folder), tasks.data_target(kind))
    return tasks.build_task(kind, {**TINY, **values}, data)


def test_examples_are_the_separators_batches(tmp_path: Path) -> None:
    task = make_task(four_stem_folder(tmp_path / "data"))
    track = task.train_pool.sources[0].load()
    mixture, stems = task.features(track)
    frames = int(0.6 * 44100) // 256 + 1  # 104 frames -> batches at 0, 35, 70
    assert mixture.shape == (3, 50, 513) and stems.shape == (3, 4, 50, 513)
    assert mixture.dtype == np.float16
    mono = track.mono()
    spectrum = task.frontend.encode(torch.from_numpy(mono.stems["bass"])).abs()[0].T
    assert spectrum.shape[0] == frames
    np.testing.assert_allclose(
        stems[1, 2].astype(np.float32), spectrum[35:85].numpy(), rtol=2e-3, atol=1e-3
    )
    np.testing.assert_array_equal(stems[2, :, frames - 70 :], 0)  # the last batch is zero-padded


def test_the_loss_follows_the_configured_objective(tmp_path: Path) -> None:
    folder = four_stem_folder(tmp_path / "data")
    for objective in ("mse", "discriminative"):
        task = make_task(folder, objective=objective, beta=0.2)
        run_job(task.prepare())
        batch = tuple(torch.from_numpy(part) for part in next(task.validation_batches()))
        mixture, stems = (part.float() for part in batch)
        estimates, _ = task.network.estimates(mixture)
        scale = task.network.scale.mean()
        expected = (
            drdnn.discriminative_loss(estimates / scale, stems / scale, 0.2)
            if objective == "discriminative"
            else drdnn.mse_loss(estimates / scale, stems / scale)
        )
        torch.testing.assert_close(task.loss(batch), expected)
        assert task.network.scale.std() > 0  # prepare fitted the per-band scale


def test_incomplete_tracks_are_skipped_with_a_counted_warning(tmp_path: Path, capsys) -> None:
    folder = four_stem_folder(tmp_path / "data", count=4, incomplete=2)
    task = make_task(folder)
    result = run_job(train(task, TrainingConfig(epochs=1, batch_size=4), torch.device("cpu")))
    error = capsys.readouterr().err
    assert "skipped 2 of 3 training tracks without all four stems" in error
    assert np.isfinite(result["final_loss"])


def test_no_complete_track_is_a_clear_error(tmp_path: Path) -> None:
    folder = four_stem_folder(tmp_path / "data", count=3, incomplete=3)
    task = make_task(folder)
    with pytest.raises(InputError, match="none of the 2 training tracks .* has all four stems"):
        task.examples_per_epoch()


def test_short_mono_tracks_are_padded_and_stereo_trains_too(tmp_path: Path, capsys) -> None:
    short = write_tracks(tmp_path / "short", 3, 0.1, STEM_NAMES)  # 18 frames < 50
    task = make_task(short)
    assert task.examples_per_epoch() == 2
    assert (
        "2 training track(s) shorter than one batch of 50 frames were zero-padded"
        in capsys.readouterr().err
    )
    from explorer.audio.io import read_audio, write_audio

    for path in (tmp_path / "short").glob("*/*.wav"):
        samples, rate = read_audio(path)
        write_audio(path, samples[:1], rate)  # mono files
    task = make_task(short, kind="mlp")
    result = run_job(train(task, TrainingConfig(epochs=1, batch_size=2), torch.device("cpu")))
    assert np.isfinite(result["final_loss"])


def test_training_lowers_the_loss_and_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    folder = four_stem_folder(tmp_path / "data", count=3, seconds=0.8)
    config = TrainingConfig(epochs=3, batch_size=2, learning_rate=3e-3)
    whole = run_job(train(make_task(folder), config, torch.device("cpu"), tmp_path / "whole.pt"))
    losses = [record["train_loss"] for record in whole["history"]]
    assert losses[-1] < losses[0]
    interrupted = train(make_task(folder), config, torch.device("cpu"), tmp_path / "part.pt")
    for progress in interrupted:  # stop the run after its first epoch
        if progress.payload and "train_loss" in progress.payload:
            interrupted.close()
            break
    resume = checkpoints.read_resume(tmp_path / "part.pt", "drdnn")
    resumed = run_job(
        train(make_task(folder), config, torch.device("cpu"), tmp_path / "part.pt", resume)
    )
    np.testing.assert_allclose(
        [r["validation_loss"] for r in resumed["history"]],
        [r["validation_loss"] for r in whole["history"]],
        rtol=1e-5,
    )
    separator = registry.load_separator(str(tmp_path / "part.pt"), torch.device("cpu"))
    assert isinstance(separator, drdnn.DRDNNSeparator)
    assert separator.network.scale.std() > 0  # the fitted input scale travels with the weights


def test_the_train_command_trains_an_ablation(tmp_path: Path, capsys) -> None:
    folder = four_stem_folder(tmp_path / "data", count=4, incomplete=1)  # one without vocals
    out = tmp_path / "wdcp.pt"
    code = main(
        ["train", "--model", "drdnn", "--data", str(folder), "--epochs", "1", "--out", str(out),
         "--set", "preset=tiny", "--set", "decoupling=false", "--set", "objective=discriminative",
         "--batch-size", "4", "--json"]
    )  # fmt: skip
    assert code == 0
    assert "skipped 1 of 3 training tracks without all four stems" in capsys.readouterr().err
    payload = registry.load_checkpoint(out, "drdnn")
    assert payload["config"]["decoupling"] is False
    assert payload["config"]["objective"] == "discriminative"
    code = main(["train", "--model", "drdnn", "--data", str(folder), "--set", "beta=2"])
    assert code == 2 and "beta" in capsys.readouterr().err
