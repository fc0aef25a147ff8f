"""Reproduce the DRDNN paper (AAAI 2018, FACTS.md section 3): train MLP, DCNN, DRNN and DRDNN
and the three DRDNN ablations under one protocol, separate the test tracks, and write

- `table1.{md,csv,png}`: the paper's Table 1 layout, SIR / SDR / SAR (dB) x vocals, drums, bass,
  other x MLP, DCNN, DRNN, DRDNN, beside the paper's vocals numbers;
- `ablation.{md,csv,png}`: SIR per stem, training time, training throughput and size of DRDNN,
  DRDNN-wDCP (no decoupling), DRDNN-wDR (no reduction) and DRDNN-noMask (no masks);
- `loss_curves.{md,csv,png}`: training and validation loss per epoch with and without
  decoupling;
- `report.md` (all of it with the paper's numbers), `summary.json`, and `checkpoints/`.

Scores: BSS Eval (fast_bss_eval, 512-tap filter) on the four mono stems together, on 1 s
segments; a stem's value on a track is the median over segments where its reference is not
silent, and the table gives the median over test tracks (the SiSEC/DSD100 way).

`--quick` [open]: the `small` sizes, 4 epochs of at most 8 batches of 8 examples (learning rate
1e-3), on `synth:4x8` when `--data synth` is given (test: 2 new 8 s songs), or on 4 training
tracks, 1 validation track and 20 s excerpts of 2 test tracks of a real dataset. The full run
trains the `paper-scale` sizes with the loop's plateau schedule for up to 100 epochs.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from explorer.audio.metrics import bss_eval, is_silent
from explorer.data.track import STEM_NAMES, Track
from explorer.device import describe, resolve_device
from explorer.errors import InputError
from explorer.jobs import check_writable
from explorer.models import registry
from explorer.progress import Job, Progress
from explorer.reproduce import ReproduceOptions
from explorer.training import tasks
from explorer.training.data import TrackSource, TrainingData, resolve_data, test_tracks
from explorer.training.loop import TrainingConfig, seed_everything, train

TABLE_MODELS = {"MLP": {"kind": "mlp"}, "DCNN": {"kind": "dcnn"}, "DRNN": {"kind": "drnn"},
                "DRDNN": {"kind": "drdnn"}}  # fmt: skip
ABLATIONS = {
    "DRDNN": {"kind": "drdnn"},
    "DRDNN-wDCP": {"kind": "drdnn", "decoupling": False},
    "DRDNN-wDR": {"kind": "drdnn", "reduction": False},
    "DRDNN-noMask": {"kind": "drdnn", "masking": False},
}
METRICS = ("sir", "sdr", "sar")
# FACTS 3 [paper]: DSD100, 10-fold, vocals.
PAPER_VOCALS_SDR = {"MLP": 1.62, "DCNN": 2.05, "DRNN": 3.02, "DRDNN": 3.15}
PAPER_DRDNN_VOCALS_SIR = 9.39
PAPER_MASK_SIR_GAIN = 3.5
SEGMENT_SECONDS = 1.0


@dataclass(frozen=True)
class Plan:
    """How big a run is. `data` replaces a bare `synth` spec; `train_tracks` / `test_tracks` cap
    the tracks (0 = all); `excerpt_seconds` cuts test tracks (0 = whole)."""

    preset: str
    training: TrainingConfig
    data: str | None = None
    train_tracks: int = 0
    validation_tracks: int = 0
    test_tracks: int = 0
    excerpt_seconds: float = 0.0
    cache_tracks: bool = False


def plan(options: ReproduceOptions) -> Plan:
    if options.quick:
        return Plan(
            "small",
            TrainingConfig(epochs=4, batch_size=8, learning_rate=1e-3, max_steps_per_epoch=8,
                           halve_patience=10**6, stop_patience=10**6),
            data="synth:4x8", train_tracks=4, validation_tracks=1, test_tracks=2,
            excerpt_seconds=20.0, cache_tracks=True,
        )  # fmt: skip
    return Plan("paper-scale", TrainingConfig(epochs=100, batch_size=16, learning_rate=1e-3))


def reproduce_job(options: ReproduceOptions, settings: Plan | None = None) -> Job[dict[str, Any]]:
    """Train, separate, score and write every table (see the module docstring)."""
    settings = settings or plan(options)
    device = resolve_device(options.device)
    check_writable(options.out)
    spec = settings.data if settings.data and options.data == "synth" else options.data
    names = list(dict.fromkeys([*TABLE_MODELS, *ABLATIONS]))
    configs = {**TABLE_MODELS, **ABLATIONS}
    trained: dict[str, dict[str, Any]] = {}
    if options.pretrained:
        for name in names:
            trained[name] = _pretrained(name, configs[name], device)
    else:
        data = _limit(resolve_data(spec), settings)
        for index, name in enumerate(names):
            job = _train(name, configs[name], data, settings, options.out, device)
            trained[name] = yield from _relabel(job, f"train {name}", index, len(names))
    sources = test_tracks(spec)
    if settings.test_tracks:
        sources = sources[: settings.test_tracks]
    if not sources:
        raise InputError(f"no test tracks in {options.data}")
    scores: dict[str, list[dict[str, dict[str, float | None]]]] = {name: [] for name in names}
    for index, source in enumerate(sources):
        track = _test_excerpt(source.load(), settings.excerpt_seconds)
        track.require_stems(*STEM_NAMES)
        for name in names:
            separated = trained[name]["separator"].separate(track)
            scores[name].append(score_track(track, separated))
        yield Progress(index + 1, len(sources), f"scored test track {index + 1}/{len(sources)}")
    summary = write_outputs(options.out, trained, scores, settings, spec, device)
    yield Progress(1, 1, "tables written")
    return summary


# ---------------------------------------------------------------- training
def _limit(data: TrainingData, settings: Plan) -> TrainingData:
    train_part = data.train[: settings.train_tracks] if settings.train_tracks else data.train
    validation = data.validation
    if settings.validation_tracks:
        validation = validation[: settings.validation_tracks]
    if settings.cache_tracks:  # seven models read the same few tracks: load (render) them once
        train_part, validation = tuple(map(_cached, train_part)), tuple(map(_cached, validation))
    return replace(data, train=train_part, validation=validation)


def _cached(source: TrackSource) -> TrackSource:
    loaded: list[Track] = []

    def load() -> Track:
        if not loaded:
            loaded.append(source.load())
        return loaded[0]

    return TrackSource(source.name, load)


def _model_config(values: dict[str, Any], settings: Plan) -> dict[str, Any]:
    return {**values, "preset": settings.preset}


def _train(
    name: str,
    values: dict[str, Any],
    data: TrainingData,
    settings: Plan,
    out: Path,
    device: torch.device,
) -> Job[dict[str, Any]]:
    """Train one model; returns its separator, history, wall time and throughput."""
    config = settings.training
    seed_everything(config.seed)
    task = tasks.build_task(values["kind"], _model_config(values, settings), data)
    path = out / "checkpoints" / f"{name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    frames_per_step = config.batch_size * task.config.batch_frames
    steps = [0]
    train_seconds = [0.0]

    def counted(job: Job) -> Job:
        # Time only the optimisation steps (data preparation and validation excluded).
        last = time.perf_counter()
        try:
            while True:
                progress = next(job)
                now = time.perf_counter()
                if progress.payload and "step" in progress.payload:
                    train_seconds[0] += now - last
                    steps[0] = max(steps[0], progress.done)
                yield progress
                last = time.perf_counter()
        except StopIteration as stop:
            return stop.value

    started = time.perf_counter()
    result = yield from counted(train(task, config, device, path))
    wall = time.perf_counter() - started
    separator = registry.load_separator(str(path), device)
    parameters = sum(parameter.numel() for parameter in task.network.parameters())
    frames = steps[0] * frames_per_step
    return {
        "separator": separator,
        "variant": task.config.variant,
        "history": result["history"],
        "seconds": wall,
        "train_seconds": train_seconds[0],
        "frames_per_second": frames / train_seconds[0] if train_seconds[0] > 0 else None,
        "parameters": parameters,
    }


def _pretrained(name: str, values: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Shipped weights where they exist (the plain kinds only; ablations must be trained)."""
    if len(values) > 1:
        raise InputError(
            f"--pretrained: no shipped weights for the ablation {name}; drop --pretrained"
        )
    separator = registry.load_separator(values["kind"], device)
    return {"separator": separator, "variant": separator.config.variant, "history": [],
            "seconds": None, "train_seconds": None, "frames_per_second": None,
            "parameters": sum(p.numel() for p in separator.network.parameters())}  # fmt: skip


