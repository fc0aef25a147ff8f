"""Code-layer activations: any `Activations` probe (DAE hidden layers, the mod-cos
representation, DRDNN stage features, the naive-AE code layer), time-aligned with the
spectrograms (x linked to the master time axis).

Units can be sorted (by index, by mean activation, by the time of their peak); clicking a row
selects that unit (Ctrl: add to the selection), which the window may use for code-unit surgery
or to highlight a kernel. `per-source means` shows each unit's mean activation for every true
stem fed alone through the model, when the track has stems.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from explorer.gui.panels.common import add_playhead, lookup_table, place_image, style_plot
from explorer.models.probes import Activations

SORTS = ("index", "mean activation", "peak time")
ROW_HEIGHT = 160
SOURCE_COLOURS = [(230, 120, 90), (90, 170, 240), (120, 220, 120), (230, 200, 90), (200, 130, 230)]


def unit_order(values: np.ndarray, sort: str) -> np.ndarray:
    """The display order of units `(units, frames)`: row `i` of the image shows unit `order[i]`."""
    if sort == "mean activation":
        return np.argsort(-values.mean(axis=1), kind="stable")
    if sort == "peak time":
        return np.argsort(values.argmax(axis=1), kind="stable")
    return np.arange(values.shape[0])


@dataclass
class LayerView:
    key: str
    probe: Activations
    plot: pg.PlotItem
    image: pg.ImageItem
    order: np.ndarray
    marks: list


def axis_label(unit_label: str) -> tuple[str, str]:
    """A unit label split for a short row: the name for the axis, the parenthetical for the
    title ("component (ascending kernel frequency)": rotated on a 120 px row, the whole label
    ran into the rows above and below)."""
    name, bracket, detail = unit_label.partition(" (")
    return (name, detail.rstrip(")")) if bracket else (unit_label, "")


class ActivationsPanel(QWidget):
    units_selected = Signal(str, object)  # probe key, tuple of unit indices
    source_means_requested = Signal()
    surgery_requested = Signal(str, object)  # probe key, units: listen to them alone

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.time_link = None
        self.layers: dict[str, LayerView] = {}
        self.selected: dict[str, tuple[int, ...]] = {}
        self.colour_map = "viridis"
        self.sort_box = QComboBox()
        self.sort_box.addItems(SORTS)
        self.sort_box.setToolTip("order of the units (rows)")
        self.sort_box.currentTextChanged.connect(lambda _: self._redraw_all())
        self.log_box = QCheckBox("log")
        self.log_box.setToolTip("show log(1 + activation)")
        self.log_box.setChecked(True)
        self.log_box.toggled.connect(lambda _: self._redraw_all())
        self.means_button = QPushButton("Per-source means")
        self.means_button.setToolTip("mean activation of each unit for each true stem fed alone")
        self.means_button.clicked.connect(self.source_means_requested)
        self.means_button.setEnabled(False)
        self.surgery_button = QPushButton("Listen to selected units")
        self.surgery_button.setToolTip(
            "code-unit surgery: decode the track from the selected units only"
        )
        self.surgery_button.setEnabled(False)
        self.surgery_button.clicked.connect(self._surgery)
        self.surgery_keys: set[str] = set()  # probe keys whose units the model can decode alone
        self.selection_label = QLabel("click a row to select a unit (Ctrl adds)")
        controls = QHBoxLayout()
        for widget in (
            QLabel("sort"),
            self.sort_box,
            self.log_box,
            self.means_button,
            self.selection_label,
        ):
            controls.addWidget(widget)
        controls.addStretch(1)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("#15161a")
        self.graphics.scene().sigMouseClicked.connect(self._clicked)
        self.empty_label = QLabel(
            "no activations: separate with a model that has a code layer (DAE, SF, mod-cos…)"
        )
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.graphics)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(controls)
        layout.addWidget(self.empty_label)
        layout.addWidget(scroll, 1)
        self.means_plot: pg.PlotItem | None = None

    def set_time_link(self, link) -> None:
        """The window's shared time axis (`common.AxisLink`)."""
        self.time_link = link

    def set_probes(self, found: dict, has_stems: bool) -> None:
        """Show every `Activations` among `found` (`{key: probe}`), one plot per layer."""
        self.graphics.clear()
        self.layers.clear()
        self.selected.clear()
        self.surgery_button.setEnabled(False)
        self.means_plot = None
        activations = [
            (key, probe) for key, probe in found.items() if isinstance(probe, Activations)
        ]
        self.empty_label.setVisible(not activations)
        self.means_button.setEnabled(bool(activations) and has_stems)
        for row, (key, probe) in enumerate(activations):
            plot = self.graphics.addPlot(row=row, col=0)
            unit, detail = axis_label(probe.unit_label)
            style_plot(
                plot,
                f"{probe.label}  ·  {detail}" if detail else probe.label,
                unit,
                "time (s)" if row == len(activations) - 1 else None,
            )
            plot.getAxis("left").setWidth(48)
            plot.setMinimumHeight(ROW_HEIGHT)
            plot.vb.disableAutoRange()
            image = pg.ImageItem(axisOrder="row-major")
            image.setLookupTable(lookup_table(self.colour_map))
            plot.addItem(image)
            add_playhead(plot)
            if self.time_link is not None:
                self.time_link.add(plot)
            view = LayerView(key, probe, plot, image, np.arange(probe.values.shape[0]), [])
            self.layers[key] = view
            self._draw(view)
            plot.setYRange(-0.5, probe.values.shape[0] - 0.5, padding=0)
        self.graphics.setMinimumHeight(ROW_HEIGHT * max(1, len(activations)))

    def _redraw_all(self) -> None:
        for view in self.layers.values():
            self._draw(view)

    def _draw(self, view: LayerView) -> None:
        values = np.asarray(view.probe.values, dtype=np.float32)
        view.order = unit_order(values, self.sort_box.currentText())
        shown = values[view.order]
        if self.log_box.isChecked():
            shown = np.log1p(np.maximum(shown, 0.0))
        high = float(np.percentile(shown, 99.5)) if shown.size else 1.0
        view.image.setImage(
            shown,
            levels=(float(shown.min()) if shown.size else 0.0, max(high, 1e-6)),
            autoLevels=False,
        )
        place_image(view.image, shown.shape[1], shown.shape[0], view.probe.frame_seconds, 1.0)
        self._mark(view)

    def set_playhead(self, seconds: float) -> None:
        for view in self.layers.values():
            for item in view.plot.items:
                if isinstance(item, pg.InfiniteLine) and item.angle == 90:
                    item.setValue(seconds)

    def highlight_unit(self, unit: int | None) -> None:
        """Mark unit `unit` (e.g. the selected kernel's component) in every layer that has it."""
        for key, view in self.layers.items():
            if unit is None:
                self.selected.pop(key, None)
            elif unit < view.probe.values.shape[0]:
                self.selected[key] = (unit,)
            self._mark(view)

    def _mark(self, view: LayerView) -> None:
        for item in view.marks:
            view.plot.removeItem(item)
        view.marks = []
        rows = {
            int(unit): int(np.flatnonzero(view.order == unit)[0])
            for unit in self.selected.get(view.key, ())
        }
        for row in rows.values():
            line = pg.InfiniteLine(row, angle=0, pen=pg.mkPen((255, 80, 80), width=1))
            view.plot.addItem(line, ignoreBounds=True)
            view.marks.append(line)

    def _clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        for key, view in self.layers.items():
            if view.plot.sceneBoundingRect().contains(event.scenePos()):
                row = int(round(view.plot.vb.mapSceneToView(event.scenePos()).y()))
                if not 0 <= row < len(view.order):
                    return
                unit = int(view.order[row])
                current = set(self.selected.get(key, ()))
                if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
                    current ^= {unit}
                else:
                    current = {unit}
                self.selected[key] = tuple(sorted(current))
                self._mark(view)
                self.selection_label.setText(
                    f"{view.probe.unit_label}s {', '.join(map(str, self.selected[key]))} "
                    f"of {view.probe.label}"
                )
                self.units_selected.emit(key, self.selected[key])
                self.surgery_button.setEnabled(
                    key in self.surgery_keys and bool(self.selected[key])
                )
                return

    def _surgery(self) -> None:
        for key, units in self.selected.items():
            if key in self.surgery_keys and units:
                self.surgery_requested.emit(key, units)
                return

    def show_source_means(self, means: dict[str, dict[str, np.ndarray]]) -> None:
        """`{source: {probe key: (units,) mean activation}}`: curves per source, first layer
        with data, units in the current sort order."""
        if self.means_plot is not None:
            self.graphics.removeItem(self.means_plot)
        key = next(
            (key for key in self.layers if any(key in values for values in means.values())), None
        )
        if key is None:
            return
        view = self.layers[key]
        plot = self.graphics.addPlot(row=len(self.layers), col=0)
        style_plot(
            plot,
            f"mean activation per source: {view.probe.label}",
            "mean",
            f"{view.probe.unit_label} (sorted as above)",
        )
        plot.setMinimumHeight(ROW_HEIGHT)
        plot.addLegend(offset=(10, 5))
        for index, (source, values) in enumerate(means.items()):
            if key in values:
                plot.plot(
                    np.asarray(values[key])[view.order],
                    pen=pg.mkPen(SOURCE_COLOURS[index % len(SOURCE_COLOURS)]),
                    name=source,
                )
        self.means_plot = plot
        self.graphics.setMinimumHeight(ROW_HEIGHT * (len(self.layers) + 1))
