"""The Qt-free state of one exploration (DESIGN.md): the track, the model and its results, the
selection, the playhead time, and mask edits with undo and redo.

The GUI only draws this state and forwards the user's intents to it. Every change is announced
as a plain-Python event on `Session.events`, so views subscribe instead of keeping their own
copy of what is shown, and the whole controller is testable without Qt.

Long work (separation, probes, metrics) is not run here: `Session` hands out jobs (generators
yielding Progress, see explorer/progress.py) and takes their results back with `add_result`, so
a GUI runs them in a worker thread and the CLI or a test runs them inline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from explorer.audio.frontends import PRESETS, STFT, make_frontend
from explorer.audio.io import to_mono
from explorer.audio.metrics import segment_median, si_sdr, target_bss_eval
from explorer.data.track import ACCOMPANIMENT, Track
from explorer.device import describe, resolve_device
from explorer.errors import InputError
from explorer.models import probes
from explorer.models.base import Separator
from explorer.models.registry import load_separator
from explorer.progress import Job, Progress

Listener = Callable[..., None]

# Event names (the payload keywords are documented where each is emitted).
TRACK, RESULTS, CURRENT, PROBES, METRICS, SELECTION, TIME, MASK, AUDIO_EDIT, HISTORY = (
    "track",
    "results",
    "current",
    "probes",
    "metrics",
    "selection",
    "time",
    "mask",
    "audio_edit",
    "history",
)

# Probes are computed for an excerpt of at most this long: a mask of a 5-minute track at hop
# 384 would be 35 M cells; 30 s keeps masks and activations a few MB.
PROBE_SECONDS = 30.0
MAX_UNDO = 200


class EventHub:
    """A tiny observer: `subscribe(name, listener)` and `emit(name, **payload)`.

    Listeners run synchronously in the emitting thread, in subscription order. A listener that
    raises does not stop the others; the errors are collected in `errors`, passed to
    `on_error` (the GUI reports them), and re-raised by `emit` only when `strict` (tests)."""

    def __init__(self, strict: bool = False) -> None:
        self._listeners: dict[str, list[Listener]] = {}
        self.strict = strict
        self.errors: list[BaseException] = []
        self.on_error: Callable[[str, BaseException], None] | None = None

    def subscribe(self, name: str, listener: Listener) -> Callable[[], None]:
        """Call `listener(**payload)` on every `emit(name, ...)`; returns an unsubscribe."""
        self._listeners.setdefault(name, []).append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners.get(name, []):
                self._listeners[name].remove(listener)

        return unsubscribe

    def emit(self, name: str, **payload: Any) -> None:
        for listener in list(self._listeners.get(name, [])):
            try:
                listener(**payload)
            except Exception as error:  # a broken view must not break the session
                self.errors.append(error)
                if self.strict:
                    raise
                if self.on_error is not None:
                    self.on_error(name, error)


@dataclass(frozen=True)
class Selection:
    """What the user has selected; every field optional. Times in seconds, frequency in Hz."""

    time_range: tuple[float, float] | None = None
    frequency: float | None = None
    kernel: int | None = None
    matrix_row: int | None = None
    matrix_column: int | None = None
    units: tuple[int, ...] = ()
    block: int = 0


@dataclass
class Separation:
    """One model's result on the current track. `stems` are `(channels, samples)` at the
    track's rate and hold the mask edits (they are what is heard); `original` keeps the model's
    output. `probes` cover `[probe_start, probe_start + probe_seconds)` of the track."""

    model: str
    device: str
    seconds: float
    stems: dict[str, np.ndarray]
    probes: dict[str, probes.Probe] = field(default_factory=dict)
    probe_start: float = 0.0
    probe_seconds: float = 0.0
    metrics: dict[str, dict[str, float | None]] = field(default_factory=dict)
    original: dict[str, np.ndarray] = field(default_factory=dict)
    separator: Separator | None = None  # kept for probes of other blocks and the NCA

    def __post_init__(self) -> None:
        if not self.original:
            self.original = dict(self.stems)


@dataclass(frozen=True)
class MaskEdit:
    """A reversible patch of the mask: rows `[bin_start, bin_stop)` x columns `[frame_start,
    frame_stop)` went from `before` to `after` (both `(bins, frames)` of that box)."""

    label: str
    bin_start: int
    bin_stop: int
    frame_start: int
    frame_stop: int
    before: np.ndarray
    after: np.ndarray
    audio_start: int = 0
    audio_before: np.ndarray | None = None  # what was heard there before: undo is exact


@dataclass(frozen=True)
class AudioEdit:
    """Samples `[start, start + samples.shape[-1])` of `stem` were re-synthesised."""

    stem: str
    start: int
    samples: np.ndarray
    prepared_at: float


class MaskLayer:
    """The editable mask of one stem and what re-synthesises it, in any representation.

    `values (rows, frames)` is the current mask; `original` the model's. `representation
    (channels, rows, frames)` is the mixture excerpt in the mask's front-end: a complex STFT
    (rows are frequency bins) or a model's real learned representation A = E(m) (rows are
    components). `frontend` is any object with the front-end interface of DESIGN.md
    (`hop_length`, `sample_rate`, `sample_span`, `decode_frames`). An edit of frames
    `[start, stop)` decodes only those frames (`decode_frames`) of `representation * values`,
    so its cost does not grow with the track. The edited stem is the mask applied to each
    channel of the mixture (of its mono downmix for mono models), the way mask models produce
    their output."""

    def __init__(
        self,
        probe: probes.Mask,
        frontend: Any,
        representation: torch.Tensor,
        offset: int,
        length: int,
    ) -> None:
        self.probe = probe
        self.stem = probe.stem
        self.frontend = frontend
        self.representation = representation
        self.offset = offset
        self.length = length
        # Rows in Hz for an STFT (bin spacing); None: rows are a learned representation's
        # components, drawn on a component axis.
        self.row_hertz: float | None = (
            frontend.sample_rate / frontend.config.n_fft if isinstance(frontend, STFT) else None
        )
        self.row_label = "Hz" if self.row_hertz is not None else "component"
        # Frames beyond an edited range whose synthesis overlaps its samples: one frame's span
        # (an STFT window, a learned kernel) in hops.
        middle = max(0, representation.shape[-1] // 2)
        first, last = frontend.sample_span(middle, middle + 1, 1 << 62)
        self.reach = -(-(last - first) // frontend.hop_length) + 1
        # Not clipped: a skip-filtering mask may exceed 1, and the edited audio must equal the
        # model's own masking where the user changed nothing.
        self.original = np.asarray(probe.values, dtype=np.float32).copy()
        self.values = self.original.copy()

    @property
    def spectrum(self) -> torch.Tensor:
        """The mixture representation (named for the STFT case; kept for callers)."""
        return self.representation

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape

    def seconds_per_frame(self) -> float:
        return self.frontend.hop_length / self.frontend.sample_rate

    def audio_span(self, frame_start: int, frame_stop: int) -> tuple[int, int]:
        """Track samples `[first, last)` that re-synthesising frames `[start, stop)` rewrites."""
        first, last = self.frontend.sample_span(frame_start, frame_stop, self.length)
        return self.offset + first, self.offset + last

    def synthesise(self, frame_start: int, frame_stop: int) -> tuple[int, np.ndarray]:
        """Re-synthesise frames `[frame_start, frame_stop)`: `(first track sample, (channels,
        span))`, equal to the full decode of the masked excerpt on that span."""
        frames = self.values.shape[1]
        low, high = max(0, frame_start - self.reach), min(frames, frame_stop + self.reach)
        mask = torch.from_numpy(self.values[:, low:high]).to(self.representation.device)
        piece = self.representation[..., low:high] * mask.to(self.representation.real.dtype)
        origin = low * self.frontend.hop_length
        with torch.inference_mode():
            wave, first = self.frontend.decode_frames(
                piece, frame_start - low, frame_stop - low, self.length - origin
            )
        return self.offset + origin + first, wave.detach().cpu().numpy().astype(np.float32)


@dataclass
class PreparedMask:
    """What `Session.begin_mask` needs of a result's mask: the mixture excerpt encoded in the
    mask's front-end (an STFT: worth computing off the GUI thread)."""

    result: Separation
    probe: probes.Mask
    frontend: Any
    spectrum: torch.Tensor
    offset: int
    length: int


def prepare_mask(result: Separation, track: Track, stem: str) -> PreparedMask:
    """Encode the excerpt of `track` that `result`'s `stem` mask covers (no session state)."""
    probe = next(
        (p for p in result.probes.values() if isinstance(p, probes.Mask) and p.stem == stem),
        None,
    )
    if probe is None:
        raise InputError(f"model '{result.model}' gives no mask for '{stem}'")
    frontend = mask_frontend(result, probe)
    if frontend.sample_rate != track.sample_rate:
        raise InputError(
            f"mask editing needs the track at {frontend.sample_rate} Hz "
            f"(it is at {track.sample_rate} Hz)"
        )
    offset = int(round(result.probe_start * track.sample_rate))
    length = int(round(result.probe_seconds * track.sample_rate))
    excerpt = track.mixture[:, offset : offset + length]
    if getattr(result.separator, "mono", False):
        excerpt = to_mono(excerpt)  # what the model masked (its probes are of the downmix)
    wave = torch.from_numpy(np.ascontiguousarray(excerpt)).to(_device_of(frontend))
    with torch.inference_mode():
        spectrum = frontend.encode(wave)
    if spectrum.shape[1:] != probe.values.shape:
        raise InputError(
            f"mask shape {probe.values.shape} does not fit the {probe.frontend or 'STFT'} "
            f"representation {tuple(spectrum.shape[1:])} of the excerpt"
        )
    return PreparedMask(result, probe, frontend, spectrum, offset, excerpt.shape[-1])


def mask_frontend(result: Separation, probe: probes.Mask) -> Any:
    """The front-end object a mask lives in: the separator's own (`mask_frontend(probe)`, e.g.
    a mod-cos model's encoder/decoder), else the STFT preset the probe names."""
    hook = getattr(result.separator, "mask_frontend", None)
    frontend = hook(probe) if hook is not None else None
    if frontend is not None:
        return frontend
    if (probe.frontend or "eusipco2020") in PRESETS:
        return make_frontend(probe.frontend or "eusipco2020")
    raise InputError(
        f"model '{result.model}' gives its mask in the '{probe.frontend}' representation, "
        "but not the front-end that decodes it (load the model again to edit its mask)"
    )


def _device_of(frontend: Any) -> torch.device:
    if isinstance(frontend, torch.nn.Module):
        for tensor in (*frontend.parameters(), *frontend.buffers()):
            return tensor.device
    return torch.device("cpu")


class Session:
    """State of one exploration. See the module docstring."""

    def __init__(self, events: EventHub | None = None) -> None:
        self.events = events or EventHub()
        self.track: Track | None = None
        self.results: dict[str, Separation] = {}
        self.current: str | None = None
        self.selection = Selection()
        self.time = 0.0
        self.mask: MaskLayer | None = None
        self._undo: list[MaskEdit] = []
        self._redo: list[MaskEdit] = []

    # ------------------------------------------------------------------ track
    def open_track(self, track: Track) -> None:
        """Replace the track; results, selection and edits of the old one are dropped."""
        self.track = track
        self.results.clear()
        self.current = None
        self.selection = Selection()
        self.time = 0.0
        self._drop_mask()
        self.events.emit(TRACK, track=track)
        self.events.emit(RESULTS, results=self.results)

    def require_track(self) -> Track:
        if self.track is None:
            raise InputError("no track is open")
        return self.track

    # ------------------------------------------------------------------ results
    def separate_job(
        self, model: str | Separator, device: str = "auto", probe_seconds: float = PROBE_SECONDS
    ) -> Job[Separation]:
        """A job that loads `model` on `device`, separates the track and computes its probes.
        It reads the track only, so it can run in a worker; hand its result to `add_result`."""
        return separate_job(self.require_track(), model, device, probe_seconds)

    def metrics_job(self, model: str | None = None) -> Job[dict[str, dict[str, float | None]]]:
        """A job scoring a result's stems (as heard, with edits) against the true stems."""
        track = self.require_track()
        result = self.results[model or self.current]
        stems = {stem: samples.copy() for stem, samples in result.stems.items()}
        return metrics_job(track, stems)

    def add_result(self, result: Separation) -> None:
        self.results[result.model] = result
        self.events.emit(RESULTS, results=self.results)
        self.set_current(result.model)

    def set_current(self, model: str) -> None:
        """Show and play another model's result."""
        if model not in self.results:
            raise InputError(f"no result for model '{model}'")
        self.current = model
        self._drop_mask()
        self.events.emit(CURRENT, result=self.results[model])
        self.events.emit(PROBES, probes=self.results[model].probes, result=self.results[model])

    @property
    def result(self) -> Separation | None:
        return self.results.get(self.current) if self.current else None

    def set_metrics(self, model: str, metrics: dict[str, dict[str, float | None]]) -> None:
        if model in self.results:
            self.results[model].metrics = metrics
            self.events.emit(METRICS, model=model, metrics=metrics)

    # ------------------------------------------------------------------ time and selection
    def set_time(self, seconds: float) -> None:
        self.time = max(0.0, float(seconds))
        self.events.emit(TIME, seconds=self.time)

    def select(self, **changes: Any) -> Selection:
        """Change some fields of the selection (see `Selection`)."""
        self.selection = replace(self.selection, **changes)
        self.events.emit(SELECTION, selection=self.selection, changed=tuple(changes))
        return self.selection

    # ------------------------------------------------------------------ mask editing
    def mask_stems(self) -> list[str]:
        """Stems of the current result that have a Mask probe."""
        result = self.result
        if result is None:
            return []
        return [
            probe.stem
            for probe in result.probes.values()
            if isinstance(probe, probes.Mask) and probe.stem in result.stems
        ]

    def begin_mask(self, stem: str, prepared: PreparedMask | None = None) -> MaskLayer:
        """Make `stem`'s mask editable (dropping edit history of another stem). `prepared`:
        `prepare_mask` of this result and stem, computed elsewhere (e.g. in a worker)."""
        result = self.result
        track = self.require_track()
        if result is None:
            raise InputError("separate the track first: mask editing needs a model's mask")
        if self.mask is not None and self.mask.stem == stem:
            return self.mask
        if prepared is None or prepared.result is not result or prepared.probe.stem != stem:
            prepared = prepare_mask(result, track, stem)
        probe, frontend, spectrum = prepared.probe, prepared.frontend, prepared.spectrum
        offset, length = prepared.offset, prepared.length
        self._drop_mask()
        result.stems[stem] = result.stems[stem].copy()  # edits write here; original stays
        self.mask = MaskLayer(probe, frontend, spectrum, offset, length)
        self.events.emit(MASK, layer=self.mask, frames=(0, self.mask.shape[1]))
        return self.mask

    def toggle_cell(self, bin_index: int, frame: int) -> AudioEdit | None:
        layer = self._require_mask()
        value = 0.0 if layer.values[bin_index, frame] > 0.5 else 1.0
        return self.paint_cells([bin_index], [frame], value, "toggle cell")

    def paint_cells(
        self,
        bins: list[int] | np.ndarray,
        frames: list[int] | np.ndarray,
        value: float,
        label: str = "paint",
    ) -> AudioEdit | None:
        """Set the given cells (parallel index lists) to `value` (1 paints, 0 erases)."""
        layer = self._require_mask()
        bins, frames = np.asarray(bins, dtype=int), np.asarray(frames, dtype=int)
        keep = (bins >= 0) & (bins < layer.shape[0]) & (frames >= 0) & (frames < layer.shape[1])
        bins, frames = bins[keep], frames[keep]
        if bins.size == 0:
            return None
        box = (bins.min(), bins.max() + 1, frames.min(), frames.max() + 1)
        after = layer.values[box[0] : box[1], box[2] : box[3]].copy()
        after[bins - box[0], frames - box[2]] = value
        return self._apply_patch(label, *box, after)

    def fill_rectangle(
        self, bin_start: int, bin_stop: int, frame_start: int, frame_stop: int, value: float
    ) -> AudioEdit | None:
        layer = self._require_mask()
        bin_start, bin_stop = max(0, bin_start), min(layer.shape[0], bin_stop)
        frame_start, frame_stop = max(0, frame_start), min(layer.shape[1], frame_stop)
        if bin_start >= bin_stop or frame_start >= frame_stop:
            return None
        after = np.full((bin_stop - bin_start, frame_stop - frame_start), value, dtype=np.float32)
        return self._apply_patch("rectangle", bin_start, bin_stop, frame_start, frame_stop, after)

    def invert_mask(self) -> AudioEdit | None:
        layer = self._require_mask()
        return self._apply_patch("invert", 0, layer.shape[0], 0, layer.shape[1], 1.0 - layer.values)

    def reset_mask(self) -> AudioEdit | None:
        layer = self._require_mask()
        return self._apply_patch(
            "reset", 0, layer.shape[0], 0, layer.shape[1], layer.original.copy()
        )

    def threshold_mask(self, level: float) -> AudioEdit | None:
        """Binarise the model's mask at `level` (the slider; repeatable, so it starts from the
        original mask rather than compounding)."""
        layer = self._require_mask()
        after = (layer.original > level).astype(np.float32)
        return self._apply_patch(
            f"threshold {level:.2f}", 0, layer.shape[0], 0, layer.shape[1], after
        )

    def undo(self) -> AudioEdit | None:
        if not self._undo or self.mask is None:
            return None
        edit = self._undo.pop()
        self._redo.append(edit)
        return self._write(edit, edit.before, edit.audio_start, edit.audio_before)

    def redo(self) -> AudioEdit | None:
        if not self._redo or self.mask is None:
            return None
        edit = self._redo.pop()
        self._undo.append(edit)
        return self._write(edit, edit.after)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def history_labels(self) -> tuple[list[str], list[str]]:
        return [edit.label for edit in self._undo], [edit.label for edit in self._redo]

    def _apply_patch(
        self,
        label: str,
        bin_start: int,
        bin_stop: int,
        frame_start: int,
        frame_stop: int,
        after: np.ndarray,
    ) -> AudioEdit | None:
        layer = self._require_mask()
        before = layer.values[bin_start:bin_stop, frame_start:frame_stop].copy()
        after = np.asarray(after, dtype=np.float32)
        if np.array_equal(before, after):
            return None
        # Shrink the box to the frames that really change: less to re-synthesise.
        changed = np.flatnonzero(np.any(before != after, axis=0))
        low, high = int(changed[0]), int(changed[-1]) + 1
        edit = MaskEdit(
            label,
            bin_start,
            bin_stop,
            frame_start + low,
            frame_start + high,
            before[:, low:high],
            after[:, low:high].copy(),
        )
        layer = self._require_mask()
        start, stop = layer.audio_span(edit.frame_start, edit.frame_stop)
        target = self.result.stems[layer.stem]
        edit = replace(edit, audio_start=start, audio_before=target[:, start:stop].copy())
        self._undo.append(edit)
        del self._undo[:-MAX_UNDO]
        self._redo.clear()
        return self._write(edit, edit.after)

    def _write(
        self,
        edit: MaskEdit,
        values: np.ndarray,
        start: int | None = None,
        samples: np.ndarray | None = None,
    ) -> AudioEdit:
        """Set the mask box to `values`; re-synthesise its frames, or (undo) put back the
        given `samples` at `start`. Updates the result's stem and announces the change."""
        layer = self._require_mask()
        layer.values[edit.bin_start : edit.bin_stop, edit.frame_start : edit.frame_stop] = values
        if samples is None:
            start, samples = layer.synthesise(edit.frame_start, edit.frame_stop)
        target = self.result.stems[layer.stem]
        stop = min(target.shape[-1], start + samples.shape[-1])
        samples = _match_channels(samples[:, : stop - start], target.shape[0])
        target[:, start:stop] = samples
        audio = AudioEdit(layer.stem, start, samples, time.perf_counter())
        # Audio first: the engine swaps the samples in before any view redraws.
        self.events.emit(AUDIO_EDIT, edit=audio)
        self.events.emit(MASK, layer=layer, frames=(edit.frame_start, edit.frame_stop))
        self.events.emit(HISTORY, undo=self.can_undo, redo=self.can_redo)
        return audio

    def _require_mask(self) -> MaskLayer:
        if self.mask is None:
            raise InputError("no mask is being edited (pick a stem in the mask panel)")
        return self.mask

    def _drop_mask(self) -> None:
        self.mask = None
        self._undo.clear()
        self._redo.clear()
        self.events.emit(MASK, layer=None, frames=None)
        self.events.emit(HISTORY, undo=False, redo=False)


# ---------------------------------------------------------------------- jobs
def separate_job(
    track: Track, model: str | Separator, device: str = "auto", probe_seconds: float = PROBE_SECONDS
) -> Job[Separation]:
    """Load (when given a name), separate, then compute the probes of the first
    `probe_seconds` of the track. Yields Progress; returns a `Separation`."""
    started = time.perf_counter()
    if isinstance(model, Separator):
        separator = model
    else:
        yield Progress(0, 1, f"loading {model}")
        separator = load_separator(model, resolve_device(device))
    try:
        stems = yield from separator.separate_job(track)
    except torch.cuda.OutOfMemoryError:
        raise InputError(
            f"{separator.name}: out of GPU memory on {describe(separator.device)} "
            "(try the CPU device)"
        ) from None
    seconds = time.perf_counter() - started
    yield Progress(1, 1, f"{separator.name}: probes")
    span = min(track.seconds, probe_seconds)
    found = separator.probes(track, 0.0, span)
    return Separation(
        separator.name,
        describe(separator.device),
        seconds,
        {stem: np.asarray(samples, dtype=np.float32) for stem, samples in stems.items()},
        dict(found),
        0.0,
        span,
        separator=separator,
    )


def metrics_job(
    track: Track, stems: dict[str, np.ndarray]
) -> Job[dict[str, dict[str, float | None]]]:
    """SI-SDR (median over 1 s segments) and SDR/SIR/SAR (BSS Eval against the rest of the
    mixture) of every stem that has a reference, as `explorer evaluate` computes them."""
    scored = [stem for stem in stems if stem in track.stems]
    scores: dict[str, dict[str, float | None]] = {}
    for index, stem in enumerate(scored):
        reference, estimate, mixture = track.stems[stem], stems[stem], track.mixture
        if estimate.shape[0] != reference.shape[0]:
            # A mono model (the papers' DAEs) is scored on the mono downmix.
            reference, estimate, mixture = to_mono(reference), to_mono(estimate), to_mono(mixture)
        values: dict[str, float | None] = {
            "si_sdr": segment_median(si_sdr, reference, estimate, track.sample_rate)
        }
        values.update(target_bss_eval(reference, estimate, mixture, track.sample_rate))
        scores[stem] = values
        yield Progress(index + 1, len(scored), f"scored {stem}")
    return scores


def audible_stems(stems: dict[str, np.ndarray]) -> list[str]:
    """Stems that sum to the separation: `accompaniment` is left out when its parts are there
    (it would count drums, bass and other twice)."""
    names = list(stems)
    if ACCOMPANIMENT in names and len(names) > 2:
        names.remove(ACCOMPANIMENT)
    return names


def blocks(result: Separation, frames_per_block: int) -> Iterator[tuple[float, float]]:
    """`(start, stop)` seconds of consecutive blocks of `frames_per_block` frames of the
    result's probe window (the NCA blocks)."""
    mask = next(
        (p for p in result.probes.values() if isinstance(p, probes.Mask | probes.Activations)), None
    )
    seconds = (mask.hop_length / mask.sample_rate if mask else 384 / 44100) * frames_per_block
    start = result.probe_start
    while start + seconds <= result.probe_start + result.probe_seconds + 1e-9:
        yield start, start + seconds
        start += seconds


def _match_channels(samples: np.ndarray, channels: int) -> np.ndarray:
    if samples.shape[0] == channels:
        return samples
    if samples.shape[0] == 1:
        return np.repeat(samples, channels, axis=0)
    return samples.mean(axis=0, keepdims=True)