def _relabel(job: Job, message: str, index: int, count: int) -> Job:
    try:
        while True:
            progress = next(job)
            yield Progress(index + progress.fraction, count, f"{message}: {progress.message}"[:80],
                           progress.payload)  # fmt: skip
    except StopIteration as stop:
        return stop.value


# ---------------------------------------------------------------- scoring
def _test_excerpt(track: Track, seconds: float) -> Track:
    """Quick runs: `seconds` from the middle of a long test track."""
    if not seconds or track.seconds <= seconds:
        return track
    return track.excerpt((track.seconds - seconds) / 2, seconds)


def score_track(
    track: Track, estimates: dict[str, np.ndarray]
) -> dict[str, dict[str, float | None]]:
    """BSS Eval of the four mono stems together on 1 s segments: `{stem: {sir, sdr, sar}}`,
    medians over the segments where the stem's reference is not silent (None if none is)."""
    rate = track.sample_rate
    references = np.stack([track.stems[stem].mean(axis=0) for stem in STEM_NAMES])
    outputs = np.stack([np.atleast_2d(estimates[stem]).mean(axis=0) for stem in STEM_NAMES])
    segment = int(round(SEGMENT_SECONDS * rate))
    values: dict[str, dict[str, list[float]]] = {s: {m: [] for m in METRICS} for s in STEM_NAMES}
    for start in range(0, references.shape[-1] - segment // 2, segment):
        piece = slice(start, start + segment)
        silent = [is_silent(reference) for reference in references[:, piece]]
        if all(silent):
            continue
        result = bss_eval(references[:, piece], outputs[:, piece])
        for index, stem in enumerate(STEM_NAMES):
            for metric in METRICS:
                value = result[metric][index]
                if not silent[index] and value is not None:
                    values[stem][metric].append(value)
    return {stem: {metric: (float(np.median(found)) if found else None)
                   for metric, found in by_metric.items()}
            for stem, by_metric in values.items()}  # fmt: skip


def _median(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None and math.isfinite(value)]
    return float(statistics.median(known)) if known else None


def table(
    scores: dict[str, list[dict]], names: list[str]
) -> dict[str, dict[str, dict[str, float | None]]]:
    """`{metric: {model: {stem: median over tracks}}}`."""
    return {metric: {name: {stem: _median([track[stem][metric] for track in scores[name]])
                            for stem in STEM_NAMES} for name in names}
            for metric in METRICS}  # fmt: skip


# ---------------------------------------------------------------- writing
def _cell(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _write(out: Path, stem: str, header: list[str], rows: list[list[Any]], title: str) -> str:
    """`stem.csv` and `stem.md`; returns the Markdown."""
    with open(out / f"{stem}.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([["" if value is None else value for value in row] for row in rows])
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(v) if isinstance(v, float) or v is None else str(v)
                                       for v in row) + " |")  # fmt: skip
    markdown = "\n".join(lines) + "\n"
    (out / f"{stem}.md").write_text(markdown)
    return markdown


def write_outputs(
    out: Path,
    trained: dict[str, dict[str, Any]],
    scores: dict[str, list[dict]],
    settings: Plan,
    spec: str,
    device: torch.device,
) -> dict[str, Any]:
    main = table(scores, list(TABLE_MODELS))
    ablation = table(scores, list(ABLATIONS))
    rows = []
    for metric in METRICS:
        for name in TABLE_MODELS:
            paper = (
                PAPER_VOCALS_SDR.get(name)
                if metric == "sdr"
                else (PAPER_DRDNN_VOCALS_SIR if metric == "sir" and name == "DRDNN" else None)
            )
            rows.append([metric.upper(), name, *(main[metric][name][s] for s in STEM_NAMES), paper])
    table1 = _write(out, "table1", ["metric", "model", *STEM_NAMES, "paper vocals"], rows,
                    "Table 1: SIR / SDR / SAR (dB), median over test tracks")  # fmt: skip
    ablation_rows = []
    for name in ABLATIONS:
        info = trained[name]
        ablation_rows.append(
            [
                name,
                *(ablation["sir"][name][s] for s in STEM_NAMES),
                info["train_seconds"],
                info["frames_per_second"],
                info["parameters"],
            ]
        )
    ablation_md = _write(out, "ablation", ["model", *(f"SIR {s}" for s in STEM_NAMES),
                         "training seconds", "training frames/s", "parameters"], ablation_rows,
                         "Ablations: SIR (dB) and training cost")  # fmt: skip
    curve_rows = []
    for name in ("DRDNN", "DRDNN-wDCP"):
        for record in trained[name]["history"]:
            curve_rows.append(
                [name, record["epoch"], record["train_loss"], record["validation_loss"]]
            )
    curves_md = _write(out, "loss_curves", ["model", "epoch", "train loss", "validation loss"],
                       curve_rows, "Training loss with and without decoupling")  # fmt: skip
    _plots(out, main, ablation_rows, trained)
    mask_gain = _difference(
        ablation["sir"]["DRDNN"]["vocals"], ablation["sir"]["DRDNN-noMask"]["vocals"]
    )
    report = "\n".join([
        "# DRDNN reproduction (FACTS 3)", "",
        f"Data: `{spec}`; {len(next(iter(scores.values())))} test track(s); sizes `{settings.preset}`; "
        f"device {describe(device)}; training {json.dumps(settings.training.to_dict())}.", "",
        table1, ablation_md, curves_md,
        "### Beside the paper (DSD100, 10-fold)", "",
        "| quantity | paper | measured |", "|---|---|---|",
        *(f"| {name} vocals SDR | {value:.2f} | {_cell(main['sdr'][name]['vocals'])} |"
          for name, value in PAPER_VOCALS_SDR.items()),
        f"| DRDNN vocals SIR | {PAPER_DRDNN_VOCALS_SIR:.2f} | {_cell(main['sir']['DRDNN']['vocals'])} |",
        f"| vocals SIR gained by masking | about {PAPER_MASK_SIR_GAIN:.1f} | {_cell(mask_gain)} |", "",
    ])  # fmt: skip
    (out / "report.md").write_text(report)
    summary = {
        "paper": "drdnn", "data": spec, "preset": settings.preset, "device": describe(device),
        "table1": main, "ablation": ablation, "mask_vocals_sir_gain": mask_gain,
        "training": {name: {key: info[key] for key in ("variant", "seconds", "train_seconds",
                     "frames_per_second", "parameters", "history")} for name, info in trained.items()},
        "outputs": sorted(path.name for path in out.iterdir() if path.is_file()) + ["report.md"],
        "report": report,
    }  # fmt: skip
    (out / "summary.json").write_text(json.dumps({k: v for k, v in summary.items() if k != "report"},
                                                 indent=2))  # fmt: skip
    return summary


def _difference(first: float | None, second: float | None) -> float | None:
    return None if first is None or second is None else first - second


def _plots(out: Path, main: dict, ablation_rows: list[list], trained: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(1, 3, figsize=(13, 3.6))
    width = 0.2
    for axis, metric in zip(axes, METRICS, strict=True):
        for index, name in enumerate(TABLE_MODELS):
            heights = [main[metric][name][stem] or 0.0 for stem in STEM_NAMES]
            axis.bar(np.arange(4) + (index - 1.5) * width, heights, width, label=name)
        axis.set_xticks(np.arange(4), STEM_NAMES)
        axis.set_title(f"{metric.upper()} (dB)")
        axis.axhline(0.0, color="black", linewidth=0.5)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "table1.png", dpi=100)
    pyplot.close(figure)

    figure, (left, right) = pyplot.subplots(1, 2, figsize=(10, 3.6))
    labels = [row[0] for row in ablation_rows]
    left.bar(labels, [row[1] or 0.0 for row in ablation_rows])
    left.set_title("vocals SIR (dB)")
    right.bar(labels, [row[5] or 0.0 for row in ablation_rows])
    right.set_title("training throughput (frames/s)")
    for axis in (left, right):
        axis.tick_params(axis="x", labelrotation=20, labelsize=8)
    figure.tight_layout()
    figure.savefig(out / "ablation.png", dpi=100)
    pyplot.close(figure)

    figure, axis = pyplot.subplots(figsize=(6, 3.6))
    for name, style in (("DRDNN", "-"), ("DRDNN-wDCP", "--")):
        history = trained[name]["history"]
        epochs = [record["epoch"] for record in history]
        axis.plot(
            epochs, [r["train_loss"] for r in history], style, marker="o", label=f"{name} train"
        )
        axis.plot(epochs, [r["validation_loss"] for r in history], style, marker="x",
                  label=f"{name} validation")  # fmt: skip
    axis.set_xlabel("epoch")
    axis.set_ylabel("loss")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "loss_curves.png", dpi=100)
    pyplot.close(figure)
