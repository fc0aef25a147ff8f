"""Reproduce the mod-cos paper (EUSIPCO 2020, FACTS.md section 2): Tables 1 and 2, figures.

- **Table 1** (decoder variants): each variant is trained with TV on A_m and scored by the
  reconstruction SI-SDR of the vocals (auto-encoding v), beside the paper's numbers.
- **Table 2** (binary-mask separation): the paper model with C in {400, 800, 1600} and TV on
  A_m or on A_v, scored by the SI-SDR of the informed binary-mask separation
  `D(E(m) * 1[E(v)/E(b) > 0.5])`, against the STFT baseline with the same rule and the mixture
  phase (`eusipco2020`: Hamming 2048 / hop 384, the paper; `eusipco2020-code`: Hann / hop 256).
  Reconstruction SI-SDR and the additivity error are reported too.

Scores are medians over every non-overlapping, non-silent 1 s segment of the test tracks
(`modcos.segment_scores`). Training follows the paper: Adam lr 1e-4, batch 8, seed 218, 10
passes, segments of 1 s with 50 % overlap, re-paired within sets of 4 tracks.

`--quick` [open] scales everything down so that the whole run takes minutes on a CPU, and says
so in its report: C in {16, 32, 64} (Table 1 at 32), kernels of 256 samples with hop 64,
segments of 8192 samples, at most 6 training tracks, 2 passes of at most 25 batches with
lr 1e-3, and at most 3 test tracks cut to 8 s. Its numbers exercise the code path; they are not
the paper's experiment. `--pretrained` skips training and scores the shipped demo weights
(`resources/modcos.pt`) in place of the Table 2 models.

Writes `table1.{md,csv}`, `table2.{md,csv}`, `kernels.png`, `representation.png`,
`report.md`, `summary.json` and `checkpoints/<model>.pt` (reused by a rerun into the same folder
when config and training match).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explorer.audio.frontends import make_frontend
from explorer.audio.io import atomic_output
from explorer.data.track import ACCOMPANIMENT, Track
from explorer.device import describe, resolve_device
from explorer.errors import InputError
from explorer.jobs import check_writable
from explorer.models import modcos, registry
from explorer.progress import Job, Progress
from explorer.reproduce import ReproduceOptions
from explorer.training import modcos_task
from explorer.training.data import TrackSource, TrainingData, resolve_data, test_tracks
from explorer.training.loop import TrainingConfig, seed_everything, train

# Table 1 rows: label, kind, paper's reconstruction SI-SDR (dB).
TABLE1 = (
    ("conv / cos (f)", "modcos-cos-linear", 20.83),
    ("conv / cos (f^2)", "modcos-cos", 22.34),
    ("conv / conv", "modcos-conv", 31.25),
    ("conv / conv (tanh)", "modcos-conv-tanh", 30.50),
    ("conv / mod-cos (f)", "modcos-linear", 28.72),
    ("conv / mod-cos (f^2)", "modcos", 32.62),
    ("sinc / mod-cos (f^2)", "modcos-sinc", 26.82),
)
PAPER_COMPONENTS = (400, 800, 1600)
# Table 2: the paper's masked-separation SI-SDR by (TV source, C), and the STFT baseline.
PAPER_SEPARATION = {
    "mixture": {400: 5.93, 800: 6.28, 1600: 6.68},
    "vocals": {400: 3.66, 800: 4.39, 1600: 4.68},
}
PAPER_STFT = 8.80
STFT_PRESETS = ("eusipco2020", "eusipco2020-code")


@dataclass(frozen=True)
class Plan:
    """The run's scale. `components` are Table 2's C values (the first Table-1 size is
    `table1_components`); `model` holds size overrides for every model."""

    components: tuple[int, ...]
    table1_components: int
    model: dict[str, Any]
    training: TrainingConfig
    train_tracks: int | None
    test_tracks: int | None
    test_seconds: float | None
    quick: bool


def plan(options: ReproduceOptions, overrides: dict[str, Any] | None = None) -> Plan:
    if options.quick:
        chosen = Plan(
            (16, 32, 64),
            32,
            {"kernel_length": 256, "hop_length": 64, "segment_samples": 8192},
            modcos_task.paper_training_config(epochs=2, max_steps_per_epoch=25, learning_rate=1e-3),
            6,
            3,
            8.0,
            True,
        )
    else:
        chosen = Plan(
            PAPER_COMPONENTS, 800, {}, modcos_task.paper_training_config(), None, None, None, False
        )
    if options.seeds not in (None, 1):
        raise InputError("the mod-cos paper trains one seed (218); drop --seeds")
    if overrides:
        chosen = Plan(**{**chosen.__dict__, **overrides})
    return chosen


# ---------------------------------------------------------------- the job
def reproduce_job(
    options: ReproduceOptions, overrides: dict[str, Any] | None = None
) -> Job[dict[str, Any]]:
    device = resolve_device(options.device)
    settings = plan(options, overrides)
    check_writable(options.out)
    training_data, tests = _data(options.data, settings)
    yield Progress(0, 1, f"{len(tests)} test tracks")
    models: dict[str, modcos.ModCosAutoencoder] = {}
    table1, table2 = [], []
    if not options.pretrained:
        for index, (label, kind, paper) in enumerate(TABLE1):
            config = _config(settings, kind, settings.table1_components, "mixture")
            model = yield from _trained(config, settings, training_data, options.out, device)
            models[_name(config)] = model
            scores = _scores(model, tests)
            table1.append(
                {
                    "decoder": label,
                    "kind": kind,
                    "components": config.components,
                    "reconstruction_si_sdr": scores["reconstruction_si_sdr"],
                    "paper": paper,
                    "segments": scores["segments"],
                }
            )
            yield Progress(index + 1, len(TABLE1), f"Table 1: {label}")
        for tv_on in ("mixture", "vocals"):
            for components, paper_components in zip(
                settings.components, PAPER_COMPONENTS, strict=True
            ):
                config = _config(settings, "modcos", components, tv_on)
                if _name(config) not in models:
                    models[_name(config)] = yield from _trained(
                        config, settings, training_data, options.out, device
                    )
                scores = _scores(models[_name(config)], tests)
                table2.append(
                    _row2(
                        f"mod-cos, TV on A_{tv_on[0]}",
                        components,
                        scores,
                        PAPER_SEPARATION[tv_on][paper_components],
                    )
                )
                yield Progress(
                    len(table2),
                    2 * len(settings.components),
                    f"Table 2: C={components}, TV on A_{tv_on[0]}",
                )
    else:
        model = modcos.builtin("modcos", device).model
        models["shipped"] = model
        table2.append(
            _row2(
                "shipped demo weights (resources/modcos.pt)",
                model.config.components,
                _scores(model, tests),
                None,
            )
        )
    for preset in STFT_PRESETS:
        frontend = make_frontend(preset).to(device)
        table2.append(
            _row2(
                f"STFT ({preset})",
                frontend.bins,
                _scores(frontend, tests),
                PAPER_STFT if preset == "eusipco2020" else None,
            )
        )
    featured = models.get(
        _name(_config(settings, "modcos", settings.table1_components, "mixture"))
    ) or next(iter(models.values()))
    outputs = _write(options.out, settings, table1, table2, featured, tests[0])
    report = _report(options, settings, table1, table2, len(tests))
    outputs["report.md"] = _write_text(options.out / "report.md", report)
    summary = {
        "paper": "eusipco2020",
        "data": options.data,
        "quick": options.quick,
        "pretrained": options.pretrained,
        "device": describe(device),
        "test_tracks": [track.name for track in tests],
        "table1": table1,
        "table2": table2,
        "outputs": outputs,
        "report": report,
    }
    outputs["summary.json"] = _write_text(
        options.out / "summary.json", json.dumps(summary, indent=2, default=_json) + "\n"
    )
    return summary


def _config(settings: Plan, kind: str, components: int, tv_on: str) -> modcos.ModCosConfig:
    return modcos.ModCosConfig.from_dict(
        {**settings.model, "kind": kind, "components": components, "tv_on": tv_on}
    )


def _name(config: modcos.ModCosConfig) -> str:
    return f"{config.kind}-C{config.components}-tv-{config.tv_on}"


def _row2(
    label: str, components: int, scores: dict[str, Any], paper: float | None
) -> dict[str, Any]:
    return {
        "representation": label,
        "components": components,
        "separation_si_sdr": scores["separation_si_sdr"],
        "paper": paper,
        "reconstruction_si_sdr": scores["reconstruction_si_sdr"],
        "additivity": scores["additivity"],
        "mixture_si_sdr": scores["mixture_si_sdr"],
        "segments": scores["segments"],
    }


# ---------------------------------------------------------------- data
def _data(spec: str, settings: Plan) -> tuple[TrainingData, list[Track]]:
    data = resolve_data(spec)
    if settings.train_tracks is not None:
        # Few tracks: load (or render) them once for all the models trained.
        data = TrainingData(
            data.description,
            tuple(map(_loaded, data.train[: settings.train_tracks])),
            tuple(map(_loaded, data.validation[:2])),
        )
    sources: list[TrackSource] = test_tracks(spec)
    if settings.test_tracks is not None:
        sources = sources[: settings.test_tracks]
    tests = []
    for source in sources:
        track = source.load()
        if not track.has_stems("vocals", ACCOMPANIMENT):
            raise InputError(f"test track '{track.name}' needs vocals and accompaniment stems")
        if settings.test_seconds is not None:
            track = track.excerpt(0.0, settings.test_seconds)
        tests.append(track)
    if not tests:
        raise InputError(f"no test tracks in {spec}")
    return data, tests


def _loaded(source: TrackSource) -> TrackSource:
    track = source.load()
    return TrackSource(source.name, lambda: track)


# ---------------------------------------------------------------- training and scoring
def _trained(
    config: modcos.ModCosConfig, settings: Plan, data: TrainingData, out: Path, device: torch.device
) -> Job[modcos.ModCosAutoencoder]:
    path = out / "checkpoints" / f"{_name(config)}.pt"
    if path.is_file():
        payload = registry.load_checkpoint(path, config.kind)
        same_training = payload["provenance"].get("training") == settings.training.to_dict()
        if (
            payload["config"] == config.to_dict()
            and same_training
            and (payload.get("extra") or {}).get("finished")
        ):
            yield Progress(0, 1, f"{_name(config)}: reusing {path.name}")
            return modcos.build_model(config, payload["state_dict"]).to(device).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    seed_everything(settings.training.seed)
    task = modcos_task.ModCosTask(config, data)
    yield from train(task, settings.training, device, path)
    model = task.network.eval()
    model.sort_()
    return model


def _scores(model, tests: list[Track]) -> dict[str, Any]:
    """Medians over the pooled segments of every test track."""
    pooled: dict[str, list[float]] = {}
    for track in tests:
        for key, values in modcos.segment_scores(model, track).items():
            pooled.setdefault(key, []).extend(values)
    result: dict[str, Any] = modcos.median_scores(pooled)
    result["segments"] = len(pooled.get("separation_si_sdr", []))
    return result


# ---------------------------------------------------------------- writing
def _format(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.2f}"


def _markdown(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    lines = ["| " + " | ".join(title for title, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [
            row[key]
            if isinstance(row[key], str)
            else _format(row[key])
            if isinstance(row[key], float) or row[key] is None
            else str(row[key])
            for _, key in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


TABLE1_COLUMNS = [
    ("decoder", "decoder"),
    ("C", "components"),
    ("reconstruction SI-SDR (dB)", "reconstruction_si_sdr"),
    ("paper (dB)", "paper"),
    ("segments", "segments"),
]
TABLE2_COLUMNS = [
    ("representation", "representation"),
    ("C / bins", "components"),
    ("masked separation SI-SDR (dB)", "separation_si_sdr"),
    ("paper (dB)", "paper"),
    ("reconstruction SI-SDR (dB)", "reconstruction_si_sdr"),
    ("additivity error", "additivity"),
    ("mixture SI-SDR (dB)", "mixture_si_sdr"),
    ("segments", "segments"),
]


def _write(
    out: Path,
    settings: Plan,
    table1: list[dict],
    table2: list[dict],
    model: modcos.ModCosAutoencoder,
    track: Track,
) -> dict[str, str]:
    outputs = {}
    for name, rows, columns in (
        ("table1", table1, TABLE1_COLUMNS),
        ("table2", table2, TABLE2_COLUMNS),
    ):
        if not rows:
            continue
        outputs[f"{name}.md"] = _write_text(out / f"{name}.md", _markdown(rows, columns))
        with (
            atomic_output(out / f"{name}.csv") as temporary,
            open(temporary, "w", newline="") as handle,
        ):
            writer = csv.DictWriter(handle, [key for _, key in columns])
            writer.writeheader()
            writer.writerows({key: row[key] for _, key in columns} for row in rows)
        outputs[f"{name}.csv"] = str(out / f"{name}.csv")
    outputs["kernels.png"] = str(plot_kernels(model, out / "kernels.png"))
    outputs["representation.png"] = str(
        plot_representation(model, track, out / "representation.png")
    )
    return outputs


def _report(
    options: ReproduceOptions, settings: Plan, table1: list[dict], table2: list[dict], tests: int
) -> str:
    lines = ["# Mod-cos autoencoder (EUSIPCO 2020): reproduction", ""]
    if settings.quick:
        lines += [
            "**Quick run (scaled down, not the paper's experiment):** "
            f"C in {list(settings.components)} instead of {list(PAPER_COMPONENTS)} (Table 1 at C={settings.table1_components}), "
            f"kernels of {settings.model['kernel_length']} samples with hop {settings.model['hop_length']} instead of 2048 / 384, "
            f"segments of {settings.model['segment_samples']} samples, {settings.training.epochs} passes of at most "
            f"{settings.training.max_steps_per_epoch} batches at lr {settings.training.learning_rate:g}, "
            f"at most {settings.train_tracks} training and {settings.test_tracks} test tracks of {settings.test_seconds:g} s. "
            "The paper's column is for orientation only.",
            "",
        ]
    lines += [
        f"Data: `{options.data}`; {tests} test tracks; medians over non-silent 1 s segments.",
        "",
    ]
    if table1:
        lines += [
            "## Table 1: decoder variants (reconstruction SI-SDR of the vocals)",
            "",
            _markdown(table1, TABLE1_COLUMNS),
        ]
    lines += [
        "## Table 2: informed binary-mask separation `1[E(v)/E(b) > 0.5]`",
        "",
        _markdown(table2, TABLE2_COLUMNS),
    ]
    return "\n".join(lines)


def _write_text(path: Path, text: str) -> str:
    with atomic_output(path) as temporary:
        Path(temporary).write_text(text)
    return str(path)


def _json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ---------------------------------------------------------------- figures
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


@torch.no_grad()
def plot_kernels(model: modcos.ModCosAutoencoder, path: Path, shown: int = 6) -> Path:
    """The sorted kernels (image), a few kernels with their envelopes, the learned frequencies
    against the mel initialisation, and the magnitude responses."""
    pyplot = _pyplot()
    probes = modcos.kernel_probes(model)
    kernels = probes["kernels/decoder"]
    rate = kernels.sample_rate
    figure, axes = pyplot.subplots(2, 2, figsize=(12, 8))
    limit = float(np.abs(kernels.values).max()) or 1.0
    axes[0, 0].imshow(
        kernels.values,
        aspect="auto",
        origin="lower",
        cmap="RdBu_r",
        vmin=-limit,
        vmax=limit,
        extent=(0, 1000 * kernels.values.shape[1] / rate, 0, kernels.values.shape[0]),
    )
    axes[0, 0].set(
        title="kernels w_c (sorted by frequency)", xlabel="time (ms)", ylabel="component"
    )
    time = 1000 * np.arange(kernels.values.shape[1]) / rate
    picks = np.linspace(0, kernels.values.shape[0] - 1, shown).round().astype(int)
    for offset, index in enumerate(picks):
        scale = 0.45 / (np.abs(kernels.values[index]).max() or 1.0)
        axes[0, 1].plot(time, offset + scale * kernels.values[index], linewidth=0.6)
        if kernels.envelopes is not None:
            axes[0, 1].plot(time, offset + scale * kernels.envelopes[index], "k", linewidth=0.8)
    labels = [
        f"c={index}"
        + (f", {kernels.frequencies[index]:.0f} Hz" if kernels.frequencies is not None else "")
        for index in picks
    ]
    axes[0, 1].set_yticks(range(shown), labels)
    axes[0, 1].set(title="kernels and envelopes b_c (black)", xlabel="time (ms)")
    peaks = kernels.extra["peak_frequencies"]
    axes[1, 0].semilogy(kernels.extra["initial_frequencies"], "k--", label="mel initialisation")
    if kernels.frequencies is not None:
        axes[1, 0].semilogy(
            np.maximum(kernels.frequencies, 1e-3), label="learned f_c^p * fs (sorted)"
        )
    axes[1, 0].semilogy(np.maximum(peaks, 1e-3), ".", markersize=2, label="magnitude-response peak")
    axes[1, 0].set(title="kernel frequencies", xlabel="component", ylabel="Hz")
    axes[1, 0].legend()
    responses = kernels.extra["magnitude_response_db"]
    axes[1, 1].imshow(
        np.maximum(responses, -60),
        aspect="auto",
        origin="lower",
        cmap="magma",
        extent=(0, rate / 2000, 0, responses.shape[0]),
    )
    axes[1, 1].set(title="magnitude responses (dB)", xlabel="frequency (kHz)", ylabel="component")
    figure.suptitle(
        f"{model.config.kind}: C={model.config.components}, L={model.config.kernel_length}, S={model.config.hop_length}"
    )
    figure.tight_layout()
    return _save(pyplot, figure, path)


@torch.no_grad()
def plot_representation(
    model: modcos.ModCosAutoencoder, track: Track, path: Path, seconds: float = 3.0
) -> Path:
    """A_m, A_v and the informed mask for the first seconds of a track (log scale)."""
    pyplot = _pyplot()
    excerpt = track.resampled(model.sample_rate).mono().excerpt(0.0, seconds)
    device = next(model.parameters()).device
    signal = {
        name: torch.from_numpy(np.ascontiguousarray(excerpt.signal(name))).to(device)
        for name in ("mixture", "vocals", ACCOMPANIMENT)
    }
    shown = {
        "A_m (mixture)": model.encode(signal["mixture"])[0],
        "A_v (vocals)": model.encode(signal["vocals"])[0],
    }
    mask = modcos.informed_mask(model, signal["vocals"], signal[ACCOMPANIMENT]).values[0]
    figure, axes = pyplot.subplots(1, 3, figsize=(15, 4.5))
    extent = (0, excerpt.seconds, 0, model.config.components)
    for axis, (title, values) in zip(axes, shown.items(), strict=False):
        decibels = 20 * np.log10(np.maximum(values.cpu().numpy(), 1e-6))
        top = float(decibels.max())
        axis.imshow(
            decibels,
            aspect="auto",
            origin="lower",
            cmap="magma",
            vmin=top - 60,
            vmax=top,
            extent=extent,
        )
        axis.set(title=f"{title}, dB", xlabel="time (s)", ylabel="component (ascending frequency)")
    axes[2].imshow(mask.cpu().numpy(), aspect="auto", origin="lower", cmap="gray", extent=extent)
    axes[2].set(title="informed mask 1[E(v)/E(b) > 0.5]", xlabel="time (s)")
    figure.suptitle(f"{excerpt.name}: representation of {model.config.kind}")
    figure.tight_layout()
    return _save(pyplot, figure, path)


def _save(pyplot, figure, path: Path) -> Path:
    with atomic_output(path) as temporary:
        figure.savefig(temporary, dpi=110, format="png")
    pyplot.close(figure)
    return path
