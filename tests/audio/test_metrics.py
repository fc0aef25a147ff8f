"""Metrics against closed forms and independent implementations (fast_bss_eval's SI-SDR,
museval's BSS Eval) on real music."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import fast_bss_eval
import numpy as np
import pytest

from explorer.audio.io import read_audio, to_mono
from explorer.audio.metrics import (
    bss_eval,
    is_silent,
    segment_median,
    segment_values,
    si_sdr,
    snr,
    target_bss_eval,
)


def _museval_metrics():
    """museval's metrics module on its own: the package's __init__ imports stempeg, which
    insists on the ffmpeg command line that this project does not use."""
    spec = importlib.util.find_spec("museval")
    path = Path(next(iter(spec.submodule_search_locations))) / "metrics.py"
    module_spec = importlib.util.spec_from_file_location("museval_metrics", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rock(rock_folder: Path) -> dict[str, np.ndarray]:
    return {
        name: to_mono(read_audio(rock_folder / f"{name}.flac")[0])[0, 44100 : 44100 * 3].astype(
            np.float64
        )
        for name in ("mixture", "vocals", "drums", "bass", "other")
    }


def test_snr_and_si_sdr_closed_forms() -> None:
    generator = np.random.default_rng(0)
    reference = generator.standard_normal(10000)
    noise = generator.standard_normal(10000)
    noise -= (
        (noise @ reference) / (reference @ reference) * reference
    )  # orthogonal to the reference
    estimate = 3.0 * reference + noise
    assert si_sdr(reference, estimate) == pytest.approx(
        10 * np.log10(9 * (reference @ reference) / (noise @ noise))
    )
    assert snr(reference, reference + noise) == pytest.approx(
        10 * np.log10((reference @ reference) / (noise @ noise))
    )
    assert si_sdr(np.zeros(10), estimate[:10]) is None and snr(reference, reference) is None


def test_si_sdr_matches_fast_bss_eval_on_music(rock: dict[str, np.ndarray]) -> None:
    vocals = rock["vocals"]
    estimate = vocals + 0.3 * rock["drums"]
    expected = float(fast_bss_eval.si_sdr(vocals[None], estimate[None], zero_mean=False)[0])
    assert si_sdr(vocals, estimate) == pytest.approx(expected, abs=1e-6)


def test_bss_eval_matches_museval_on_music(rock: dict[str, np.ndarray]) -> None:
    references = np.stack([rock["vocals"], rock["mixture"] - rock["vocals"]])
    estimates = np.stack(
        [
            rock["vocals"] + 0.2 * rock["drums"],
            rock["mixture"] - rock["vocals"] - 0.2 * rock["drums"],
        ]
    )
    estimates[0] += 0.01 * np.random.default_rng(1).standard_normal(estimates.shape[1])
    ours = bss_eval(references, estimates)
    sdr, _isr, sir, sar, _perm = _museval_metrics().bss_eval(
        references[..., None],
        estimates[..., None],
        window=np.inf,
        hop=np.inf,
        bsseval_sources_version=True,
        compute_permutation=False,
    )
    for key, expected in (("sdr", sdr), ("sir", sir), ("sar", sar)):
        assert np.allclose(ours[key], expected[:, 0], atol=0.05), key


def test_silent_segments_are_dropped() -> None:
    rate = 1000
    reference = np.concatenate([np.zeros(rate), np.ones(rate), np.zeros(rate)])[None] * 0.5
    estimate = reference * 2 + 0.01
    values = segment_values(si_sdr, reference, estimate, rate)
    assert len(values) == 1
    assert segment_median(si_sdr, np.zeros((1, 3 * rate)), estimate, rate) is None
    # The code's rule on the non-squared norm: ||v||_2 = 10^-1 is exactly the threshold.
    assert is_silent(np.full(100, 0.0099)) and not is_silent(np.full(100, 0.0101))


def test_bss_eval_with_a_silent_reference() -> None:
    generator = np.random.default_rng(2)
    target = generator.standard_normal(8000)
    noise = 0.01 * generator.standard_normal(8000)
    result = bss_eval(
        np.stack([target, np.zeros(8000)]),
        np.stack([target * 0.9 + noise, generator.standard_normal(8000)]),
    )
    assert result["sdr"][1] is None
    # Only white noise at -40 dB remains, almost all of it outside the 512-tap filter's reach.
    assert 35 < result["sdr"][0] < 45


THREAD_CHANGE = """
import numpy as np, torch
from explorer.audio.metrics import bss_eval
threads = torch.get_num_threads()
torch.set_num_threads(1)
torch.linalg.solve(torch.eye(3, dtype=torch.float64)[None], torch.ones(1, 3, 1, dtype=torch.float64))
torch.set_num_threads(max(2, threads))
generator = np.random.default_rng(3)
target = generator.standard_normal(8000)
result = bss_eval(np.stack([target, generator.standard_normal(8000)]),
                  np.stack([target + 0.1 * generator.standard_normal(8000), generator.standard_normal(8000)]))
print(result["sdr"][0])
"""


def test_bss_eval_survives_a_thread_count_change() -> None:
    """oneMKL in torch 2.13's CPU build breaks batched LU after set_num_threads goes down and
    back up; the metrics must not depend on it. A fresh process, since the suite pins 1 thread."""
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", THREAD_CHANGE],
        capture_output=True,
        text=True,
        cwd=root,
        env=dict(os.environ, PYTHONPATH=str(root)),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-1500:]
    assert 15 < float(result.stdout.strip()) < 25


def test_target_evaluation_detects_leakage(rock: dict[str, np.ndarray]) -> None:
    clean = target_bss_eval(
        rock["vocals"], rock["vocals"] + 1e-3 * rock["drums"], rock["mixture"], 44100
    )
    leaky = target_bss_eval(
        rock["vocals"], rock["vocals"] + 0.5 * rock["drums"], rock["mixture"], 44100
    )
    assert clean["sir"] > leaky["sir"] + 20
