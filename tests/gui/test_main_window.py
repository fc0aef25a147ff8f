"""The real main window, hidden, driven through its own methods and panel signals."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from explorer.errors import InputError
from explorer.models import registry
from tests.gui.conftest import wait_for_jobs


def test_open_shows_mixture_and_true_stems_and_loads_playback(opened, track_folder):
    window = opened
    assert set(window.spectrograms.views) >= {
        "mixture",
        "true:vocals",
        "true:drums",
        "true:bass",
        "true:other",
    }
    assert window.playback.seconds == pytest.approx(window.session.track.seconds)
    assert window.playback.source == "mixture"  # nothing separated yet
    assert window.recent_files()[0] == str(track_folder)
    assert window.errors == []


def test_separate_two_models_metrics_and_switching(qtbot, separated):
    window = separated
    assert window.session.current == "oracle-irm"
    assert {"estimate:vocals", "estimate:drums"} <= set(window.spectrograms.views)
    assert set(window.playback.stem_names) >= {"vocals", "drums", "bass", "other"}
    assert window.playback.source == "separation"
    assert window._metrics_stale  # a hidden metrics panel waits until it is shown
    window.compute_metrics(force=True)
    qtbot.waitUntil(lambda: bool(window.session.results["oracle-irm"].metrics), timeout=30000)
    vocals = window.session.results["oracle-irm"].metrics["vocals"]
    assert set(vocals) == {"si_sdr", "sdr", "sir", "sar"} and vocals["sdr"] > 0
    window.model_box.setCurrentText("oracle-ibm")
    window.separate()
    wait_for_jobs(qtbot, window)
    assert [window.result_box.itemText(i) for i in range(window.result_box.count())] == [
        "oracle-irm",
        "oracle-ibm",
    ]
    assert window.session.current == "oracle-ibm"
    assert (
        "ran on: cpu" in window.device_label.text() or "ran on: cuda" in window.device_label.text()
    )
    window.result_box.setCurrentText("oracle-irm")
    window._result_chosen()
    assert window.session.current == "oracle-irm"
    np.testing.assert_allclose(
        window.playback.stem_audio("vocals")[:, :1000],
        window.session.result.stems["vocals"][:, :1000],
        atol=1e-6,
    )
    assert window.errors == []


def test_mask_cell_toggle_changes_only_the_affected_frames_then_undo_redo(qtbot, separated):
    window = separated
    layer = window.session.mask
    assert layer is not None and layer.stem == "vocals"
    before = window.playback.stem_audio("vocals")
    frame = layer.shape[1] // 2
    bin_index = int(np.argmax(layer.values[:, frame] * (layer.values[:, frame] > 0.5)))
    # Through the panel, as a click does: the view point (seconds, Hz) of that cell.
    point_seconds = layer.offset / layer.frontend.sample_rate + frame * layer.seconds_per_frame()
    point_hertz = bin_index * layer.frontend.sample_rate / layer.frontend.config.n_fft
    from PySide6.QtCore import QPointF

    assert window.mask_panel.cell_at(QPointF(point_seconds, point_hertz)) == (bin_index, frame)
    window.mask_panel.set_tool("toggle")
    window.mask_panel.click(QPointF(point_seconds, point_hertz))
    assert layer.values[bin_index, frame] == 0.0
    after = window.playback.stem_audio("vocals")
    first, last = layer.frontend.sample_span(frame, frame + 1, layer.length)
    changed = np.flatnonzero(np.any(np.abs(after - before) > 0, axis=0))
    assert changed.size > 0
    assert changed.min() >= layer.offset + first and changed.max() < layer.offset + last
    assert window.undo_action.isEnabled() and not window.redo_action.isEnabled()
    window.undo_action.trigger()
    np.testing.assert_array_equal(window.playback.stem_audio("vocals"), before)
    assert layer.values[bin_index, frame] > 0.5
    window.redo_action.trigger()
    np.testing.assert_array_equal(window.playback.stem_audio("vocals"), after)
    # The estimate's spectrogram follows the edit, and the metrics are recomputed.
    qtbot.waitUntil(
        lambda: "metrics" not in window.jobs and not window.metrics_timer.isActive(), timeout=30000
    )
    assert window.errors == []


def test_mask_tools_rectangle_brush_threshold_invert_reset(qtbot, separated):
    window = separated
    session, panel, layer = window.session, window.mask_panel, window.session.mask
    panel.rectangle_requested.emit(0, 40, 10, 20, 0.0)
    assert not layer.values[0:40, 10:20].any()
    panel.paint_requested.emit([5, 6, 7], [30, 30, 30], 1.0)
    assert (layer.values[5:8, 30] == 1.0).all()
    panel.threshold_requested.emit(0.5)
    np.testing.assert_array_equal(layer.values, (layer.original > 0.5).astype(np.float32))
    panel.invert_requested.emit()
    np.testing.assert_array_equal(layer.values, (layer.original <= 0.5).astype(np.float32))
    panel.reset_requested.emit()
    np.testing.assert_array_equal(layer.values, layer.original)
    assert session.history_labels()[0] == [
        "rectangle",
        "paint",
        "threshold 0.50",
        "invert",
        "reset",
    ]
    for _ in range(5):
        window.undo()
    assert not session.can_undo
    assert window.errors == []


def test_export_stems_mask_metrics_and_panels(qtbot, separated, tmp_path):
    window = separated
    window.compute_metrics(force=True)
    qtbot.waitUntil(lambda: bool(window.session.result.metrics), timeout=30000)
    window._refresh_metrics()
    window.session.toggle_cell(10, 10)
    written = window.export_stems(tmp_path / "stems")
    assert {path.name for path in written} >= {"vocals.wav", "drums.wav", "mix-as-heard.wav"}
    vocals, rate = soundfile.read(
        tmp_path / "stems" / "vocals.wav", dtype="float32", always_2d=True
    )
    np.testing.assert_allclose(
        vocals.T, np.clip(window.session.result.stems["vocals"], -1, 1), atol=1e-4
    )
    mix, _ = soundfile.read(
        tmp_path / "stems" / "mix-as-heard.wav", dtype="float32", always_2d=True
    )
    np.testing.assert_allclose(mix.T, window.playback.mixer.render_all(), atol=1e-4)
    npy, png = window.export_mask(tmp_path / "mask.npy")
    np.testing.assert_array_equal(np.load(npy), window.session.mask.values)
    assert png.stat().st_size > 0
    metrics_csv = window.export_metrics(tmp_path / "metrics.csv")
    rows = list(csv.DictReader(open(metrics_csv)))
    assert {row["stem"] for row in rows} >= {"vocals", "drums"} and rows[0]["model"] == "oracle-irm"
    for name in ("spectrograms", "mask", "metrics"):
        assert window.export_panel(name, tmp_path / f"{name}.png").stat().st_size > 1000
    with pytest.raises(InputError):
        window.export_matrix(tmp_path / "matrix.npy")  # the oracles have no matrices


def test_bad_input_gets_a_dialog_never_a_crash(qtbot, opened, tmp_path):
    window = opened
    text = tmp_path / "notes.txt"
    text.write_text("not audio")
    window.open_input(str(text))  # what a drop of a non-audio file does
    wait_for_jobs(qtbot, window)
    assert any("not a supported audio file" in error for error in window.errors)
    assert window.session.track is not None  # the open track is still there
    wrong = tmp_path / "wrong.pt"
    registry.save_checkpoint(wrong, "banana", {}, {"w": torch.zeros(1)}, {"data": "none"})
    assert not window.add_checkpoint(str(wrong))
    assert "banana" in window.errors[-1]
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint")
    assert not window.add_checkpoint(str(garbage))
    assert window.model_box.findText(str(wrong)) < 0
    if not torch.cuda.is_available():
        window.device_box.setCurrentText("cuda")
        window.separate()
        assert "CUDA is not available" in window.errors[-1]
        assert "separate" not in window.jobs
    window.model_box.setCurrentText(
        "dae" if (registry.RESOURCES / "dae.pt").exists() is False else "oracle-irm"
    )
    window.device_box.setCurrentText("cpu")
    if window.model_box.currentText() == "dae":
        window.separate()  # no shipped weights: a clear message
        wait_for_jobs(qtbot, window)
        assert "demo weights" in window.errors[-1]


def test_a_failing_job_and_a_failing_view_become_dialogs(qtbot, window):
    def broken():
        yield from ()
        raise RuntimeError("boom")

    window.run_job("broken", broken, lambda result: None)
    wait_for_jobs(qtbot, window)
    assert window.errors[-1].startswith("Broken failed: RuntimeError: boom")
    window.session.events.subscribe("time", lambda seconds: 1 / 0)
    window.session.set_time(0.5)
    assert "ZeroDivisionError" in window.errors[-1] or "division by zero" in window.errors[-1]


def test_settings_are_remembered(qtbot, opened, settings_path, track_folder):
    from PySide6.QtCore import QSettings

    from explorer.gui.main_window import MainWindow

    opened.spectrograms.set_colour_map("viridis")
    opened.spectrograms.set_levels(-70.0, -5.0)
    opened.save_settings()
    again = MainWindow(settings=QSettings(str(settings_path), QSettings.Format.IniFormat))
    qtbot.addWidget(again)
    assert again.spectrograms.colour_map == "viridis"
    assert again.spectrograms.levels == (-70.0, -5.0)
    assert again.recent_files() == [str(track_folder)]
    assert [action.text() for action in again.recent_menu.actions()] == [str(track_folder)]
    again.shutdown()


def test_keyboard_actions_play_zoom_and_help(qtbot, separated):
    window = separated
    window.play_action.trigger()
    qtbot.wait(50)
    window.stop_action.trigger()
    assert window.session.time == 0.0
    window.spectrograms.reset_view()
    low, high = window.spectrograms.master.vb.viewRange()[0]
    window.zoom_in_action.trigger()
    zoomed = window.spectrograms.master.vb.viewRange()[0]
    assert zoomed[1] - zoomed[0] == pytest.approx((high - low) / 2, rel=0.05)
    # every time-aligned plot follows the master time axis (the mask panel included)
    assert window.mask_panel.plot.vb.viewRange()[0] == pytest.approx(zoomed, abs=1e-6)
    window.help_action.trigger()
    assert window.shortcuts_dialog.isVisible()
    window.shortcuts_dialog.close()
    window.seek(0.7)
    assert window.session.time == pytest.approx(0.7)
    assert window.errors == []


def _random_dae_checkpoint(path: Path, kind: str = "sf") -> Path:
    from explorer.models import dae

    torch.manual_seed(0)
    config = dae.DAEConfig(kind=kind, frontend="taslp2020-quick")
    network = dae.build_network(config)
    return registry.save_checkpoint(
        path, kind, config.to_dict(), network.state_dict(), {"data": "random"}
    )


def test_nca_block_stepping_with_a_checkpoint(qtbot, opened, tmp_path):
    pytest.importorskip("explorer.analysis.nca")
    pytest.importorskip("explorer.models.dae")
    window = opened
    checkpoint = _random_dae_checkpoint(tmp_path / "sf.pt")
    assert window.add_checkpoint(str(checkpoint))
    window.separate()
    wait_for_jobs(qtbot, window)
    assert window.session.result.model == str(checkpoint), window.errors
    assert window.activations.layers and window.session.mask is not None  # SF has a mask
    window.matrix.iterations_box.setValue(3)
    window.matrix.frames_box.setValue(16)
    window.next_block_action.trigger()
    wait_for_jobs(qtbot, window)
    assert window.session.selection.block == 1
    assert set(window.matrix.nca_matrices) == {"student", "compositional", "linear", "identity"}
    start, stop = window.session.selection.time_range
    frontend = window.session.result.separator.frontend
    assert stop - start == pytest.approx(16 * frontend.hop_length / frontend.sample_rate)
    assert window.spectrograms.region.isVisible()
    window.previous_block_action.trigger()
    wait_for_jobs(qtbot, window)
    assert window.session.selection.block == 0
    window.matrix.select_cell(3, 4)
    assert window.spectrograms.frequency_lines  # the row's input frequencies are marked
    window.export_matrix(tmp_path / "c.csv")
    assert (
        len(list(csv.reader(open(tmp_path / "c.csv")))) == window.matrix.shown()[0].values.shape[0]
    )
    assert window.errors == []


def test_training_starts_shows_loss_and_cancels(qtbot, opened, tmp_path):
    pytest.importorskip("explorer.training.loop")
    window = opened
    if not window.training_available:
        pytest.skip("no trainable model kinds registered")
    panel = window.training
    panel.kind_box.setCurrentText("sf")
    panel.frontend_box.setCurrentText("taslp2020-quick")
    panel.data_box.setEditText("current track")
    panel.epochs_box.setValue(200)
    panel.steps_box.setValue(2)
    panel.output_edit.setText(str(tmp_path / "run.pt"))
    panel.start_button.click()
    assert "train" in window.jobs and not panel.start_button.isEnabled()
    qtbot.waitUntil(lambda: len(panel.validation_points[0]) >= 1, timeout=60000)
    assert (tmp_path / "run.pt").is_file()  # an atomic checkpoint after the first epoch
    panel.pause_button.click()
    assert window.jobs["train"].worker.paused
    panel.pause_button.click()
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: "train" not in window.jobs, timeout=30000)
    assert panel.start_button.isEnabled() and "cancelled" in panel.status_label.text()
    assert window.errors == []


def test_training_that_raises_and_closing_during_training(qtbot, opened, tmp_path, monkeypatch):
    pytest.importorskip("explorer.training.loop")
    window = opened
    if not window.training_available:
        pytest.skip("no trainable model kinds registered")
    panel = window.training
    panel.data_box.setEditText(str(tmp_path / "nowhere"))
    panel.start_button.click()
    wait_for_jobs(qtbot, window)
    assert "no such training data" in window.errors[-1] and panel.start_button.isEnabled()
    panel.kind_box.setCurrentText("dae")
    panel.frontend_box.setCurrentText("taslp2020-quick")
    panel.data_box.setEditText("current track")
    panel.epochs_box.setValue(500)
    panel.steps_box.setValue(2)
    panel.output_edit.setText(str(tmp_path / "closing.pt"))
    panel.start_button.click()
    qtbot.waitUntil(
        lambda: panel.progress_bar.value() > 0 or len(panel.train_points[0]) > 0, timeout=60000
    )
    answers = iter([False, True])
    monkeypatch.setattr(window, "ask", lambda title, text: next(answers))
    window.show()
    window.close()
    assert window.isVisible() and "train" in window.jobs  # the user said no: keep running
    window.close()
    assert not window.isVisible()
    assert "train" not in window.jobs or not window.jobs["train"].is_running()


def test_dropping_a_non_audio_file_gets_a_dialog(qtbot, opened, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    window = opened
    text = tmp_path / "readme.md"
    text.write_text("# not audio")
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(text))])
    event = QDropEvent(
        QPointF(10, 10),
        Qt.DropAction.CopyAction,
        data,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)
    wait_for_jobs(qtbot, window)
    assert "not a supported audio file" in window.errors[-1]
    assert window.session.track.name == "demo-excerpt"


def test_dataset_browser_lists_tracks_with_their_subset(qtbot, track_folder, tmp_path):
    import shutil

    from explorer.gui.dialogs import DatasetBrowser

    root = tmp_path / "musdb18hq"
    shutil.copytree(track_folder, root / "train" / "Song A")
    shutil.copytree(track_folder, root / "test" / "Song B")
    browser = DatasetBrowser(str(root))
    qtbot.addWidget(browser)
    rows = [
        (browser.tree.topLevelItem(i).text(0), browser.tree.topLevelItem(i).text(1))
        for i in range(browser.tree.topLevelItemCount())
    ]
    assert rows == [("Song A", "train"), ("Song B", "test")]
    browser.subset_box.setCurrentText("test")
    assert browser.tree.topLevelItemCount() == 1
    chosen = []
    browser.track_chosen.connect(chosen.append)
    browser.tree.setCurrentItem(browser.tree.topLevelItem(0))
    browser._open()
    assert chosen == [str(root / "test" / "Song B")]
    browser.root_edit.setText(str(tmp_path / "missing"))
    browser.refresh()
    assert "not a folder" in browser.message.text()


def test_probe_panels_follow_any_model_kernels_activations_matrices(qtbot, opened):
    """One panel per probe type: a model that returns Kernels, Activations and a Matrix gets
    them drawn, and picking a kernel highlights its activation row."""
    from explorer.models.probes import Activations, Kernels, Matrix
    from explorer.session import Separation

    window = opened
    track = window.session.track
    sample_rate = track.sample_rate
    time_axis = np.arange(256) / sample_rate
    kernels = Kernels(
        "learned kernels",
        np.stack([np.cos(2 * np.pi * f * time_axis) for f in (300.0, 3000.0)]),
        sample_rate,
        np.array([300.0, 3000.0]),
    )
    activations = Activations(
        "representation",
        np.abs(np.random.default_rng(0).standard_normal((2, 100))),
        1024,
        sample_rate,
    )
    matrix = Matrix("weights", np.eye(8), metrics={"tod_r": 9.5})
    stems = {
        "vocals": track.stems["vocals"].copy(),
        "accompaniment": track.stems["accompaniment"].copy(),
    }
    window.session.add_result(
        Separation(
            "fake-modcos",
            "cpu",
            0.1,
            stems,
            {"kernels": kernels, "activations/a": activations, "matrix/w": matrix},
            0.0,
            track.seconds,
        )
    )
    assert window.kernels.probe is kernels and window.kernels.list.count() == 2
    assert list(window.activations.layers) == ["activations/a"]
    assert (
        window.matrix.view_box.currentText() == "weights"
        and "TOD-R 9.5" in window.matrix.views[0].plot.titleLabel.text
    )
    window.kernels.list.setCurrentRow(1)
    assert window.session.selection.kernel == 1
    assert window.activations.selected == {"activations/a": (1,)}
    assert window.mask_panel.layer is None  # no Mask probe: nothing to edit
    assert not window.matrix.compute_button.isEnabled()
    window.step_block(1)  # no NCA for this model: a status message, no crash
    assert "NCA needs" in window.message_label.text()
    assert window.errors == []


@pytest.mark.slow  # the naive autoencoder separates 1.5 s in about 15 s on 2 busy cores
def test_unit_surgery_plays_the_selected_code_units(qtbot, opened):
    if (
        "naive-ae" not in registry.builtin_names()
        or not (registry.RESOURCES / "naive-ae.pt").exists()
    ):
        pytest.skip("the naive autoencoder's demo weights are not shipped")
    window = opened
    window.model_box.setCurrentText("naive-ae")
    window.separate()
    wait_for_jobs(qtbot, window)
    assert "activations/code" in window.activations.layers, window.errors
    assert window.activations.surgery_keys == {"activations/code"}
    window.activations.selected["activations/code"] = (0, 1, 2)
    window.activations._surgery()
    wait_for_jobs(qtbot, window)
    assert "selected units" in window.playback.stem_names
    assert window.playback.mixer.settings.soloed == frozenset({"selected units"})
    heard = window.playback.mixer.render_all()
    assert heard.shape[-1] == window.session.track.mixture.shape[-1] and np.isfinite(heard).all()
    assert window.errors == []


def test_modcos_mask_is_editable_on_a_component_axis(qtbot, opened):
    """The mod-cos mask lives in the learned representation: the panel draws components x
    frames (a 'component' axis, off the spectrograms' Hz axis) and a toggled cell is heard."""
    from PySide6.QtCore import QPointF

    window = opened
    window.model_box.setCurrentText("modcos")
    window.separate()
    wait_for_jobs(qtbot, window)
    assert window.session.result is not None and window.session.result.model == "modcos"
    layer = window.session.mask
    assert layer is not None and layer.stem == "vocals", window.errors
    panel = window.mask_panel
    assert panel.layer is layer and layer.row_hertz is None
    assert "component" in panel.plot.getAxis("left").labelText
    assert not window.spectrograms.frequency_link.contains(panel.plot)
    assert panel.plot.vb.viewRange()[1][1] == pytest.approx(layer.shape[0] - 0.5)
    before = window.playback.stem_audio("vocals")
    frame = layer.shape[1] // 2
    component = int(np.argmax(layer.representation[0, :, frame].cpu().numpy()))
    point = QPointF(
        layer.offset / layer.frontend.sample_rate + frame * layer.seconds_per_frame(), component
    )
    assert panel.cell_at(point) == (component, frame)
    value = layer.values[component, frame]
    panel.set_tool("toggle")
    panel.click(point)
    assert layer.values[component, frame] == (0.0 if value > 0.5 else 1.0)
    after = window.playback.stem_audio("vocals")
    first, last = layer.frontend.sample_span(frame, frame + 1, layer.length)
    changed = np.flatnonzero(np.any(np.abs(after - before) > 0, axis=0))
    assert changed.size > 0
    assert changed.min() >= layer.offset + first and changed.max() < layer.offset + last
    window.undo_action.trigger()
    np.testing.assert_array_equal(window.playback.stem_audio("vocals"), before)
    # back to an STFT model: the mask panel follows the spectrograms' Hz axis again
    window.model_box.setCurrentText("oracle-irm")
    window.separate()
    wait_for_jobs(qtbot, window)
    assert window.session.mask is not None and window.session.mask.row_hertz is not None
    assert window.spectrograms.frequency_link.contains(panel.plot)
    assert window.errors == []
