"""Separation metrics.

- `snr`, `si_sdr`: closed forms; SI-SDR scales the reference by `alpha = <x_hat, x> / ||x||^2`
  as in the mod-cos paper (no mean removal).
- `bss_eval`: SDR, SIR and SAR (BSS Eval v3 "sources", 512-tap distortion filter) through the
  maintained `fast_bss_eval`.
- `segment_median`: a metric over non-overlapping segments, dropping silent reference
  segments by the mod-cos code's rule `10 log10(||v||_2) < -10`, median of the rest.

Signals are `(samples,)` or `(channels, samples)`; channels are treated as one long signal.
Values are floats in dB, or None where undefined (a silent reference, a perfect estimate).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np

SILENCE_DB = -10.0


def _flat(signal: np.ndarray) -> np.ndarray:
    return np.asarray(signal, dtype=np.float64).reshape(-1)


def _ratio_db(numerator: float, denominator: float) -> float | None:
    if numerator <= 0.0 or denominator <= 0.0 or not math.isfinite(numerator / denominator):
        return None
    return float(10.0 * math.log10(numerator / denominator))


def snr(reference: np.ndarray, estimate: np.ndarray) -> float | None:
    """`10 log10(||x||^2 / ||x - x_hat||^2)` in dB."""
    reference, estimate = _flat(reference), _flat(estimate)
    return _ratio_db(float(reference @ reference), float(np.sum((reference - estimate) ** 2)))


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float | None:
    """Scale-invariant SDR: `alpha x` against `x_hat - alpha x`, `alpha = <x_hat, x>/||x||^2`."""
    reference, estimate = _flat(reference), _flat(estimate)
    energy = float(reference @ reference)
    if energy <= 0.0:
        return None
    target = (float(estimate @ reference) / energy) * reference
    return _ratio_db(float(target @ target), float(np.sum((estimate - target) ** 2)))


def is_silent(reference: np.ndarray) -> bool:
    """The mod-cos code's rule: `10 log10(||v||_2) < -10` (a non-squared norm)."""
    norm = float(np.linalg.norm(_flat(reference)))
    return norm == 0.0 or 10.0 * math.log10(norm) < SILENCE_DB


def segment_values(
    metric: Callable[[np.ndarray, np.ndarray], float | None],
    reference: np.ndarray,
    estimate: np.ndarray,
    segment_samples: int,
) -> list[float]:
    """`metric` on non-overlapping segments of `(channels, samples)` signals; silent reference
    segments and undefined values are dropped; a trailing partial segment is kept when it is at
    least half a segment long."""
    reference, estimate = np.atleast_2d(reference), np.atleast_2d(estimate)
    values = []
    for start in range(0, reference.shape[-1], segment_samples):
        stop = start + segment_samples
        if reference.shape[-1] - start < segment_samples // 2:
            break
        piece = reference[:, start:stop]
        if is_silent(piece):
            continue
        value = metric(piece, estimate[:, start:stop])
        if value is not None:
            values.append(value)
    return values


def segment_median(
    metric: Callable[[np.ndarray, np.ndarray], float | None],
    reference: np.ndarray,
    estimate: np.ndarray,
    sample_rate: int,
    segment_seconds: float = 1.0,
) -> float | None:
    """Median of `metric` over 1 s non-silent segments; None when every segment is silent."""
    values = segment_values(metric, reference, estimate, int(round(segment_seconds * sample_rate)))
    return float(np.median(values)) if values else None


def bss_eval(
    references: np.ndarray, estimates: np.ndarray, filter_length: int = 512
) -> dict[str, list[float | None]]:
    """BSS Eval (sources) through fast_bss_eval, no permutation search.

    `references`, `estimates`: `(sources, samples)`. Returns `{"sdr": [...], "sir": [...],
    "sar": [...]}` in dB per source; None where a reference is silent or a value is not finite.
    """
    import fast_bss_eval

    _numpy_one_solve_semantics()
    references = np.asarray(references, dtype=np.float64)
    estimates = np.asarray(estimates, dtype=np.float64)
    silent = [not np.any(reference) for reference in references]
    if all(silent) or references.shape[-1] <= filter_length:
        return {key: [None] * len(references) for key in ("sdr", "sir", "sar")}
    # A silent reference makes the projection singular; a tiny dither keeps the others exact
    # to far below a hundredth of a dB and its own value is reported as None.
    safe = references.copy()
    for index, is_empty in enumerate(silent):
        if is_empty:
            safe[index] = np.random.default_rng(index).standard_normal(safe.shape[-1]) * 1e-9
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        sdr, sir, sar = fast_bss_eval.bss_eval_sources(
            safe, estimates, filter_length=filter_length, compute_permutation=False
        )

    def clean(values: np.ndarray) -> list[float | None]:
        return [None if silent[i] or not np.isfinite(v) else float(v) for i, v in enumerate(values)]

    return {"sdr": clean(sdr), "sir": clean(sir), "sar": clean(sar)}


def _numpy_one_solve_semantics() -> None:
    """Let fast_bss_eval 0.1.4's NumPy backend run on NumPy 2.

    It calls `np.linalg.solve(a (..., M, M), b (..., M))`, which NumPy 1 read as a stack of
    vectors and NumPy 2 reads as one matrix. The backend's module gets a `np` whose `solve`
    keeps the NumPy 1 reading; nothing else changes. (The torch backend is no way out: after a
    `torch.set_num_threads` change, oneMKL's batched LU in torch 2.13's CPU build fails.)
    """
    import types

    from fast_bss_eval.numpy import metrics as backend

    if getattr(backend.np, "one_solve_semantics", False):
        return

    def solve(matrix: np.ndarray, right: np.ndarray) -> np.ndarray:
        if right.ndim == matrix.ndim - 1:
            return np.linalg.solve(matrix, right[..., None])[..., 0]
        return np.linalg.solve(matrix, right)

    class NumpyProxy(types.ModuleType):
        one_solve_semantics = True
        linalg = types.SimpleNamespace(
            **{
                name: getattr(np.linalg, name)
                for name in dir(np.linalg)
                if not name.startswith("__")
            }
            | {"solve": solve}
        )

        def __getattr__(self, name: str):
            return getattr(np, name)

    backend.np = NumpyProxy("numpy")


def target_bss_eval(
    target: np.ndarray,
    estimate: np.ndarray,
    mixture: np.ndarray,
    sample_rate: int,
    segment_seconds: float = 1.0,
) -> dict[str, float | None]:
    """SDR, SIR and SAR of one stem against the rest of the mixture, as medians over 1 s
    non-silent segments, computed on the mono downmix (`(channels, samples)` in).

    The two-source problem is (target, mixture - target) against (estimate, mixture -
    estimate), so SIR measures leakage of everything else in the mixture.
    """

    def mono(signal: np.ndarray) -> np.ndarray:
        return np.atleast_2d(signal).mean(axis=0, dtype=np.float64)

    target, estimate, mixture = mono(target), mono(estimate), mono(mixture)
    segment = int(round(segment_seconds * sample_rate))
    collected: dict[str, list[float]] = {"sdr": [], "sir": [], "sar": []}
    for start in range(0, len(target) - segment // 2, segment):
        piece = slice(start, start + segment)
        if is_silent(target[piece]):
            continue
        references = np.stack([target[piece], mixture[piece] - target[piece]])
        estimates = np.stack([estimate[piece], mixture[piece] - estimate[piece]])
        result = bss_eval(references, estimates)
        for key in collected:
            if result[key][0] is not None:
                collected[key].append(result[key][0])
    return {
        key: (float(np.median(values)) if values else None) for key, values in collected.items()
    }
