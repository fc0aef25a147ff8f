"""`explorer reproduce naive-ae`: the quick run's code path at a tiny scale (two hidden layers,
one-second tracks, one epoch), its outputs, and the verdict logic."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from explorer.errors import InputError
from explorer.models import registry
from explorer.progress import run_job
from explorer.training.loop import TrainingConfig

pytest.importorskip("explorer.data.synth")
from explorer.reproduce import ReproduceOptions  # noqa: E402
from explorer.reproduce import naive_ae as reproduce  # noqa: E402

TINY = {
    "train_tracks": 2,
    "train_seconds": 1.0,
    "test_tracks": 1,
    "test_seconds": 1.0,
    "solo_seconds": 1.0,
    "model": {"hidden": [24, 12], "rbm_epochs": 1, "training_stride": 2},
    "training": TrainingConfig(epochs=1, batch_size=32, learning_rate=1e-3),
}


def test_quick_plan_is_small_and_overrides_merge() -> None:
    quick = reproduce.plan(ReproduceOptions("synth", Path("x"), quick=True))
    full = reproduce.plan(ReproduceOptions("synth", Path("x")))
    assert quick.train_tracks * quick.train_seconds < full.train_tracks * full.train_seconds
    assert quick.training.epochs < full.training.epochs
    merged = reproduce.plan(
        ReproduceOptions("synth", Path("x"), quick=True), {"model": {"hidden": [8]}}
    )
    assert merged.model == {"rbm_epochs": 3, "rbm_batch_size": 100, "hidden": [8]}


def test_tiny_reproduction_writes_every_output(tmp_path: Path) -> None:
    out = tmp_path / "run"
    options = ReproduceOptions("synth", out, quick=True, device="cpu")
    summary = run_job(reproduce.reproduce_job(options, TINY))
    for name in (
        "reconstruction.png",
        "code_maps.png",
        "surgery.png",
        "surgery.md",
        "surgery.csv",
        "variants.md",
        "variants.csv",
        "findings.md",
        "summary.json",
    ):
        assert (out / name).stat().st_size > 0, name
    assert (out / "reconstruction.png").read_bytes()[:4] == b"\x89PNG"
    rows = list(csv.DictReader(open(out / "surgery.csv")))
    variants = {row["variant"] for row in rows}
    assert variants == set(reproduce.VARIANTS)
    assert {(row["method"], row["mode"]) for row in rows} == set(reproduce.METHODS)
    stems = set(json.loads((out / "summary.json").read_text())["sources"])
    assert {row["source"] for row in rows} <= stems and len(stems) == 5
    for row in rows:
        assert row["si_sdr_mixture"] != ""  # the unprocessed mixture is always defined
    table = list(csv.DictReader(open(out / "variants.csv")))
    assert [row["variant"] for row in table] == list(reproduce.VARIANTS)
    for row in table:
        assert 0.0 <= float(row["selectivity"]) <= 1.0 and float(row["time_sharpness"]) >= 0.0
    assert "Verdict" in summary["report"] and all(
        name in summary["report"] for name in reproduce.VARIANTS
    )
    # Each checkpoint keeps its k-means assignment, so it separates without recalibrating.
    payload = registry.load_checkpoint(out / "checkpoints" / "baseline.pt", "naive-ae")
    assert int(payload["state_dict"]["unit_sources"].min()) >= 0
    # A rerun into the same folder reuses the trained checkpoints.
    messages = []
    again = dict(TINY, variants=("baseline",))
    run_job(
        reproduce.reproduce_job(options, again), lambda progress: messages.append(progress.message)
    )
    assert any("baseline: reusing" in message for message in messages)


def result(time: float, frequency: float, selectivity: float) -> dict:
    return {
        "blur": {
            "time_sharpness": time,
            "frequency_sharpness": frequency,
            "onset_sharpness": time,
            "error": 0.1,
        },
        "map_statistics": {
            "selectivity": selectivity,
            "selective_units": 0.0,
            "map_correlation": 0.9,
        },
        "purity": {"purity": 0.5, "chance": 0.2},
        "surgery": [{"method": "kmeans", "mode": "decode", "si_sdr_improvement": -3.0}],
    }


def test_verdict_follows_the_stated_thresholds() -> None:
    shown = reproduce.verdict(
        {"baseline": result(0.4, 0.9, 0.1), "transposed": result(0.9, 0.5, 0.2)}
    )
    assert "our baseline run shows the paper's finding" in shown
    assert "transposed vs baseline: time sharpness +0.50" in shown
    sharp = reproduce.verdict({"baseline": result(0.95, 0.9, 0.1)})
    assert "does not fully show" in sharp and "not blurred in time" in sharp
    clean = reproduce.verdict({"baseline": result(0.4, 0.9, 0.7)})
    assert "does not fully show" in clean and "-> clean per-instrument regions" in clean


def test_pretrained_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="drop --pretrained"):
        run_job(reproduce.reproduce_job(ReproduceOptions("synth", tmp_path, pretrained=True), TINY))
    assert np.isfinite(1.0)
