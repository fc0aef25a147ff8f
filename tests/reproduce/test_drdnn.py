"""`explorer reproduce drdnn`: the quick code path at a smaller scale (tiny sizes, two 2 s
synthetic songs, one step per epoch) writes Table 1, the ablation table and the loss curves as
Markdown, CSV and PNG; the four-stem scoring behaves on perfect and useless estimates."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from explorer.cli import main
from explorer.data.track import STEM_NAMES, Track
from explorer.reproduce import drdnn as reproduction
from explorer.training.loop import TrainingConfig


def tiny_plan(options) -> reproduction.Plan:
    training = TrainingConfig(epochs=2, batch_size=2, learning_rate=1e-3, max_steps_per_epoch=1)
    return reproduction.Plan("tiny", training, data="synth:2x2", test_tracks=1, cache_tracks=True)


def test_quick_reproduction_writes_every_table_and_plot(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(reproduction, "plan", tiny_plan)
    out = tmp_path / "drdnn"
    code = main(["reproduce", "drdnn", "--data", "synth", "--quick", "--out", str(out), "--json",
                 "--device", "cpu"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    for stem in ("table1", "ablation", "loss_curves"):
        for suffix in ("md", "csv", "png"):
            assert (out / f"{stem}.{suffix}").stat().st_size > 0
    assert (out / "png").exists() is False and (out / "report.md").is_file()
    with open(out / "table1.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["metric"], row["model"]) for row in rows] == [
        (metric, model)
        for metric in ("SIR", "SDR", "SAR")
        for model in ("MLP", "DCNN", "DRNN", "DRDNN")
    ]
    assert all(row[stem] != "" for row in rows for stem in STEM_NAMES)
    assert {row["model"]: row["paper vocals"] for row in rows if row["metric"] == "SDR"} == {
        "MLP": "1.62", "DCNN": "2.05", "DRNN": "3.02", "DRDNN": "3.15"
    }  # fmt: skip
    with open(out / "ablation.csv") as handle:
        ablation = list(csv.DictReader(handle))
    assert [row["model"] for row in ablation] == [
        "DRDNN",
        "DRDNN-wDCP",
        "DRDNN-wDR",
        "DRDNN-noMask",
    ]
    assert all(float(row["training frames/s"]) > 0 for row in ablation)
    parameters = {row["model"]: int(row["parameters"]) for row in ablation}
    assert parameters["DRDNN-wDCP"] < parameters["DRDNN"] == parameters["DRDNN-noMask"]
    with open(out / "loss_curves.csv") as handle:
        curves = list(csv.DictReader(handle))
    assert [(row["model"], row["epoch"]) for row in curves] == [
        ("DRDNN", "1"), ("DRDNN", "2"), ("DRDNN-wDCP", "1"), ("DRDNN-wDCP", "2")
    ]  # fmt: skip
    assert summary["training"]["DRDNN-wDCP"]["variant"] == "drdnn-wDCP"
    assert "vocals SIR gained by masking" in (out / "report.md").read_text()


def test_scoring_perfect_and_useless_estimates() -> None:
    rng = np.random.default_rng(0)
    stems = {
        stem: (0.1 * rng.standard_normal((2, 88200))).astype(np.float32) for stem in STEM_NAMES
    }
    stems["bass"][:, 44100:] = 0.0  # silent in the second segment
    track = Track("t", np.sum(list(stems.values()), axis=0), 44100, stems)
    nearly = {s: v.mean(axis=0) + 1e-3 * rng.standard_normal(88200) for s, v in stems.items()}
    perfect = reproduction.score_track(track, nearly)
    assert all(perfect[stem]["sir"] > 30 and perfect[stem]["sdr"] > 20 for stem in STEM_NAMES)
    useless = reproduction.score_track(track, {s: track.mixture / 4 for s in STEM_NAMES})
    assert all(useless[stem]["sir"] < 3 for stem in STEM_NAMES)
