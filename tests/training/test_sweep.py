"""`explorer sweep`: a grid times seeds trains every cell once, tabulates them (CSV + Markdown with
per-config mean and spread), skips finished runs when re-run, resumes an interrupted one, and runs
cells in parallel child processes."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
import torch

from explorer.cli import main
from explorer.cli import train as train_command
from explorer.models import registry
from explorer.training import loop
from explorer.training.sweep import config_hash

BASE = ["sweep", "--model", "dae", "--frontend", "taslp2020-quick", "--devices", "cpu"]
BASE += ["--steps-per-epoch", "2", "--batch-size", "32"]


def rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_grid_times_seeds_then_rerun_skips_and_resumes(
    track_folder: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    out = tmp_path / "sweep"
    arguments = [*BASE, "--data", str(track_folder), "--out", str(out), "--epochs", "1"]
    arguments += ["--grid", "hidden=8,16", "--seeds", "2", "--seed", "3"]
    assert main([*arguments, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    table = rows(out)
    assert [(row["hidden"], row["seed"]) for row in table] == [
        ("8", "3"),
        ("8", "4"),
        ("16", "3"),
        ("16", "4"),
    ]
    for row in result["runs"]:
        payload = registry.load_checkpoint(row["checkpoint"], "dae")
        assert payload["provenance"]["seed"] == row["seed"]
        assert payload["config"]["hidden"] == row["varied"]["hidden"]
        assert payload["provenance"]["final_loss"] == pytest.approx(row["final_loss"])
    # Different seeds train different weights; the per-config summary is their mean and spread.
    assert table[0]["final_loss"] != table[1]["final_loss"]
    losses = [float(row["final_loss"]) for row in table[:2]]
    markdown = (out / "results.md").read_text()
    summary = f"| 8 | 2 | {statistics.fmean(losses):.5g} | {statistics.stdev(losses):.5g} |"
    assert summary in markdown

    # Re-running trains nothing: every cell has its result.
    def no_training(*_args, **_kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(train_command, "train_run", no_training)
    assert main(arguments) == 0
    assert "| 16 | 2 |" in capsys.readouterr().out
    monkeypatch.undo()

    # A run interrupted after its first epoch (its in-progress checkpoint is on disk, no
    # result) is resumed, not restarted: it trains only epoch 2.
    two = [*BASE, "--data", str(track_folder), "--out", str(out), "--epochs", "2"]
    two += ["--grid", "hidden=8", "--seed", "3"]
    model = {"frontend": "taslp2020-quick", "hidden": 8}
    training = {"max_steps_per_epoch": 2, "epochs": 2, "batch_size": 32}
    folder = out / "runs" / f"{config_hash('dae', str(track_folder), model, training)}-seed3"
    real_train = loop.train

    def interrupted(*args, **kwargs):
        for progress in real_train(*args, **kwargs):
            yield progress
            if (progress.payload or {}).get("train_loss") is not None:
                raise KeyboardInterrupt  # after epoch 1's checkpoint
        return None

    monkeypatch.setattr("explorer.training.loop.train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        commands_main_without_handler(two)
    monkeypatch.undo()
    assert (folder / "checkpoint.pt").exists() and not (folder / "result.json").exists()
    epochs_trained: list[int] = []

    def counted(*args, **kwargs):
        job = real_train(*args, **kwargs)
        result = None
        try:
            while True:
                progress = next(job)
                if "train_loss" in (progress.payload or {}):
                    epochs_trained.append(progress.payload["epoch"])
                yield progress
        except StopIteration as stop:
            result = stop.value
        return result

    monkeypatch.setattr("explorer.training.loop.train", counted)
    assert main(two) == 0
    capsys.readouterr()
    assert epochs_trained == [2]
    finished = json.loads((folder / "result.json").read_text())
    assert finished["epochs"] == 2


def commands_main_without_handler(arguments: list[str]) -> None:
    """Run the sweep command so that a KeyboardInterrupt propagates (main() would catch it)."""
    from explorer.cli import COMMANDS, build_parser

    parsed = build_parser().parse_args(arguments)
    COMMANDS["sweep"][2](parsed)


def test_parallel_children_and_bad_input(track_folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "parallel"
    arguments = [*BASE, "--data", str(track_folder), "--out", str(out), "--epochs", "1"]
    assert main([*arguments, "--grid", "learning_rate=1e-4,1e-3", "--jobs", "2"]) == 0
    capsys.readouterr()
    table = rows(out)
    assert [row["learning_rate"] for row in table] == ["0.0001", "0.001"]
    for row in table:
        payload = registry.load_checkpoint(row["checkpoint"], "dae")
        assert payload["provenance"]["training"]["learning_rate"] == float(row["learning_rate"])
        assert (Path(row["checkpoint"]).parent / "train.log").exists()
        assert isinstance(payload["state_dict"]["layers.0.weight"], torch.Tensor)

    assert main([*arguments, "--grid", "hidden"]) == 2
    assert "--grid expects KEY=V1,V2" in capsys.readouterr().err
    assert main([*arguments, "--grid", "seed=1,2"]) == 2
    assert "use --seeds/--seed" in capsys.readouterr().err
    assert main([*arguments, "--grid", "hidden=-1"]) == 2
    assert "hidden size must be positive" in capsys.readouterr().err
