"""The eusipco2020 reproduction end to end on a miniature plan (the `--quick` code path with
smaller sizes): every table row, the figures, reuse of finished checkpoints, and the CLI's
refusals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from explorer.errors import InputError
from explorer.progress import run_job
from explorer.reproduce import ReproduceOptions, eusipco2020
from explorer.training.loop import TrainingConfig
from tests.training.conftest import write_tracks

MINIATURE = {
    "components": (4, 6, 8),
    "table1_components": 6,
    "model": {"kernel_length": 64, "hop_length": 16, "segment_samples": 4096},
    "training": TrainingConfig(
        epochs=1, batch_size=4, learning_rate=1e-3, seed=218, max_steps_per_epoch=2
    ),
    "train_tracks": 3,
    "test_tracks": 1,
    "test_seconds": 1.0,
}


def test_quick_plan_is_scaled_down_and_says_so():
    quick = eusipco2020.plan(ReproduceOptions("synth", Path("x"), quick=True))
    full = eusipco2020.plan(ReproduceOptions("synth", Path("x")))
    assert (
        full.components == (400, 800, 1600)
        and full.training.batch_size == 8
        and full.training.seed == 218
    )
    assert full.training.learning_rate == 1e-4 and full.training.epochs == 10
    assert max(quick.components) < 100 and quick.training.max_steps_per_epoch > 0
    with pytest.raises(InputError, match="one seed"):
        eusipco2020.plan(ReproduceOptions("synth", Path("x"), seeds=3))


def test_miniature_reproduction_writes_both_tables_and_figures(tmp_path):
    data = write_tracks(tmp_path / "data", count=4, seconds=1.2)
    out = tmp_path / "out"
    options = ReproduceOptions(str(data), out, quick=True, device="cpu")
    summary = run_job(eusipco2020.reproduce_job(options, MINIATURE))
    assert [row["kind"] for row in summary["table1"]] == [kind for _, kind, _ in eusipco2020.TABLE1]
    assert all(row["reconstruction_si_sdr"] is not None for row in summary["table1"])
    labels = [row["representation"] for row in summary["table2"]]
    assert labels[-2:] == ["STFT (eusipco2020)", "STFT (eusipco2020-code)"]
    assert len(labels) == 2 * 3 + 2
    stft = summary["table2"][-2]
    assert stft["separation_si_sdr"] > stft["mixture_si_sdr"]  # the informed STFT mask helps
    assert stft["paper"] == 8.80 and stft["reconstruction_si_sdr"] is None
    with open(out / "table2.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8 and rows[0]["components"] == "4"
    assert "| conv / mod-cos (f^2) | 6 |" in (out / "table1.md").read_text()
    assert "Quick run" in summary["report"]
    for figure in ("kernels.png", "representation.png"):
        assert (out / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "summary.json").read_text())["paper"] == "eusipco2020"
    # The paper model at C=6 serves Table 1 and Table 2: one checkpoint per distinct model.
    assert len(list((out / "checkpoints").glob("*.pt"))) == len(eusipco2020.TABLE1) + 2 * 3 - 1
    # A rerun into the same folder reuses every finished checkpoint and gives the same tables.
    messages = []
    again = run_job(
        eusipco2020.reproduce_job(options, MINIATURE),
        lambda progress: messages.append(progress.message),
    )
    assert sum("reusing" in message for message in messages) == len(eusipco2020.TABLE1) + 2 * 3 - 1
    assert again["table2"][0]["separation_si_sdr"] == pytest.approx(
        summary["table2"][0]["separation_si_sdr"]
    )
