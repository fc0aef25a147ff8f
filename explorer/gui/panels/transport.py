"""Transport: the waveform overview (click to seek, drag a loop region), play/pause/stop,
loop, A/B between the mixture and the separation, and per-stem solo, mute and gain."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from explorer.gui.panels.common import SELECTION_BRUSH, add_playhead, style_plot

OVERVIEW_POINTS = 4000


class TransportPanel(QWidget):
    play_toggled = Signal()
    stop_requested = Signal()
    seek_requested = Signal(float)
    loop_changed = Signal(object)  # (start, stop) seconds or None
    source_changed = Signal(str)  # "mixture" or "separation"
    gain_changed = Signal(str, float)
    mute_changed = Signal(str, bool)
    solo_changed = Signal(str, bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.seconds = 0.0
        style = self.style()
        self.play_button = QPushButton(
            style.standardIcon(QStyle.StandardPixmap.SP_MediaPlay), "Play"
        )
        self.play_button.setToolTip("play / pause (Space)")
        self.play_button.clicked.connect(self.play_toggled)
        self.stop_button = QPushButton(
            style.standardIcon(QStyle.StandardPixmap.SP_MediaStop), "Stop"
        )
        self.stop_button.clicked.connect(self.stop_requested)
        self.loop_box = QCheckBox("Loop")
        self.loop_box.setToolTip("loop the region dragged on the overview")
        self.loop_box.toggled.connect(self._loop_toggled)
        self.ab_button = QPushButton("A/B: separation")
        self.ab_button.setCheckable(True)
        self.ab_button.setToolTip(
            "switch between the separation (stems) and the original mixture (B)"
        )
        self.ab_button.toggled.connect(self._ab_toggled)
        self.time_label = QLabel("0:00.00 / 0:00.00")
        self.time_label.setMinimumWidth(130)
        self.engine_label = QLabel("")
        self.engine_label.setStyleSheet("color: #999")
        buttons = QHBoxLayout()
        for widget in (
            self.play_button,
            self.stop_button,
            self.loop_box,
            self.ab_button,
            self.time_label,
        ):
            buttons.addWidget(widget)
        buttons.addStretch(1)
        buttons.addWidget(self.engine_label)

        self.overview = pg.PlotWidget()
        self.overview.setBackground("#15161a")
        self.overview.setFixedHeight(80)
        plot = self.overview.getPlotItem()
        style_plot(plot, "", "", None)
        plot.hideAxis("left")
        plot.setMouseEnabled(x=False, y=False)
        self.curve = plot.plot(
            pen=pg.mkPen((120, 170, 230), width=1),
            fillLevel=0,
            fillBrush=pg.mkBrush(80, 120, 180, 120),
        )
        self.lower_curve = plot.plot(
            pen=pg.mkPen((120, 170, 230), width=1),
            fillLevel=0,
            fillBrush=pg.mkBrush(80, 120, 180, 120),
        )
        self.playhead = add_playhead(plot)
        self.loop_region = pg.LinearRegionItem((0, 0), brush=SELECTION_BRUSH)
        self.loop_region.setZValue(10)
        self.loop_region.sigRegionChangeFinished.connect(self._loop_moved)
        plot.addItem(self.loop_region, ignoreBounds=True)
        self.loop_region.hide()  # shown while Loop is on
        self.view_region = pg.LinearRegionItem(
            (0, 0),
            brush=pg.mkBrush(255, 255, 255, 20),
            movable=False,
            pen=pg.mkPen(255, 255, 255, 60),
        )
        for line in self.view_region.lines:
            line.setMovable(False)
        plot.addItem(self.view_region, ignoreBounds=True)
        self.overview.scene().sigMouseClicked.connect(self._clicked)

        self.stem_grid = QGridLayout()
        self.stem_grid.setHorizontalSpacing(6)
        self.stem_widgets: dict[str, tuple[QCheckBox, QCheckBox, QSlider]] = {}
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addLayout(buttons)
        layout.addWidget(self.overview)
        layout.addLayout(self.stem_grid)
        layout.addStretch(1)
        self.setMaximumHeight(230)

    # ------------------------------------------------------------------ content
    def set_waveform(self, samples: np.ndarray, sample_rate: int) -> None:
        """`samples (channels, samples)`: draw the min/max envelope of the mono sum."""
        mono = np.asarray(samples, dtype=np.float32)
        mono = mono.mean(axis=0) if mono.ndim == 2 else mono
        self.seconds = mono.shape[-1] / sample_rate
        step = max(1, mono.shape[-1] // OVERVIEW_POINTS)
        usable = mono[: mono.shape[-1] // step * step].reshape(-1, step)
        times = (np.arange(usable.shape[0]) + 0.5) * step / sample_rate
        self.curve.setData(times, usable.max(axis=1))
        self.lower_curve.setData(times, usable.min(axis=1))
        plot = self.overview.getPlotItem()
        plot.setXRange(0, self.seconds, padding=0.0)
        peak = float(np.abs(usable).max()) if usable.size else 1.0
        plot.setYRange(-peak, peak, padding=0.05)
        self.loop_region.setRegion((0, min(self.seconds, 2.0)))
        self.loop_region.setBounds((0, self.seconds))
        self.set_position(0.0)

    def set_stems(self, stems: list[str], muted: tuple[str, ...] = ()) -> None:
        """One row per playable stem: name, solo, mute, gain (dB)."""
        while self.stem_grid.count():
            item = self.stem_grid.takeAt(0)
            if item.widget() is not None:
                item.widget().hide()  # at once: deleteLater waits for the event loop
                item.widget().deleteLater()
        self.stem_widgets.clear()
        for row, stem in enumerate(stems):
            label = QLabel(stem)
            solo = QCheckBox("S")
            solo.setToolTip(f"solo {stem}")
            mute = QCheckBox("M")
            mute.setToolTip(f"mute {stem}")
            mute.setChecked(stem in muted)
            gain = QSlider(Qt.Orientation.Horizontal)
            gain.setRange(-40, 12)
            gain.setValue(0)
            gain.setToolTip(f"{stem} gain (dB)")
            gain.setMaximumWidth(160)
            solo.toggled.connect(lambda on, stem=stem: self.solo_changed.emit(stem, on))
            mute.toggled.connect(lambda on, stem=stem: self.mute_changed.emit(stem, on))
            gain.valueChanged.connect(
                lambda value, stem=stem: self.gain_changed.emit(
                    stem, 0.0 if value <= -40 else 10 ** (value / 20)
                )
            )
            column = (row % 3) * 4
            for offset, widget in enumerate((label, solo, mute, gain)):
                self.stem_grid.addWidget(widget, row // 3, column + offset)
            self.stem_widgets[stem] = (solo, mute, gain)

    def set_playing(self, playing: bool) -> None:
        icon = (
            QStyle.StandardPixmap.SP_MediaPause if playing else QStyle.StandardPixmap.SP_MediaPlay
        )
        self.play_button.setIcon(self.style().standardIcon(icon))
        self.play_button.setText("Pause" if playing else "Play")

    def set_position(self, seconds: float) -> None:
        self.playhead.setValue(seconds)
        self.time_label.setText(f"{_clock(seconds)} / {_clock(self.seconds)}")

    def show_view_range(self, start: float, stop: float) -> None:
        """Mark on the overview what the linked panels show."""
        self.view_region.setRegion((max(0.0, start), min(self.seconds, stop)))

    def set_engine_status(self, text: str) -> None:
        self.engine_label.setText(text)
        self.engine_label.setToolTip(text)

    def loop_span(self) -> tuple[float, float] | None:
        if not self.loop_box.isChecked():
            return None
        low, high = self.loop_region.getRegion()
        return (float(low), float(high)) if high > low else None

    # ------------------------------------------------------------------ events
    def _clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        plot = self.overview.getPlotItem()
        if not plot.sceneBoundingRect().contains(event.scenePos()):
            return
        seconds = plot.vb.mapSceneToView(event.scenePos()).x()
        self.seek_requested.emit(min(max(0.0, seconds), self.seconds))

    def _loop_toggled(self, on: bool) -> None:
        self.loop_region.setVisible(on)
        self.loop_changed.emit(self.loop_span())

    def _loop_moved(self) -> None:
        if self.loop_box.isChecked():
            self.loop_changed.emit(self.loop_span())

    def _ab_toggled(self, mixture: bool) -> None:
        self.ab_button.setText("A/B: mixture" if mixture else "A/B: separation")
        self.source_changed.emit("mixture" if mixture else "separation")


def _clock(seconds: float) -> str:
    minutes, rest = divmod(max(0.0, seconds), 60)
    return f"{int(minutes)}:{rest:05.2f}"
