"""The Qt-free Session: events, selection, separation results and mask edits with undo/redo.

Mask edits are checked against an independent reference: the full `decode` of the masked
mixture excerpt (the session only ever decodes the edited frames)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.data.track import Track
from explorer.errors import InputError
from explorer.models import probes
from explorer.progress import run_job
from explorer.session import (
    AUDIO_EDIT,
    HISTORY,
    MASK,
    RESULTS,
    SELECTION,
    TIME,
    TRACK,
    EventHub,
    Session,
    audible_stems,
    separate_job,
)

SAMPLE_RATE = 44100


def small_track(seconds: float = 1.0, seed: int = 0) -> Track:
    """Stereo stems: a vocal-like tone, noise bursts, a bass tone and a chord."""
    generator = np.random.default_rng(seed)
    time = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    vocals = 0.3 * np.sin(2 * np.pi * 440 * time) * (1 + 0.5 * np.sin(2 * np.pi * 3 * time))
    drums = 0.2 * generator.standard_normal(time.size) * (np.sin(2 * np.pi * 4 * time) > 0.7)
    bass = 0.3 * np.sin(2 * np.pi * 55 * time)
    other = 0.1 * (np.sin(2 * np.pi * 330 * time) + np.sin(2 * np.pi * 660 * time))
    stems = {
        name: np.stack([signal, 0.8 * signal]).astype(np.float32)
        for name, signal in (("vocals", vocals), ("drums", drums), ("bass", bass), ("other", other))
    }
    mixture = np.sum(list(stems.values()), axis=0).astype(np.float32)
    return Track("small", mixture, SAMPLE_RATE, stems)


@pytest.fixture(scope="module")
def separated() -> tuple[Track, object]:
    track = small_track()
    return track, run_job(separate_job(track, "oracle-irm", "cpu"))


def fresh_session(track: Track, result) -> Session:
    session = Session(EventHub(strict=True))
    session.open_track(track)
    copy = type(result)(
        result.model,
        result.device,
        result.seconds,
        {stem: samples.copy() for stem, samples in result.stems.items()},
        result.probes,
        result.probe_start,
        result.probe_seconds,
    )
    session.add_result(copy)
    return session


def test_event_hub_subscribe_emit_unsubscribe_and_isolates_failures():
    hub = EventHub()
    seen = []
    unsubscribe = hub.subscribe("x", lambda value: seen.append(value))
    hub.subscribe("x", lambda value: 1 / 0)
    hub.subscribe("x", lambda value: seen.append(-value))
    hub.emit("x", value=2)
    assert seen == [2, -2]
    assert len(hub.errors) == 1 and isinstance(hub.errors[0], ZeroDivisionError)
    unsubscribe()
    hub.emit("x", value=3)
    assert seen == [2, -2, -3]
    strict = EventHub(strict=True)
    strict.subscribe("y", lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        strict.emit("y")


def test_open_track_time_and_selection_emit_events():
    session = Session(EventHub(strict=True))
    seen = []
    for name in (TRACK, RESULTS, TIME, SELECTION):
        session.events.subscribe(name, lambda name=name, **payload: seen.append((name, payload)))
    track = small_track(0.2)
    session.open_track(track)
    session.set_time(-1.0)
    assert session.time == 0.0
    session.set_time(0.1)
    selection = session.select(time_range=(0.0, 0.1), matrix_row=3)
    assert selection.matrix_row == 3 and selection.frequency is None
    assert [name for name, _ in seen] == [TRACK, RESULTS, TIME, TIME, SELECTION]
    assert seen[-1][1]["changed"] == ("time_range", "matrix_row")
    with pytest.raises(InputError):
        Session().separate_job("oracle-irm")  # no track yet: a clear message


def test_separation_result_has_stems_and_mask_probes(separated):
    track, result = separated
    assert result.model == "oracle-irm" and result.device == "cpu"
    assert set(result.stems) >= {"vocals", "drums", "bass", "other", "accompaniment"}
    assert all(samples.shape == track.mixture.shape for samples in result.stems.values())
    masks = [probe for probe in result.probes.values() if isinstance(probe, probes.Mask)]
    assert {probe.stem for probe in masks} >= {"vocals", "drums"}
    assert result.probe_seconds == pytest.approx(track.seconds)
    assert audible_stems(result.stems) == ["vocals", "drums", "bass", "other"]


def reference_decode(session: Session) -> np.ndarray:
    """The full decode of the mixture excerpt under the current mask: `(channels, samples)`."""
    layer = session.mask
    masked = layer.spectrum * torch.from_numpy(layer.values)
    return layer.frontend.decode(masked, layer.length).numpy()


def test_toggle_cell_changes_only_the_affected_samples_and_matches_a_full_decode(separated):
    track, result = separated
    session = fresh_session(track, result)
    edits = []
    session.events.subscribe(AUDIO_EDIT, lambda edit: edits.append(edit))
    layer = session.begin_mask("vocals")
    before = session.result.stems["vocals"].copy()
    frame = layer.shape[1] // 2
    bin_index = int(np.argmax(layer.values[:, frame]))  # a cell that matters: the 440 Hz bin
    edit = session.toggle_cell(bin_index, frame)
    assert edits == [edit] and layer.values[bin_index, frame] == 0.0
    first, last = layer.frontend.sample_span(frame, frame + 1, layer.length)
    assert (edit.start, edit.start + edit.samples.shape[-1]) == (first, last)
    after = session.result.stems["vocals"]
    changed = np.flatnonzero(np.any(after != before, axis=0))
    assert changed.size > 0 and changed.min() >= first and changed.max() < last
    np.testing.assert_allclose(
        after[:, first:last], reference_decode(session)[:, first:last], atol=1e-5
    )


def test_undo_restores_exactly_and_redo_reapplies(separated):
    track, result = separated
    session = fresh_session(track, result)
    history = []
    session.events.subscribe(HISTORY, lambda undo, redo: history.append((undo, redo)))
    layer = session.begin_mask("vocals")
    original_audio = session.result.stems["vocals"].copy()
    original_mask = layer.values.copy()
    session.fill_rectangle(0, 40, 10, 20, 0.0)
    edited_audio = session.result.stems["vocals"].copy()
    edited_mask = layer.values.copy()
    assert not np.array_equal(edited_audio, original_audio)
    session.undo()
    np.testing.assert_array_equal(layer.values, original_mask)
    np.testing.assert_array_equal(session.result.stems["vocals"], original_audio)
    session.redo()
    np.testing.assert_array_equal(layer.values, edited_mask)
    np.testing.assert_array_equal(session.result.stems["vocals"], edited_audio)
    assert history[-1] == (True, False)
    session.undo()
    session.paint_cells([1, 2], [3, 3], 1.0)  # a new edit clears the redo stack
    assert session.can_undo and not session.can_redo and session.redo() is None


def test_invert_threshold_reset_and_out_of_range_paint(separated):
    track, result = separated
    session = fresh_session(track, result)
    masks_seen = []
    session.events.subscribe(MASK, lambda layer, frames: masks_seen.append(frames))
    layer = session.begin_mask("vocals")
    original = layer.original.copy()
    session.threshold_mask(0.5)
    np.testing.assert_array_equal(layer.values, (original > 0.5).astype(np.float32))
    session.threshold_mask(0.5)  # the same threshold again: no edit
    assert len(session.history_labels()[0]) == 1
    session.invert_mask()
    np.testing.assert_array_equal(layer.values, (original <= 0.5).astype(np.float32))
    np.testing.assert_allclose(
        session.result.stems["vocals"][:, : layer.length], reference_decode(session), atol=1e-5
    )
    session.reset_mask()
    np.testing.assert_array_equal(layer.values, original)
    assert session.paint_cells([-1, 10**6], [0, 0], 1.0) is None
    assert session.history_labels()[0] == ["threshold 0.50", "invert", "reset"]
    assert (0, layer.shape[1]) in masks_seen  # begin_mask announces the whole mask


def test_mask_errors_are_input_errors(separated):
    track, result = separated
    session = fresh_session(track, result)
    with pytest.raises(InputError, match="no mask"):
        session.toggle_cell(0, 0)
    with pytest.raises(InputError, match="gives no mask"):
        session.begin_mask("kazoo")
    session.open_track(small_track(0.2))
    with pytest.raises(InputError, match="separate the track first"):
        session.begin_mask("vocals")


def test_switching_results_drops_the_mask_and_history(separated):
    track, result = separated
    session = fresh_session(track, result)
    session.begin_mask("vocals")
    session.toggle_cell(5, 5)
    other = run_job(separate_job(track, "oracle-ibm", "cpu"))
    session.add_result(other)
    assert session.current == "oracle-ibm" and session.mask is None and not session.can_undo
    assert set(session.results) == {"oracle-irm", "oracle-ibm"}
    session.set_current("oracle-irm")
    assert session.result.model == "oracle-irm"
    with pytest.raises(InputError):
        session.set_current("nope")


def test_metrics_job_scores_edited_stems(separated):
    track, result = separated
    session = fresh_session(track, result)
    scores = run_job(session.metrics_job())
    assert set(scores) >= {"vocals", "drums"}
    assert set(scores["vocals"]) == {"si_sdr", "sdr", "sir", "sar"}
    assert scores["vocals"]["sdr"] > 10  # the oracle ratio mask on clean tones is good
    session.begin_mask("vocals")
    session.threshold_mask(1.1)  # everything off: the vocals vanish
    silenced = run_job(session.metrics_job())
    assert (
        silenced["vocals"]["si_sdr"] is None
        or silenced["vocals"]["si_sdr"] < scores["vocals"]["si_sdr"]
    )


def test_a_learned_mask_without_its_front_end_is_refused_clearly():
    from explorer.session import Separation

    track = small_track(0.3)
    session = Session(EventHub(strict=True))
    session.open_track(track)
    mask = probes.Mask(
        "learned mask", "vocals", np.ones((8, 10), np.float32), 128, SAMPLE_RATE, "modcos"
    )
    session.add_result(
        Separation(
            "modcos",
            "cpu",
            0.1,
            {"vocals": track.mixture.copy()},
            {"mask/vocals": mask},
            0.0,
            track.seconds,
        )
    )
    assert session.mask_stems() == ["vocals"]
    # no separator kept, so nothing can decode the 'modcos' representation
    with pytest.raises(InputError, match="not the front-end that decodes it"):
        session.begin_mask("vocals")


def test_modcos_mask_edit_in_the_learned_representation_matches_a_full_decode():
    """The mod-cos mask lives in the learned representation A = E(m) (components x frames):
    a toggled cell re-synthesises only the span `decode_frames` reports, and there equals an
    independent full `decode` of E(m) * the edited mask."""
    from explorer.audio.io import to_mono
    from explorer.data.sources import open_track

    track = open_track("demo").excerpt(3.8, 1.5)
    result = run_job(separate_job(track, "modcos", "cpu"))
    session = Session(EventHub(strict=True))
    session.open_track(track)
    session.add_result(result)
    assert "vocals" in session.mask_stems()
    layer = session.begin_mask("vocals")
    model = result.separator.model
    assert layer.frontend is model and layer.row_hertz is None and layer.row_label == "component"
    assert not torch.is_complex(layer.representation)
    components, frames = layer.shape
    assert components == model.config.components
    offset = int(round(result.probe_start * track.sample_rate))
    excerpt = to_mono(track.mixture[:, offset : offset + layer.length])
    with torch.inference_mode():
        encoded = model.encode(torch.from_numpy(np.ascontiguousarray(excerpt)))
    # a cell where the mixture has energy, in the middle of the excerpt
    frame = frames // 2
    component = int(torch.argmax(encoded[0, :, frame]))
    before = session.result.stems["vocals"].copy()
    edit = session.toggle_cell(component, frame)
    assert edit is not None
    first, last = model.sample_span(frame, frame + 1, layer.length)
    assert (edit.start, edit.start + edit.samples.shape[-1]) == (offset + first, offset + last)
    after = session.result.stems["vocals"]
    outside = np.ones(after.shape[-1], dtype=bool)
    outside[offset + first : offset + last] = False
    np.testing.assert_array_equal(after[:, outside], before[:, outside])
    assert not np.allclose(after[:, ~outside], before[:, ~outside])
    with torch.inference_mode():
        full = model.decode(encoded * torch.from_numpy(layer.values), layer.length)[0].numpy()
    for channel in after:
        np.testing.assert_allclose(
            channel[offset + first : offset + last], full[first:last], atol=1e-5
        )
    # undo puts the samples back exactly
    session.undo()
    np.testing.assert_array_equal(session.result.stems["vocals"], before)
