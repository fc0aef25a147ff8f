"""GUI parts on their own: the job worker, display spectrograms, the kernels panel (with a
synthetic Kernels probe: no model ships kernels yet), activations sorting, the PySide6 fix."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from explorer.gui import qt_fixes, spectra
from explorer.gui.panels.activations import ActivationsPanel, unit_order
from explorer.gui.panels.kernels import KernelsPanel, bandwidth, magnitude_response
from explorer.gui.workers import start_job
from explorer.models.probes import Activations, Kernels
from explorer.progress import Progress


def test_worker_forwards_progress_result_and_errors(qtbot):
    def job():
        for index in range(3):
            yield Progress(index + 1, 3, f"step {index}")
        return "done"

    handle = start_job(job, "test")
    seen = []
    handle.progress.connect(lambda progress: seen.append(progress.done))
    with qtbot.waitSignal(handle.finished, timeout=10000) as blocker:
        pass
    assert blocker.args == ["done"]
    qtbot.waitUntil(lambda: seen == [1, 2, 3], timeout=5000)
    assert handle.wait(5000)

    def failing():
        yield Progress(0, 1)
        raise ValueError("bad value")

    handle = start_job(failing, "failing")
    with qtbot.waitSignal(handle.failed, timeout=10000) as blocker:
        pass
    assert isinstance(blocker.args[0], ValueError) and "bad value" in blocker.args[1]
    assert handle.wait(5000)


def test_cancel_closes_the_generator(qtbot):
    closed = []

    def endless():
        try:
            while True:
                yield Progress(0, 1)
        finally:
            closed.append(True)

    handle = start_job(endless, "endless")
    qtbot.waitSignal(handle.progress, timeout=10000).wait()
    with qtbot.waitSignal(handle.cancelled, timeout=10000):
        handle.cancel()
    assert handle.wait(5000) and closed == [True]


def test_pause_holds_the_job(qtbot):
    steps = []

    def counting():
        for index in range(1000):
            steps.append(index)
            yield Progress(index, 1000)

    handle = start_job(counting, "counting")
    handle.set_paused(True)
    qtbot.wait(100)
    held = len(steps)
    qtbot.wait(100)
    assert len(steps) == held and held < 1000
    handle.set_paused(False)
    handle.cancel()
    assert handle.wait(5000)


def test_display_spectrogram_of_a_sine_peaks_at_its_frequency_at_zero_db():
    sample_rate, frequency = 44100, 1000.0
    time = np.arange(sample_rate) / sample_rate
    sine = np.sin(2 * np.pi * frequency * time).astype(np.float32)[None]
    spectrogram = spectra.compute(sine, sample_rate)
    middle = spectrogram.decibels[:, spectrogram.frames // 2]
    assert int(np.argmax(middle)) * spectrogram.bin_hertz == pytest.approx(
        frequency, abs=spectrogram.bin_hertz
    )
    assert middle.max() == pytest.approx(
        0.0, abs=1.5
    )  # a full-scale sine is 0 dB (Hann scalloping)
    assert spectrogram.value_at(0.5, frequency) == pytest.approx(middle.max(), abs=3)


def test_update_range_equals_a_full_recompute():
    generator = np.random.default_rng(1)
    samples = generator.standard_normal((2, 30000)).astype(np.float32) * 0.1
    spectrogram = spectra.compute(samples, 44100)
    edited = samples.copy()
    edited[:, 12000:13000] = 0.0
    spectra.update_range(spectrogram, edited, 12000, 13000)
    reference = spectra.compute(edited, 44100, spectrogram.hop_length)
    np.testing.assert_allclose(spectrogram.decibels, reference.decibels, atol=1e-3)
    assert spectra.hop_for(44100 * 300) * spectra.MAX_FRAMES >= 44100 * 300  # 5 minutes fit


def synthetic_kernels() -> Kernels:
    """Gabor-like kernels at known frequencies: what a mod-cos model's probe looks like."""
    sample_rate, length = 16000, 512
    time = np.arange(length) / sample_rate
    frequencies = np.array([2000.0, 250.0, 1000.0])
    envelope = np.exp(-0.5 * ((time - time.mean()) / 0.004) ** 2)
    values = np.stack([envelope * np.cos(2 * np.pi * f * time) for f in frequencies]).astype(
        np.float32
    )
    return Kernels("synthetic kernels", values, sample_rate, frequencies, np.stack([envelope] * 3))


def test_kernels_panel_selects_and_describes_a_component(qtbot):
    panel = KernelsPanel()
    qtbot.addWidget(panel)
    probe = synthetic_kernels()
    selected, played = [], []
    panel.kernel_selected.connect(selected.append)
    panel.play_requested.connect(lambda samples, rate: played.append((samples, rate)))
    panel.set_probe(probe)
    assert [panel.list.item(row).text().split(":")[1].split()[1] for row in range(3)] == [
        "1",
        "2",
        "0",
    ]
    assert selected == [1]  # the lowest f_c first
    panel.list.setCurrentRow(2)
    assert panel.selected == 0 and "f_c = 2000.0 Hz" in panel.info.text()
    frequencies, decibels = magnitude_response(probe.values[0], probe.sample_rate)
    assert frequencies[np.argmax(decibels)] == pytest.approx(2000.0, abs=8)
    # a Gaussian envelope of sigma s has a -3 dB bandwidth of 2 sqrt(ln 2 * 2) / (2 pi s) ... in Hz:
    expected = 2 * np.sqrt(2 * np.log(np.sqrt(2))) / (2 * np.pi * 0.004)
    assert bandwidth(frequencies, decibels) == pytest.approx(expected, rel=0.1)
    panel.play_button.click()
    assert played and np.array_equal(played[0][0], probe.values[0]) and played[0][1] == 16000
    panel.set_probe(None)
    assert panel.list.count() == 0


def test_activations_sorting_and_selection(qtbot):
    values = np.array([[0.0, 1.0, 0.0], [5.0, 0.0, 0.0], [0.0, 0.0, 2.0]], dtype=np.float32)
    assert list(unit_order(values, "index")) == [0, 1, 2]
    assert list(unit_order(values, "mean activation")) == [1, 2, 0]
    assert list(unit_order(values, "peak time")) == [1, 0, 2]
    panel = ActivationsPanel()
    qtbot.addWidget(panel)
    panel.set_probes({"activations/code": Activations("code", values, 512, 44100)}, has_stems=True)
    assert panel.means_button.isEnabled() and not panel.empty_label.isVisibleTo(panel)
    panel.highlight_unit(2)
    assert (
        panel.selected == {"activations/code": (2,)}
        and len(panel.layers["activations/code"].marks) == 1
    )
    panel.show_source_means({"vocals": {"activations/code": np.array([1.0, 2.0, 3.0])}})
    assert panel.means_plot is not None


def test_pyside_refcount_guard():
    """The pinned PySide6 leaks references to None and True (see qt_fixes); the guard must be
    on whenever it does. When this fails because nothing leaks any more, drop qt_fixes."""
    leaks = qt_fixes.measure_leaks(50)
    if sys.version_info >= (3, 12):
        pytest.skip("None and True are immortal from CPython 3.12")
    if any(leaks.values()):
        assert qt_fixes._applied and sys.getrefcount(None) > qt_fixes.RESERVE // 2
    else:
        assert not qt_fixes._applied


def test_activation_rows_put_a_long_unit_label_in_the_title():
    from explorer.gui.panels.activations import axis_label

    assert axis_label("component (ascending kernel frequency)") == (
        "component",
        "ascending kernel frequency",
    )
    assert axis_label("unit") == ("unit", "")
