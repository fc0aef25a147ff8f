"""Oracle separators through the common separator interface."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.audio.metrics import si_sdr
from explorer.data.sources import open_track
from explorer.data.track import Track
from explorer.errors import InputError
from explorer.models.oracle import OracleConfig, OracleSeparator
from explorer.models.registry import builtin_names, load_separator
from tests.conftest import sine


def _tone_track(rate: int = 44100) -> Track:
    stems = {
        "vocals": sine(880.0, 2.0, rate, 2),
        "drums": sine(110.0, 2.0, rate, 2, 0.3),
        "bass": sine(55.0, 2.0, rate, 2, 0.3),
        "other": sine(5000.0, 2.0, rate, 2, 0.1),
    }
    return Track("tones", sum(stems.values()), rate, stems)


@pytest.mark.parametrize("mask", ["ibm", "irm"])
def test_oracles_recover_spectrally_disjoint_stems(mask: str) -> None:
    track = _tone_track()
    estimates = OracleSeparator(OracleConfig(mask=mask)).separate(track)
    for stem in ("vocals", "drums", "bass", "other"):
        assert si_sdr(track.stems[stem][:, 5000:-5000], estimates[stem][:, 5000:-5000]) > 20, stem


def test_irm_estimates_add_up_to_the_mixture() -> None:
    track = open_track("demo")
    estimates = OracleSeparator(OracleConfig(mask="irm")).separate(track)
    total = sum(estimates[stem] for stem in ("vocals", "drums", "bass", "other"))
    assert np.max(np.abs(total - track.mixture)) < 1e-4
    assert np.allclose(estimates["accompaniment"] + estimates["vocals"], track.mixture, atol=1e-4)


def test_chunked_separation_equals_one_pass() -> None:
    track = open_track("demo")
    whole = OracleSeparator(OracleConfig(mask="ibm"))
    whole.chunk_seconds = 60.0
    chunked = OracleSeparator(OracleConfig(mask="ibm"))
    chunked.chunk_seconds = 1.3
    first, second = whole.separate(track), chunked.separate(track)
    for stem in first:
        assert np.max(np.abs(first[stem] - second[stem])) < 1e-5


def test_other_sample_rates_come_back_at_the_track_rate() -> None:
    track = _tone_track(22050)
    estimates = OracleSeparator(OracleConfig()).separate(track)
    assert estimates["vocals"].shape == track.mixture.shape
    assert si_sdr(track.stems["vocals"][:, 3000:-3000], estimates["vocals"][:, 3000:-3000]) > 15


def test_registry_and_mask_probes() -> None:
    assert {"oracle-ibm", "oracle-irm"} <= set(builtin_names())
    separator = load_separator("oracle-irm", torch.device("cpu"))
    probes = separator.probes(open_track("demo"), 1.0, 2.0)
    mask = probes["mask/vocals"]
    assert mask.values.shape[0] == 1025 and 0 <= mask.values.min() and mask.values.max() <= 1
    with pytest.raises(InputError, match="unknown model"):
        load_separator("no-such-model", torch.device("cpu"))
    with pytest.raises(InputError, match="no vocals"):
        separator.separate(Track("bare", np.zeros((1, 100), dtype=np.float32), 44100))
