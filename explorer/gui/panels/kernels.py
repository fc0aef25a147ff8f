"""Learned kernels: any `Kernels` probe (the mod-cos synthesis kernels).

Left: all kernels as an image (one row per component, sorted by centre frequency when known)
and a list. Clicking a row or a list entry selects a component: its waveform (with envelope),
its magnitude response, f_c and b_c are shown, its activation row is highlighted (through the
session's selection), and `Play kernel` plays it.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from explorer.gui.panels.common import lookup_table, style_plot
from explorer.models.probes import Kernels


def magnitude_response(
    kernel: np.ndarray, sample_rate: int, n_fft: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """`(frequencies Hz, magnitude dB re peak)` of one kernel `(samples,)`."""
    size = max(n_fft, 1 << int(np.ceil(np.log2(max(2, kernel.shape[-1])))))
    spectrum = np.abs(np.fft.rfft(kernel, size))
    decibels = 20 * np.log10(np.maximum(spectrum / max(spectrum.max(), 1e-12), 1e-6))
    return np.fft.rfftfreq(size, 1 / sample_rate), decibels


def bandwidth(frequencies: np.ndarray, decibels: np.ndarray) -> float:
    """The -3 dB bandwidth (Hz) around the peak of a magnitude response."""
    peak = int(np.argmax(decibels))
    low = peak
    while low > 0 and decibels[low - 1] >= -3.0:
        low -= 1
    high = peak
    while high < len(decibels) - 1 and decibels[high + 1] >= -3.0:
        high += 1
    return float(frequencies[high] - frequencies[low])


class KernelsPanel(QWidget):
    kernel_selected = Signal(int)  # component index
    play_requested = Signal(object, int)  # samples (samples,), sample rate

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.probe: Kernels | None = None
        self.order = np.zeros(0, dtype=int)
        self.selected: int | None = None
        self.list = QListWidget()
        self.list.currentRowChanged.connect(self._row_changed)
        self.overview = pg.PlotWidget()
        self.overview.setBackground("#15161a")
        style_plot(self.overview.getPlotItem(), "kernels (rows by f_c)", "component", "time (ms)")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setLookupTable(lookup_table("CET-L4"))
        self.overview.addItem(self.image)
        self.row_mark = pg.InfiniteLine(0, angle=0, pen=pg.mkPen((255, 80, 80)))
        self.overview.addItem(self.row_mark, ignoreBounds=True)
        self.overview.scene().sigMouseClicked.connect(self._overview_clicked)
        self.waveform = pg.PlotWidget()
        self.waveform.setBackground("#15161a")
        style_plot(self.waveform.getPlotItem(), "waveform", "amplitude", "time (ms)")
        self.response = pg.PlotWidget()
        self.response.setBackground("#15161a")
        style_plot(self.response.getPlotItem(), "magnitude response", "dB", "frequency (Hz)")
        self.info = QLabel("no kernels: separate with a model that learns them (mod-cos)")
        self.info.setWordWrap(True)
        self.play_button = QPushButton("Play kernel")
        self.play_button.setEnabled(False)
        self.play_button.clicked.connect(self._play)
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.overview)
        left.addWidget(self.list)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        header = QHBoxLayout()
        header.addWidget(self.info, 1)
        header.addWidget(self.play_button)
        right_layout.addLayout(header)
        right_layout.addWidget(self.waveform, 1)
        right_layout.addWidget(self.response, 1)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(splitter)

    def set_probe(self, probe: Kernels | None) -> None:
        self.probe = probe
        self.list.blockSignals(True)
        self.list.clear()
        self.list.blockSignals(False)
        self.waveform.clear()
        self.response.clear()
        self.selected = None
        self.play_button.setEnabled(probe is not None)
        if probe is None:
            self.image.clear()
            self.info.setText("no kernels: separate with a model that learns them (mod-cos)")
            return
        values = np.asarray(probe.values, dtype=np.float32)
        frequencies = self._centre_frequencies()
        self.order = np.argsort(frequencies, kind="stable")
        peak = float(np.abs(values).max()) or 1.0
        self.image.setImage(values[self.order], levels=(-peak, peak), autoLevels=False)
        milliseconds = 1000.0 * values.shape[1] / probe.sample_rate
        self.image.setRect(0, -0.5, milliseconds, values.shape[0])
        self.overview.getPlotItem().setTitle(
            f"{probe.label}: {values.shape[0]} kernels (rows by f_c)", size="9pt"
        )
        self.list.blockSignals(True)
        for row, component in enumerate(self.order):
            self.list.addItem(
                f"{row:3d}: component {component}  f_c {frequencies[component]:8.1f} Hz"
            )
        self.list.blockSignals(False)
        self.select(int(self.order[0]))

    def _centre_frequencies(self) -> np.ndarray:
        probe = self.probe
        if probe.frequencies is not None:
            return np.asarray(probe.frequencies, dtype=np.float64)
        peaks = []
        for kernel in np.asarray(probe.values):
            frequencies, decibels = magnitude_response(kernel, probe.sample_rate)
            peaks.append(frequencies[int(np.argmax(decibels))])
        return np.asarray(peaks)

    def select(self, component: int) -> None:
        """Show one component (index into the probe's rows)."""
        probe = self.probe
        if probe is None or not 0 <= component < probe.values.shape[0]:
            return
        self.selected = component
        row = int(np.flatnonzero(self.order == component)[0])
        self.row_mark.setValue(row)
        if self.list.currentRow() != row:
            self.list.blockSignals(True)
            self.list.setCurrentRow(row)
            self.list.blockSignals(False)
        kernel = np.asarray(probe.values[component], dtype=np.float64)
        milliseconds = 1000.0 * np.arange(kernel.shape[0]) / probe.sample_rate
        self.waveform.clear()
        self.waveform.plot(milliseconds, kernel, pen=pg.mkPen((120, 200, 255)))
        if probe.envelopes is not None:
            envelope = np.asarray(probe.envelopes[component], dtype=np.float64)
            self.waveform.plot(
                milliseconds, envelope, pen=pg.mkPen((255, 180, 80), style=Qt.PenStyle.DashLine)
            )
        frequencies, decibels = magnitude_response(kernel, probe.sample_rate)
        self.response.clear()
        self.response.plot(frequencies, decibels, pen=pg.mkPen((120, 230, 140)))
        self.response.setYRange(-60, 3)
        centre = float(self._centre_frequencies()[component])
        width = probe.extra.get("bandwidths")
        width_text = (
            f"{float(width[component]):.1f} Hz"
            if width is not None
            else f"{bandwidth(frequencies, decibels):.1f} Hz (-3 dB, measured)"
        )
        self.response.addItem(pg.InfiniteLine(centre, angle=90, pen=pg.mkPen((255, 80, 80))))
        self.info.setText(
            f"component {component}:  f_c = {centre:.1f} Hz,  b_c = {width_text},  "
            f"{kernel.shape[0]} samples ({milliseconds[-1]:.1f} ms)"
        )
        self.kernel_selected.emit(component)

    def _row_changed(self, row: int) -> None:
        if 0 <= row < len(self.order):
            self.select(int(self.order[row]))

    def _overview_clicked(self, event) -> None:
        if self.probe is None or event.button() != Qt.MouseButton.LeftButton:
            return
        plot = self.overview.getPlotItem()
        if plot.sceneBoundingRect().contains(event.scenePos()):
            row = int(round(plot.vb.mapSceneToView(event.scenePos()).y()))
            if 0 <= row < len(self.order):
                self.select(int(self.order[row]))

    def _play(self) -> None:
        if self.probe is not None and self.selected is not None:
            kernel = np.asarray(self.probe.values[self.selected], dtype=np.float32)
            self.play_requested.emit(kernel, int(self.probe.sample_rate))
