"""Training in the background: choose a model kind, data and epochs; watch the loss while
exploring and listening; pause, resume, cancel; load the checkpoint into the session.

The panel only collects settings and draws progress; the window runs the training loop
(`explorer.training.loop.train`, a generator) in a worker thread. Checkpoints are written
atomically by the loop after every epoch, so `Load into session` works at any checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from explorer.gui.panels.common import style_plot
from explorer.progress import Progress

CURRENT_TRACK = "current track"
DATA_CHOICES = (CURRENT_TRACK, "demo", "synth:4x5", "synth")
FRONTENDS = ("taslp2020-quick", "taslp2020-small", "taslp2020")


class TrainingPanel(QWidget):
    start_requested = Signal(dict)
    pause_toggled = Signal(bool)
    cancel_requested = Signal()
    load_requested = Signal(str)

    def __init__(self, kinds: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.started_at = 0.0
        self.kind_box = QComboBox()
        self.kind_box.addItems(kinds)
        self.frontend_box = QComboBox()
        self.frontend_box.addItems(FRONTENDS)
        self.frontend_box.setToolTip(
            "front-end preset: quick (513 bins) trains in minutes on a CPU"
        )
        self.data_box = QComboBox()
        self.data_box.setEditable(True)
        self.data_box.addItems(DATA_CHOICES)
        self.data_box.setToolTip(
            "the current track, a MUSDB18(-HQ) root or track folder, 'demo' or 'synth:NxS'"
        )
        browse = QPushButton("…")
        browse.setToolTip("choose a dataset root or track folder")
        browse.clicked.connect(self._browse_data)
        data_row = QHBoxLayout()
        data_row.addWidget(self.data_box, 1)
        data_row.addWidget(browse)
        self.epochs_box = QSpinBox()
        self.epochs_box.setRange(1, 10000)
        self.epochs_box.setValue(10)
        self.steps_box = QSpinBox()
        self.steps_box.setRange(0, 100000)
        self.steps_box.setValue(50)
        self.steps_box.setToolTip("cap on batches per epoch (0: whole epochs)")
        self.output_edit = QLineEdit(str(Path.cwd() / "gui-training.pt"))
        form = QFormLayout()
        form.addRow("model", self.kind_box)
        form.addRow("front-end", self.frontend_box)
        form.addRow("data", data_row)
        form.addRow("epochs", self.epochs_box)
        form.addRow("steps / epoch", self.steps_box)
        form.addRow("checkpoint", self.output_edit)
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self._start)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self._pause_toggled)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.load_button = QPushButton("Load into session")
        self.load_button.setToolTip("separate the current track with the latest checkpoint")
        self.load_button.clicked.connect(lambda: self.load_requested.emit(self.output_edit.text()))
        buttons = QHBoxLayout()
        for button in (self.start_button, self.pause_button, self.cancel_button, self.load_button):
            buttons.addWidget(button)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.status_label = QLabel("idle")
        self.status_label.setWordWrap(True)
        self.loss_plot = pg.PlotWidget()
        self.loss_plot.setBackground("#15161a")
        style_plot(self.loss_plot.getPlotItem(), "loss", "loss", "step")
        self.loss_plot.getPlotItem().setLogMode(y=True)
        self.loss_plot.addLegend(offset=(10, 5))
        self.train_curve = self.loss_plot.plot(
            [], [], pen=pg.mkPen((120, 170, 240)), name="train (running mean)"
        )
        self.validation_curve = self.loss_plot.plot(
            [], [], pen=pg.mkPen((240, 160, 80)), symbol="o", symbolSize=6, name="validation"
        )
        self.train_points: tuple[list[float], list[float]] = ([], [])
        self.validation_points: tuple[list[float], list[float]] = ([], [])
        controls = QVBoxLayout()
        controls.addLayout(form)
        controls.addLayout(buttons)
        controls.addWidget(self.progress_bar)
        controls.addWidget(self.status_label)
        controls.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(controls, 2)
        layout.addWidget(self.loss_plot, 3)
        self.set_running(False)
        self.load_button.setEnabled(False)

    def parameters(self) -> dict:
        return {
            "kind": self.kind_box.currentText(),
            "frontend": self.frontend_box.currentText(),
            "data": self.data_box.currentText().strip(),
            "epochs": self.epochs_box.value(),
            "steps": self.steps_box.value(),
            "out": self.output_edit.text().strip(),
        }

    def _start(self) -> None:
        self.start_requested.emit(self.parameters())

    def _browse_data(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Training data: dataset root or track folder"
        )
        if folder:
            self.data_box.setEditText(folder)

    def _pause_toggled(self, paused: bool) -> None:
        self.pause_button.setText("Resume" if paused else "Pause")
        self.pause_toggled.emit(paused)

    def set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.cancel_button.setEnabled(running)
        if not running:
            self.pause_button.blockSignals(True)
            self.pause_button.setChecked(False)
            self.pause_button.setText("Pause")
            self.pause_button.blockSignals(False)

    def started(self) -> None:
        self.started_at = time.monotonic()
        self.train_points = ([], [])
        self.validation_points = ([], [])
        self.train_curve.setData([], [])
        self.validation_curve.setData([], [])
        self.progress_bar.setValue(0)
        self.status_label.setText("starting…")
        self.set_running(True)

    def show_progress(self, progress: Progress) -> None:
        self.progress_bar.setValue(int(1000 * progress.fraction))
        elapsed = time.monotonic() - self.started_at
        eta = ""
        if 0.01 < progress.fraction < 1:
            remaining = elapsed * (1 - progress.fraction) / progress.fraction
            eta = f"  ETA {int(remaining // 60)}:{int(remaining % 60):02d}"
        self.status_label.setText(f"{progress.message}{eta}")
        payload = progress.payload if isinstance(progress.payload, dict) else {}
        if "loss" in payload:
            self.train_points[0].append(progress.done)
            self.train_points[1].append(max(float(payload["loss"]), 1e-12))
            self.train_curve.setData(*self.train_points)
        if "validation_loss" in payload:
            self.validation_points[0].append(progress.done)
            self.validation_points[1].append(max(float(payload["validation_loss"]), 1e-12))
            self.validation_curve.setData(*self.validation_points)
            self.load_button.setEnabled(True)

    def finished(self, text: str, checkpoint_ready: bool) -> None:
        self.set_running(False)
        self.status_label.setText(text)
        if checkpoint_ready:
            self.load_button.setEnabled(True)
            self.progress_bar.setValue(1000)
