"""Live mask editing: the mask of one stem over the mixture, with tools.

The mask is drawn in its own representation: over the mixture spectrogram (rows in Hz) for an
STFT mask, or over the mixture's learned representation A = E(m) (rows are components, on a
"component" axis) for a model such as mod-cos.

Tools (left mouse button): toggle a cell, paint or erase with a square brush, or fill a
rectangle (with Shift: erase it). The right button and the wheel still pan and zoom. A brush
stroke or a rectangle is one edit (one undo step), applied when the mouse is released; while
dragging, the overlay shows the stroke. Every edit goes to the Session, which re-synthesises
only the affected frames and hands them to the playback engine.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QGraphicsRectItem,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from explorer.gui.panels.common import (
    add_playhead,
    control_rows,
    lookup_table,
    place_image,
    style_plot,
)
from explorer.gui.spectra import Spectrogram
from explorer.session import MaskLayer

TOOLS = ("toggle", "brush", "erase", "rectangle")


def overlay_table() -> np.ndarray:
    """RGBA lookup: 0 (removed) nearly hides the spectrogram under dark blue, 1 (kept) leaves it
    as it is, so what is heard is what stays bright."""
    ramp = np.linspace(0.0, 1.0, 256)[:, None]
    removed = np.array([[8, 10, 28, 215]])
    kept = np.array([[0, 0, 0, 0]])
    return (removed * (1 - ramp) + kept * ramp).astype(np.uint8)


class MaskViewBox(pg.ViewBox):
    """A ViewBox whose left button drives the mask tools (the panel handles them)."""

    def __init__(self, panel: MaskPanel) -> None:
        super().__init__()
        self.panel = panel

    def mouseClickEvent(self, event) -> None:  # noqa: N802 - pyqtgraph's name
        if event.button() == Qt.MouseButton.LeftButton and self.panel.layer is not None:
            event.accept()
            self.panel.click(self.mapSceneToView(event.scenePos()))
        else:
            super().mouseClickEvent(event)

    def mouseDragEvent(self, event, axis=None) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton and self.panel.layer is not None:
            event.accept()
            shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
            self.panel.drag(
                self.mapSceneToView(event.buttonDownScenePos()),
                self.mapSceneToView(event.scenePos()),
                event.isStart(),
                event.isFinish(),
                shift,
            )
        else:
            super().mouseDragEvent(event, axis)


class MaskPanel(QWidget):
    stem_chosen = Signal(str)
    toggle_requested = Signal(int, int)  # bin, frame
    paint_requested = Signal(object, object, float)  # bins, frames, value
    rectangle_requested = Signal(int, int, int, int, float)
    threshold_requested = Signal(float)
    invert_requested = Signal()
    reset_requested = Signal()
    undo_requested = Signal()
    redo_requested = Signal()
    readout = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layer: MaskLayer | None = None
        # The spectrograms' frequency axis (set by the window): followed while the mask's rows
        # are in Hz, left while they are a learned representation's components.
        self.frequency_link = None
        self._spectrogram: tuple | None = None
        self.tool = "toggle"
        self._stroke: list[tuple[int, int]] = []
        self._build_controls()
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("#15161a")
        self.view_box = MaskViewBox(self)
        self.plot = self.graphics.addPlot(viewBox=self.view_box)
        style_plot(self.plot, "mask: separate with a mask model (oracle, SF) to edit", "Hz")
        self.plot.getAxis("left").setWidth(48)
        self.background = pg.ImageItem(axisOrder="row-major")
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.overlay.setLookupTable(overlay_table())
        self.overlay.setZValue(10)
        self.plot.addItem(self.background)
        self.plot.addItem(self.overlay)
        self.playhead = add_playhead(self.plot)
        self.rubber_band = QGraphicsRectItem()
        self.rubber_band.setPen(pg.mkPen((255, 255, 255), width=1, style=Qt.PenStyle.DashLine))
        self.rubber_band.setZValue(20)
        self.rubber_band.hide()
        self.plot.addItem(self.rubber_band, ignoreBounds=True)
        self.graphics.scene().sigMouseMoved.connect(self._mouse_moved)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(self.controls)
        layout.addWidget(self.graphics, 1)
        self.set_enabled(False)

    # ------------------------------------------------------------------ controls
    def _build_controls(self) -> None:
        self.stem_box = QComboBox()
        self.stem_box.setToolTip("the stem whose mask you edit")
        self.stem_box.activated.connect(
            lambda _: self.stem_chosen.emit(self.stem_box.currentText())
        )
        self.tool_group = QButtonGroup(self)
        self.tool_buttons: dict[str, QPushButton] = {}
        tips = {
            "toggle": "click a cell to switch it on or off",
            "brush": "drag to paint cells on",
            "erase": "drag to erase cells",
            "rectangle": "drag a rectangle to switch on (Shift: off)",
        }
        for tool in TOOLS:
            button = QPushButton(tool.capitalize())
            button.setCheckable(True)
            button.setToolTip(tips[tool])
            button.setChecked(tool == self.tool)
            button.clicked.connect(lambda _, tool=tool: self.set_tool(tool))
            self.tool_group.addButton(button)
            self.tool_buttons[tool] = button
        self.brush_box = QSpinBox()
        self.brush_box.setRange(0, 30)
        self.brush_box.setValue(2)
        self.brush_box.setToolTip("brush radius in cells")
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(0, 100)
        self.threshold_slider.setValue(50)
        self.threshold_slider.setMaximumWidth(140)
        self.threshold_slider.setToolTip("binarise the model's mask at this level (on release)")
        self.threshold_label = QLabel("0.50")
        self.threshold_slider.valueChanged.connect(
            lambda value: self.threshold_label.setText(f"{value / 100:.2f}")
        )
        self.threshold_slider.sliderReleased.connect(
            lambda: self.threshold_requested.emit(self.threshold_slider.value() / 100)
        )
        self.invert_button = QPushButton("Invert")
        self.invert_button.clicked.connect(self.invert_requested)
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("back to the model's mask (undoable)")
        self.reset_button.clicked.connect(self.reset_requested)
        self.undo_button = QPushButton("Undo")
        self.undo_button.clicked.connect(self.undo_requested)
        self.redo_button = QPushButton("Redo")
        self.redo_button.clicked.connect(self.redo_requested)
        self.controls = control_rows(
            [
                QLabel("stem"),
                self.stem_box,
                *self.tool_buttons.values(),
                QLabel("brush"),
                self.brush_box,
            ],
            [
                QLabel("threshold"),
                self.threshold_slider,
                self.threshold_label,
                self.invert_button,
                self.reset_button,
                self.undo_button,
                self.redo_button,
            ],
        )

    def set_tool(self, tool: str) -> None:
        self.tool = tool
        self.tool_buttons[tool].setChecked(True)

    def set_enabled(self, enabled: bool) -> None:
        for widget in (
            *self.tool_buttons.values(),
            self.brush_box,
            self.threshold_slider,
            self.invert_button,
            self.reset_button,
        ):
            widget.setEnabled(enabled)

    def set_history(self, undo: bool, redo: bool) -> None:
        self.undo_button.setEnabled(undo)
        self.redo_button.setEnabled(redo)

    def set_stems(self, stems: list[str], current: str | None) -> None:
        self.stem_box.blockSignals(True)
        self.stem_box.clear()
        self.stem_box.addItems(stems)
        if current in stems:
            self.stem_box.setCurrentText(current)
        self.stem_box.blockSignals(False)
        self.stem_box.setEnabled(bool(stems))

    # ------------------------------------------------------------------ content
    def set_background(
        self, spectrogram: Spectrogram | None, colour_map: str, levels: tuple[float, float]
    ) -> None:
        self._spectrogram = (spectrogram, colour_map, levels)
        if self.layer is not None and self.layer.row_hertz is None:
            self._draw_representation(colour_map)
            return
        if spectrogram is None:
            self.background.clear()
            return
        self.background.setLookupTable(lookup_table(colour_map))
        self.background.setImage(spectrogram.decibels, levels=levels, autoLevels=False)
        place_image(
            self.background,
            spectrogram.frames,
            spectrogram.bins,
            spectrogram.frame_seconds,
            spectrogram.bin_hertz,
        )

    def set_layer(self, layer: MaskLayer | None) -> None:
        self.layer = layer
        self.set_enabled(layer is not None)
        self._set_rows(layer)
        if layer is None:
            self.overlay.clear()
            self.plot.setTitle("mask: separate with a mask model (oracle, SF) to edit", size="9pt")
            return
        where = "" if layer.row_hertz is not None else " (learned representation)"
        self.plot.setTitle(f"{layer.probe.label}{where} — bright: kept, dark: removed", size="9pt")
        self.refresh()

    def _set_rows(self, layer: MaskLayer | None) -> None:
        """The left axis: Hz, linked to the spectrograms, for an STFT mask; components of the
        learned representation otherwise (and its magnitude as the background)."""
        learned = layer is not None and layer.row_hertz is None
        self.plot.setLabel("left", "component (ascending kernel frequency)" if learned else "Hz")
        link = self.frequency_link
        if learned:
            if link is not None:
                link.remove(self.plot)
            self.plot.setYRange(-0.5, layer.shape[0] - 0.5, padding=0)
            self._draw_representation(self._spectrogram[1] if self._spectrogram else "magma")
        else:
            if link is not None and not link.contains(self.plot):
                link.add(self.plot)
            if self._spectrogram is not None:
                self.set_background(*self._spectrogram)

    def _draw_representation(self, colour_map: str) -> None:
        """The mixture's learned representation (first channel) in dB, under the mask."""
        layer = self.layer
        magnitude = layer.representation[0].abs().float().cpu().numpy()
        decibels = 20 * np.log10(np.maximum(magnitude, 1e-8))
        top = float(decibels.max()) if decibels.size else 0.0
        self.background.setLookupTable(lookup_table(colour_map))
        self.background.setImage(decibels, levels=(top - 80.0, top), autoLevels=False)
        place_image(
            self.background,
            layer.shape[1],
            layer.shape[0],
            layer.seconds_per_frame(),
            1.0,
            column_origin=layer.offset / layer.frontend.sample_rate,
        )

    def refresh(self) -> None:
        """Redraw the overlay from the layer's current values."""
        layer = self.layer
        if layer is None:
            return
        self.overlay.setImage(layer.values, levels=(0.0, 1.0), autoLevels=False)
        frame_seconds = layer.seconds_per_frame()
        place_image(
            self.overlay,
            layer.shape[1],
            layer.shape[0],
            frame_seconds,
            layer.row_hertz or 1.0,
            column_origin=layer.offset / layer.frontend.sample_rate,
        )

    def set_playhead(self, seconds: float) -> None:
        self.playhead.setValue(seconds)

    # ------------------------------------------------------------------ coordinates
    def cell_at(self, point: QPointF) -> tuple[int, int]:
        """`(row, frame)` of the mask under a view point (seconds, Hz or component); may be out
        of range."""
        layer = self.layer
        seconds = point.x() - layer.offset / layer.frontend.sample_rate
        frame = int(round(seconds / layer.seconds_per_frame()))
        bin_index = int(round(point.y() / (layer.row_hertz or 1.0)))
        return bin_index, frame

    def _inside(self, bin_index: int, frame: int) -> bool:
        bins, frames = self.layer.shape
        return 0 <= bin_index < bins and 0 <= frame < frames

    def _brush_cells(self, bin_index: int, frame: int) -> list[tuple[int, int]]:
        radius = self.brush_box.value()
        return [
            (bin_index + db, frame + df)
            for db in range(-radius, radius + 1)
            for df in range(-radius, radius + 1)
            if self._inside(bin_index + db, frame + df)
        ]

    # ------------------------------------------------------------------ mouse
    def click(self, point: QPointF) -> None:
        bin_index, frame = self.cell_at(point)
        if not self._inside(bin_index, frame):
            return
        if self.tool == "toggle":
            self.toggle_requested.emit(bin_index, frame)
        elif self.tool in ("brush", "erase"):
            cells = self._brush_cells(bin_index, frame)
            self.paint_requested.emit(
                [c[0] for c in cells], [c[1] for c in cells], 1.0 if self.tool == "brush" else 0.0
            )

    def drag(self, start: QPointF, current: QPointF, first: bool, last: bool, shift: bool) -> None:
        if self.tool == "rectangle" or (self.tool == "toggle" and shift):
            self._drag_rectangle(start, current, last, shift)
        elif self.tool in ("brush", "erase"):
            self._drag_brush(current, first, last)

    def _drag_rectangle(self, start: QPointF, current: QPointF, last: bool, shift: bool) -> None:
        self.rubber_band.setRect(QRectF(start, current).normalized())
        self.rubber_band.setVisible(not last)
        if last:
            (bin_a, frame_a), (bin_b, frame_b) = self.cell_at(start), self.cell_at(current)
            self.rectangle_requested.emit(
                min(bin_a, bin_b),
                max(bin_a, bin_b) + 1,
                min(frame_a, frame_b),
                max(frame_a, frame_b) + 1,
                0.0 if shift else 1.0,
            )

    def _drag_brush(self, current: QPointF, first: bool, last: bool) -> None:
        if first:
            self._stroke = []
            self._preview = self.layer.values.copy()
        value = 1.0 if self.tool == "brush" else 0.0
        cells = self._brush_cells(*self.cell_at(current))
        self._stroke.extend(cells)
        if cells:
            rows, columns = zip(*cells, strict=True)
            self._preview[list(rows), list(columns)] = value
            self.overlay.updateImage(self._preview)
        if last and self._stroke:
            unique = sorted(set(self._stroke))
            self.paint_requested.emit([c[0] for c in unique], [c[1] for c in unique], value)
            self._stroke = []

    def _mouse_moved(self, scene_position) -> None:
        if self.layer is None or not self.plot.sceneBoundingRect().contains(scene_position):
            return
        point = self.view_box.mapSceneToView(scene_position)
        bin_index, frame = self.cell_at(point)
        if self._inside(bin_index, frame):
            value = self.layer.values[bin_index, frame]
            row = (
                f"{point.y():.0f} Hz"
                if self.layer.row_hertz is not None
                else f"component {bin_index}"
            )
            self.readout.emit(
                f"mask {self.layer.stem}: {point.x():.3f} s, {row}, "
                f"cell ({bin_index}, {frame}) = {value:.2f}"
            )
