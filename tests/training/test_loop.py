"""The generic loop: scripted plateaus halve the learning rate and stop early; checkpoints round
trip and reject bad files; a run killed by SIGKILL mid-epoch resumes and loses only that epoch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from explorer.errors import InputError
from explorer.models import registry
from explorer.models.dae import DAESeparator
from explorer.progress import run_job
from explorer.training import checkpoints, tasks
from explorer.training.data import resolve_data
from explorer.training.loop import TrainingConfig, seed_everything, train
from tests.training.conftest import write_tracks

QUICK = {"kind": "dae", "frontend": "taslp2020-quick"}


class ScriptedTask:
    """A linear regression whose validation losses follow a script (no data files)."""

    kind = "scripted"
    data_description = "scripted"

    def __init__(self, validation_losses: list[float]):
        self.network = nn.Linear(3, 1)
        self.validation_losses = iter(validation_losses)
        self.current = 0.0

    def model_config(self):
        return {}

    def module(self):
        return self.network

    def prepare(self):
        yield from ()

    def examples_per_epoch(self):
        return 32

    def train_batches(self, seed, epoch, batch_size):
        rng = np.random.default_rng([seed, epoch])
        for _ in range(32 // batch_size):
            x = rng.standard_normal((batch_size, 3)).astype(np.float32)
            yield x, x.sum(axis=1, keepdims=True)

    def validation_batches(self):
        self.current = next(self.validation_losses)
        yield (np.zeros((1, 3), dtype=np.float32),)

    def loss(self, batch):
        if len(batch) == 1:
            return torch.tensor(self.current)
        return nn.functional.mse_loss(self.network(batch[0]), batch[1])


def test_learning_rate_halves_and_training_stops_on_a_scripted_plateau() -> None:
    losses = [5.0, 4.0, 4.5, 4.2, 3.0, 3.1, 3.2, 3.3, 3.4, 1.0, 1.0]
    result = run_job(
        train(ScriptedTask(losses), TrainingConfig(epochs=20, batch_size=8), torch.device("cpu"))
    )
    rates = [record["learning_rate"] for record in result["history"]]
    assert rates == pytest.approx([1e-4, 1e-4, 1e-4, 5e-5, 5e-5, 5e-5, 2.5e-5, 2.5e-5, 2.5e-5])
    assert result["stopped"] == "early" and result["epochs"] == 9
    assert result["best_epoch"] == 5 and result["final_loss"] == 3.0


def train_dae(
    data_root: Path, checkpoint: Path | None, epochs: int, resume=None, seed: int = 0, **config
):
    seed_everything(seed)
    task = tasks.build_task("dae", QUICK, resolve_data(str(data_root)))
    training = TrainingConfig(epochs=epochs, seed=seed, **config)
    return task, run_job(train(task, training, torch.device("cpu"), checkpoint, resume))


def test_checkpoint_round_trip_with_provenance(track_folder: Path, tmp_path: Path) -> None:
    path = tmp_path / "dae.pt"
    task, result = train_dae(track_folder, path, epochs=2)
    payload = registry.load_checkpoint(path, "dae")
    assert payload["config"] == {"kind": "dae", "frontend": "taslp2020-quick", "hidden": 0}
    provenance = payload["provenance"]
    assert (
        provenance["data"] == str(track_folder)
        and provenance["epochs"] == 2
        and provenance["seed"] == 0
    )
    assert provenance["final_loss"] == pytest.approx(
        min(r["validation_loss"] for r in result["history"])
    )
    separator = registry.load_separator(str(path), torch.device("cpu"))
    assert isinstance(separator, DAESeparator)
    for key, value in task.network.state_dict().items():
        torch.testing.assert_close(separator.network.state_dict()[key], value)
    # The normaliser was fitted: per-band standard deviations, not the initial ones.
    assert not torch.allclose(separator.network.normalizer.scale, torch.ones(513))
    with pytest.raises(InputError, match="already finished"):
        checkpoints.read_resume(path)


def test_bad_checkpoints_are_input_errors(track_folder: Path, tmp_path: Path) -> None:
    path = tmp_path / "dae.pt"
    train_dae(track_folder, path, epochs=1)
    with pytest.raises(InputError, match="expected sf"):
        checkpoints.read_resume(path, "sf")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(os.urandom(4096))
    for bad in (truncated, corrupt):
        with pytest.raises(InputError, match="corrupt, truncated"):
            registry.load_separator(str(bad), torch.device("cpu"))
        with pytest.raises(InputError, match="corrupt, truncated"):
            checkpoints.read_resume(bad)


def test_training_data_without_vocals_is_an_input_error(tmp_path: Path) -> None:
    root = write_tracks(tmp_path / "novocals", count=2, stems=("drums", "bass"))
    with pytest.raises(InputError, match="has no vocals stem"):
        resolve_data(str(root))


KILLER = textwrap.dedent("""
    import os, signal, sys
    import torch
    torch.set_num_threads(1)
    from explorer.training import tasks
    from explorer.training.data import resolve_data
    from explorer.training.loop import TrainingConfig, seed_everything, train
    seed_everything(0)
    task = tasks.build_task("dae", {"kind": "dae", "frontend": "taslp2020-quick"}, resolve_data(sys.argv[1]))
    job = train(task, TrainingConfig(epochs=4, batch_size=64), torch.device("cpu"), sys.argv[2])
    for progress in job:
        payload = progress.payload or {}
        if payload.get("epoch") == 3 and payload.get("step", 0) >= 1:
            os.kill(os.getpid(), signal.SIGKILL)  # mid-epoch 3, after epoch 2's checkpoint
""")


def test_resume_after_sigkill_loses_only_the_epoch_in_flight(
    track_folder: Path, tmp_path: Path
) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        path = tmp_path / "killed.pt"
        root = Path(__file__).resolve().parents[2]
        environment = dict(os.environ, PYTHONPATH=str(root))
        process = subprocess.run(
            [sys.executable, "-c", KILLER, str(track_folder), str(path)],
            env=environment,
            cwd=root,
            capture_output=True,
            timeout=120,
        )
        assert process.returncode == -signal.SIGKILL, process.stderr.decode()[-2000:]
        payload = checkpoints.read_resume(path, "dae")
        assert payload["extra"]["training"]["epoch"] == 2
        _task, resumed = train_dae(track_folder, path, epochs=4, resume=payload, batch_size=64)
        reference_path = tmp_path / "uninterrupted.pt"
        _task, reference = train_dae(track_folder, reference_path, epochs=4, batch_size=64)
    finally:
        torch.set_num_threads(threads)
    assert [r["epoch"] for r in resumed["history"]] == [1, 2, 3, 4]
    assert resumed["history"] == reference["history"]
    resumed_state = registry.load_checkpoint(path)["state_dict"]
    reference_state = registry.load_checkpoint(reference_path)["state_dict"]
    for key, value in reference_state.items():
        torch.testing.assert_close(resumed_state[key], value, rtol=0, atol=0)
