"""Couplings and weight matrices: any `Matrix` probe, and the NCA strategies side by side.

Each matrix is an image (rows = outputs, columns = inputs, row 0 at the top); all shown
matrices share zoom and pan. Clicking a cell selects its row (an output frequency) and column
(an input frequency): the profile below plots the row (which inputs feed that output) and the
column (which outputs that input feeds), and the window marks the frequencies on the
spectrograms. Titles carry TOD-R and the approximation SNRs when the matrix has them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from explorer.audio.io import atomic_output
from explorer.gui.panels.common import AxisLink, control_rows, lookup_table, style_plot
from explorer.models.probes import Matrix

NCA_VIEW = "NCA strategies"
STRATEGIES = ("student", "compositional", "linear", "identity")
TOP_INPUTS = 5


def matrix_title(matrix: Matrix) -> str:
    """The name and TOD-R, then the SNRs on a second line (one line set each plot's minimum
    width, and a 2 x 2 grid overflowed a dock beside the spectrograms)."""
    metrics = matrix.metrics
    first = [matrix.label]
    if metrics.get("tod_r") is not None:
        first.append(f"TOD-R {metrics['tod_r']:.3g}")
    snrs = [
        f"→{name} {metrics[key]:.1f}"
        for key, name in (("snr_to_model_db", "model"), ("snr_to_true_db", "true"))
        if metrics.get(key) is not None
    ]
    second = [f"SNR dB {', '.join(snrs)}"] if snrs else []
    return "<br>".join("  ·  ".join(line) for line in (first, second) if line)


def write_matrix(path: str | Path, values: np.ndarray) -> Path:
    """`.npy` or `.csv` (by suffix), atomically."""
    path = Path(path)
    with atomic_output(path) as temporary:
        if path.suffix.lower() == ".csv":
            with open(temporary, "w", newline="") as handle:
                csv.writer(handle).writerows(np.asarray(values).tolist())
        else:
            with open(temporary, "wb") as handle:
                np.save(handle, np.asarray(values))
    return path


@dataclass
class MatrixView:
    matrix: Matrix
    plot: pg.PlotItem
    image: pg.ImageItem
    marks: list


class MatrixPanel(QWidget):
    compute_requested = Signal()
    step_requested = Signal(int)  # -1 previous block, +1 next
    cell_selected = Signal(int, int)  # row, column
    frequencies_marked = Signal(object)  # list of Hz

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.probe_matrices: dict[str, Matrix] = {}
        self.nca_matrices: dict[str, Matrix] = {}
        self.views: list[MatrixView] = []
        self.bin_hertz: float | None = None
        self.selection: tuple[int, int] | None = None
        self._build_controls()
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("#15161a")
        self.graphics.scene().sigMouseClicked.connect(self._clicked)
        self.profile = pg.PlotWidget()
        self.profile.setBackground("#15161a")
        self.profile.setMaximumHeight(170)
        style_plot(self.profile.getPlotItem(), "click a matrix cell", "weight", "index")
        self.profile.addLegend(offset=(-10, 5), brush=pg.mkBrush(20, 20, 26, 200))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(self.controls)
        layout.addWidget(self.graphics, 3)
        layout.addWidget(self.profile, 1)
        self.set_nca_available(False, "NCA needs a DAE, MSS-DAE or SF model")

    def _build_controls(self) -> None:
        self.view_box = QComboBox()
        # Sized to a short name, not the longest probe title: the dock stays narrow.
        self.view_box.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.view_box.setMinimumContentsLength(20)
        self.view_box.setToolTip("which matrix to show")
        self.view_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.view_box.setMinimumWidth(170)
        self.view_box.currentTextChanged.connect(lambda _: self._show())
        self.strategy_boxes = {name: QCheckBox(name) for name in STRATEGIES}
        for box in self.strategy_boxes.values():
            box.setChecked(True)
        self.iterations_box = QSpinBox()
        self.iterations_box.setRange(0, 5000)
        self.iterations_box.setValue(600)
        self.iterations_box.setToolTip("Adam iterations of the learned strategies (the paper: 600)")
        self.frames_box = QSpinBox()
        self.frames_box.setRange(4, 5000)
        self.frames_box.setValue(360)
        self.frames_box.setToolTip("frames per NCA block (T)")
        self.previous_button = QPushButton("◀ block")
        self.previous_button.setToolTip("previous NCA block ([)")
        self.previous_button.clicked.connect(lambda: self.step_requested.emit(-1))
        self.next_button = QPushButton("block ▶")
        self.next_button.setToolTip("next NCA block (])")
        self.next_button.clicked.connect(lambda: self.step_requested.emit(1))
        self.compute_button = QPushButton("Compute NCA")
        self.compute_button.clicked.connect(self.compute_requested)
        self.block_label = QLabel("")
        self.block_label.setWordWrap(True)  # a reason or a block's times, on a row of its own
        self.controls = control_rows(
            [QLabel("show"), self.view_box, *self.strategy_boxes.values()],
            [
                QLabel("iterations"),
                self.iterations_box,
                QLabel("T"),
                self.frames_box,
                self.previous_button,
                self.compute_button,
                self.next_button,
            ],
            [self.block_label],
        )

    def strategies(self) -> list[str]:
        return [name for name, box in self.strategy_boxes.items() if box.isChecked()]

    def set_nca_available(self, available: bool, reason: str = "") -> None:
        for widget in (
            *self.strategy_boxes.values(),
            self.iterations_box,
            self.frames_box,
            self.previous_button,
            self.next_button,
            self.compute_button,
        ):
            widget.setEnabled(available)
        self.compute_button.setToolTip(
            "compute the couplings of the selected block" if available else reason
        )
        if not available:
            self.block_label.setText(reason)

    def set_block_text(self, text: str) -> None:
        self.block_label.setText(text)

    # ------------------------------------------------------------------ content
    def set_probe_matrices(self, matrices: dict[str, Matrix], bin_hertz: float | None) -> None:
        self.probe_matrices = matrices
        self.nca_matrices = {}
        self.bin_hertz = bin_hertz
        self._refill_views(prefer=None)

    def set_nca(self, matrices: dict[str, Matrix]) -> None:
        self.nca_matrices = matrices
        self._refill_views(prefer=NCA_VIEW)

    def _refill_views(self, prefer: str | None) -> None:
        current = prefer or self.view_box.currentText()
        names = ([NCA_VIEW] if self.nca_matrices else []) + [
            m.label for m in self.probe_matrices.values()
        ]
        self.view_box.blockSignals(True)
        self.view_box.clear()
        self.view_box.addItems(names)
        if current in names:
            self.view_box.setCurrentText(current)
        self.view_box.blockSignals(False)
        self._show()

    def shown(self) -> list[Matrix]:
        name = self.view_box.currentText()
        if name == NCA_VIEW:
            return list(self.nca_matrices.values())
        return [m for m in self.probe_matrices.values() if m.label == name]

    def _show(self) -> None:
        """Lay the shown matrices out in a grid (2 x 2 for the four strategies), sharing zoom.
        The next block's matrices of the same shapes reuse the plots (and keep the zoom)."""
        shown = self.shown()
        if [m.values.shape for m in shown] == [v.matrix.values.shape for v in self.views] and shown:
            for view, matrix in zip(self.views, shown, strict=True):
                view.matrix = matrix
                view.plot.setTitle(matrix_title(matrix), size="8pt")
                view.plot.setLabels(left=matrix.row_label, bottom=matrix.column_label)
                values = np.abs(np.asarray(matrix.values, dtype=np.float32))
                high = float(np.percentile(values, 99.5)) if values.size else 1.0
                view.image.setImage(values, levels=(0.0, max(high, 1e-9)), autoLevels=False)
            if self.selection is not None:
                self.select_cell(*self.selection)
            return
        self.graphics.clear()
        self.views = []
        self._links = None
        self._generation = getattr(self, "_generation", 0) + 1
        columns = max(1, int(np.ceil(np.sqrt(len(shown)))))
        if not self.isVisible():
            for index, matrix in enumerate(shown):
                self._add_view(index, matrix, columns)
            self._laid_out()
            return
        # Shown: one plot per event-loop turn (a new plot costs ~15-30 ms of GUI time).
        generation = self._generation

        def step(index: int) -> None:
            if generation != self._generation:
                return  # another layout replaced this one
            if index < len(shown):
                self._add_view(index, shown[index], columns)
                QTimer.singleShot(1, lambda: step(index + 1))  # one per pass
            else:
                self._laid_out()

        step(0)

    def _add_view(self, index: int, matrix: Matrix, columns: int) -> None:
        plot = self.graphics.addPlot(row=index // columns, col=index % columns)
        style_plot(plot, matrix_title(matrix), matrix.row_label, matrix.column_label)
        plot.setTitle(matrix_title(matrix), size="8pt")
        plot.invertY(True)
        plot.vb.disableAutoRange()
        image = pg.ImageItem(axisOrder="row-major")
        image.setLookupTable(lookup_table("CET-L1"))
        values = np.abs(np.asarray(matrix.values, dtype=np.float32))
        high = float(np.percentile(values, 99.5)) if values.size else 1.0
        image.setImage(values, levels=(0.0, max(high, 1e-9)), autoLevels=False)
        image.setRect(-0.5, -0.5, values.shape[1], values.shape[0])
        plot.addItem(image)
        plot.setRange(
            xRange=(-0.5, values.shape[1] - 0.5),
            yRange=(-0.5, values.shape[0] - 0.5),
            padding=0,
        )
        if self._links is None:
            self._links = (AxisLink(plot, "x"), AxisLink(plot, "y"))
        else:
            self._links[0].add(plot)
            self._links[1].add(plot)
        self.views.append(MatrixView(matrix, plot, image, []))

    def _laid_out(self) -> None:
        if self.selection is not None:
            self.select_cell(*self.selection)

    # ------------------------------------------------------------------ selection
    def _clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        for view in self.views:
            if view.plot.sceneBoundingRect().contains(event.scenePos()):
                point = view.plot.vb.mapSceneToView(event.scenePos())
                row, column = int(round(point.y())), int(round(point.x()))
                rows, columns = view.matrix.values.shape
                if 0 <= row < rows and 0 <= column < columns:
                    self.select_cell(row, column)
                    self.cell_selected.emit(row, column)
                return

    def select_cell(self, row: int, column: int) -> None:
        """Show row `row` and column `column` of the first shown matrix in the profile, mark
        them on every matrix, and announce the frequencies to mark on the spectrograms."""
        self.selection = (row, column)
        for view in self.views:
            for item in view.marks:
                view.plot.removeItem(item)
            pen = pg.mkPen((255, 90, 90), width=1)
            view.marks = [
                pg.InfiniteLine(row, angle=0, pen=pen),
                pg.InfiniteLine(column, angle=90, pen=pen),
            ]
            for item in view.marks:
                view.plot.addItem(item, ignoreBounds=True)
        self.profile.clear()
        if not self.views:
            return
        matrix = self.views[0].matrix
        values = np.asarray(matrix.values)
        if not (0 <= row < values.shape[0] and 0 <= column < values.shape[1]):
            return
        scale = self.bin_hertz if self.bin_hertz and values.shape[0] == values.shape[1] else None
        axis = np.arange(max(values.shape)) * (scale or 1.0)
        self.profile.plot(
            axis[: values.shape[1]],
            values[row],
            pen=pg.mkPen((90, 170, 240)),
            name=f"row {row}: inputs feeding output {self._name(row)}",
        )
        self.profile.plot(
            axis[: values.shape[0]],
            values[:, column],
            pen=pg.mkPen((240, 160, 80)),
            name=f"column {column}: outputs fed by input {self._name(column)}",
        )
        self.profile.getPlotItem().setLabel("bottom", "frequency (Hz)" if scale else "index")
        self.profile.getPlotItem().setTitle(matrix.label, size="8pt")
        if scale:
            strongest = np.argsort(-np.abs(values[row]))[:TOP_INPUTS]
            self.frequencies_marked.emit(
                [row * scale] + [int(index) * scale for index in strongest]
            )

    def _name(self, index: int) -> str:
        return f"{index * self.bin_hertz:.0f} Hz" if self.bin_hertz else str(index)

    def export(self, path: str | Path) -> Path:
        shown = self.shown()
        if not shown:
            raise ValueError("no matrix shown")
        return write_matrix(path, shown[0].values)
