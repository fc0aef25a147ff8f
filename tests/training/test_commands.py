"""`explorer train` end to end on tiny data: JSON, fp16 weights, seeds, resume and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from explorer.cli import main
from explorer.models import registry

QUICK = [
    "--frontend",
    "taslp2020-quick",
    "--epochs",
    "1",
    "--steps-per-epoch",
    "3",
    "--device",
    "cpu",
]


def test_train_command_writes_fp16_weights_per_seed(
    track_folder: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "sf.pt"
    code = main(
        [
            "train",
            "--model",
            "sf",
            "--data",
            str(track_folder),
            *QUICK,
            "--seeds",
            "2",
            "--seed",
            "5",
            "--out",
            str(out),
            "--half",
            "--json",
        ]
    )
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert [run["seed"] for run in result["runs"]] == [5, 6]
    for seed in (5, 6):
        payload = registry.load_checkpoint(tmp_path / f"sf-seed{seed}.pt", "sf")
        assert payload["provenance"]["seed"] == seed and payload["provenance"]["epochs"] == 1
        assert payload["state_dict"]["layers.0.weight"].dtype == torch.float16
        assert payload["state_dict"]["normalizer.scale"].dtype == torch.float16
    separator = registry.load_separator(str(tmp_path / "sf-seed5.pt"), torch.device("cpu"))
    assert separator.network.layers[0].weight.dtype == torch.float32
    # A finished run cannot be resumed; a checkpoint of another kind is refused.
    assert main(["train", "--resume", str(tmp_path / "sf-seed5.pt")]) == 2
    assert "already finished" in capsys.readouterr().err
    assert main(["train", "--model", "dae", "--resume", str(tmp_path / "sf-seed5.pt")]) == 2
    assert "expected dae" in capsys.readouterr().err


def test_train_command_bad_input(tmp_path: Path, capsys) -> None:
    assert main(["train", "--model", "sf", "--data", str(tmp_path / "missing")]) == 2
    assert "no such training data" in capsys.readouterr().err
    assert main(["train", "--model", "vae", "--data", "synth:1x1", "--epochs", "1"]) == 2
    assert "cannot train model kind 'vae'" in capsys.readouterr().err
    assert main(["train", "--model", "sf", "--data", "synth:x"]) == 2
    assert "bad synthetic data spec" in capsys.readouterr().err
